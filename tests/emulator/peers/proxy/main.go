// A plain net/http client: it knows nothing about the emulator. It sends one
// APNs push to api.push.apple.com, as a Go backend would, and reports what it
// got. HTTPS_PROXY and SSL_CERT_FILE, read by Go's standard library, are what
// point it at the emulator.
//
// Usage: apnspeer <device token> <provider JWT> <topic> [<other URL>]
// Prints one JSON object: the push's status, protocol, apns-id and body, and,
// if <other URL> is given, the error of a GET to it (the proxy refuses it).
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	token, jwt, topic := os.Args[1], os.Args[2], os.Args[3]
	client := &http.Client{Timeout: 20 * time.Second}
	req, err := http.NewRequest("POST", "https://api.push.apple.com/3/device/"+token,
		strings.NewReader(`{"aps":{"alert":{"title":"Hello from Go","body":"net/http, unmodified"}}}`))
	if err != nil {
		panic(err)
	}
	req.Header.Set("authorization", "bearer "+jwt)
	req.Header.Set("apns-topic", topic)
	req.Header.Set("apns-push-type", "alert")
	out := map[string]any{}
	resp, err := client.Do(req)
	if err != nil {
		out["error"] = err.Error()
	} else {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		out["status"] = resp.StatusCode
		out["proto"] = resp.Proto
		out["apns_id"] = resp.Header.Get("apns-id")
		out["body"] = string(body)
	}
	if len(os.Args) > 4 {
		other, err := client.Get(os.Args[4])
		if err != nil {
			out["other_error"] = err.Error()
		} else {
			other.Body.Close()
			out["other_status"] = other.StatusCode
		}
	}
	encoded, _ := json.Marshal(out)
	fmt.Println(string(encoded))
}
