// Command send-and-follow registers a token, sends to it, and streams its
// receipts until the stream ends.
//
//	go run ./examples/send-and-follow -target localhost:50051 -app demo
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"log"
	"time"

	pushsvc "pushsvc.dev/clients/go"
	pushsvcv1 "pushsvc.dev/clients/go/pushsvc/v1"
)

func main() {
	target := flag.String("target", "localhost:50051", "pushsvc host:port")
	app := flag.String("app", "demo", "app id")
	flag.Parse()

	conn, err := pushsvc.Dial(*target, pushsvc.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	client := pushsvcv1.NewPushServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	raw := make([]byte, 31)
	if _, err := rand.Read(raw); err != nil {
		log.Fatal(err)
	}
	token := "ab" + hex.EncodeToString(raw)
	if _, err := client.RegisterToken(ctx, &pushsvcv1.RegisterTokenRequest{
		AppId: *app, Token: token, Platform: pushsvcv1.Platform_PLATFORM_APNS, UserId: "example-user",
	}); err != nil {
		log.Fatal(err)
	}
	sent, err := client.Send(ctx, &pushsvcv1.SendRequest{
		AppId: *app,
		Target: &pushsvcv1.Target{Kind: &pushsvcv1.Target_Devices{Devices: &pushsvcv1.DeviceList{
			Devices: []*pushsvcv1.Device{{Token: token, Platform: pushsvcv1.Platform_PLATFORM_APNS}},
		}}},
		Message: &pushsvcv1.Message{Title: "Hello", Body: "from the pushsvc Go client"},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("notification", sent.GetNotificationId())
	follower := &pushsvc.Follower{Client: client, AppID: *app, NotificationID: sent.GetNotificationId()}
	err = follower.Run(ctx, func(r *pushsvcv1.Receipt) error {
		fmt.Printf("%s… %s after %d attempt(s)\n", r.GetToken()[:12], r.GetStatus(), r.GetAttempts())
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stream ended with OK")
}
