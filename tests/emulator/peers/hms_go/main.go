// An independent Push Kit client (github.com/appleboy/go-hms-push v1.0.1) against
// the emulator: reads {auth_url, push_url, app_id, app_secret, tokens} as JSON on
// stdin, sends one notification to the tokens, prints Push Kit's answer as JSON.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/appleboy/go-hms-push/push/config"
	"github.com/appleboy/go-hms-push/push/core"
	"github.com/appleboy/go-hms-push/push/model"
)

type input struct {
	AuthURL   string   `json:"auth_url"`
	PushURL   string   `json:"push_url"`
	AppID     string   `json:"app_id"`
	AppSecret string   `json:"app_secret"`
	Tokens    []string `json:"tokens"`
}

func main() {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fail(err)
	}
	client, err := core.NewHttpClient(&config.Config{AppId: in.AppID, AppSecret: in.AppSecret, AuthUrl: in.AuthURL, PushUrl: in.PushURL})
	if err != nil {
		fail(err)
	}
	request := model.NewNotificationMsgRequest()
	request.Message.Token = in.Tokens
	request.Message.Android = model.GetDefaultAndroid()
	request.Message.Android.Notification = model.GetDefaultAndroidNotification()
	request.Message.Android.Notification.Title = "From go-hms-push"
	request.Message.Android.Notification.Body = "an independent client"
	response, err := client.SendMessage(context.Background(), request)
	out := map[string]any{"error": ""}
	if err != nil {
		out["error"] = err.Error()
	}
	if response != nil {
		out["code"], out["msg"], out["requestId"] = response.Code, response.Msg, response.RequestId
	}
	_ = json.NewEncoder(os.Stdout).Encode(out)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(2)
}
