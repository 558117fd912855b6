package pushsvc_test

// These tests run against a live `pushsvc dev` that tests/clients starts; they
// skip when PUSHSVC_TARGET is unset. The resume test also takes PUSHSVC_CUT_DIR
// and PUSHSVC_CUT_AFTER: after that many receipts it creates CUT_DIR/ready and
// waits for CUT_DIR/go while the driver restarts the server. Each test writes its
// findings to PUSHSVC_RESULT_DIR/<test>.json.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	pushsvc "pushsvc.dev/clients/go"
	pushsvcv1 "pushsvc.dev/clients/go/pushsvc/v1"
)

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func liveClient(t *testing.T) (pushsvcv1.PushServiceClient, string) {
	t.Helper()
	target := os.Getenv("PUSHSVC_TARGET")
	if target == "" {
		t.Skip("PUSHSVC_TARGET is not set (tests/clients sets it)")
	}
	app := os.Getenv("PUSHSVC_APP_ID")
	if app == "" {
		app = "demo"
	}
	conn, err := pushsvc.Dial(target, pushsvc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pushsvcv1.NewPushServiceClient(conn), app
}

type token struct {
	value    string
	platform pushsvcv1.Platform
}

func registerAndSend(ctx context.Context, t *testing.T, client pushsvcv1.PushServiceClient, app, user string, tokens []token) string {
	t.Helper()
	for _, tok := range tokens {
		if _, err := client.RegisterToken(ctx, &pushsvcv1.RegisterTokenRequest{
			AppId: app, Token: tok.value, Platform: tok.platform, UserId: user,
		}); err != nil {
			t.Fatalf("RegisterToken: %v", err)
		}
	}
	sent, err := client.Send(ctx, &pushsvcv1.SendRequest{
		AppId:   app,
		Target:  &pushsvcv1.Target{Kind: &pushsvcv1.Target_Users{Users: &pushsvcv1.UserList{UserIds: []string{user}}}},
		Message: &pushsvcv1.Message{Title: "client test", Body: "go"},
	})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	return sent.GetNotificationId()
}

func writeResult(t *testing.T, name string, result map[string]any) {
	t.Helper()
	dir := os.Getenv("PUSHSVC_RESULT_DIR")
	if dir == "" {
		dir = "."
	}
	data, _ := json.Marshal(result)
	if err := os.WriteFile(filepath.Join(dir, name+".json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSmoke(t *testing.T) {
	client, app := liveClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	user := "smoke-go-" + randomHex(t, 4)
	ok := token{"ab" + randomHex(t, 31), pushsvcv1.Platform_PLATFORM_APNS}
	dead := token{"0410" + randomHex(t, 30), pushsvcv1.Platform_PLATFORM_APNS}
	fcm := token{"go-smoke-" + randomHex(t, 6), pushsvcv1.Platform_PLATFORM_FCM}
	nid := registerAndSend(ctx, t, client, app, user, []token{ok, dead, fcm})

	// The generated stub itself: the stream ends by itself, with OK (io.EOF).
	stream, err := client.StreamReceipts(ctx, &pushsvcv1.StreamReceiptsRequest{AppId: app, NotificationId: nid})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]pushsvcv1.DeliveryStatus{}
	cursors := map[string]bool{}
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("stream ended with %v, want OK", err)
		}
		got[resp.GetReceipt().GetToken()] = resp.GetReceipt().GetStatus()
		cursors[resp.GetReceipt().GetCursor()] = true
	}
	want := map[string]pushsvcv1.DeliveryStatus{
		ok.value:   pushsvcv1.DeliveryStatus_DELIVERY_STATUS_DELIVERED,
		dead.value: pushsvcv1.DeliveryStatus_DELIVERY_STATUS_TOKEN_INVALID,
		fcm.value:  pushsvcv1.DeliveryStatus_DELIVERY_STATUS_DELIVERED,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("receipts %v, want %v", got, want)
	}
	if len(cursors) != 3 || cursors[""] {
		t.Fatalf("cursors %v: want 3 distinct, non-empty", cursors)
	}
	writeResult(t, "smoke", map[string]any{"notification_id": nid, "receipts": len(got), "status": "OK"})
}

func TestResume(t *testing.T) {
	cutDir := os.Getenv("PUSHSVC_CUT_DIR")
	if cutDir == "" {
		t.Skip("PUSHSVC_CUT_DIR is not set: only tests/clients can restart the server")
	}
	client, app := liveClient(t)
	cutAfter, err := strconv.Atoi(os.Getenv("PUSHSVC_CUT_AFTER"))
	if err != nil {
		cutAfter = 50
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	user := "resume-go-" + randomHex(t, 4)
	run := randomHex(t, 4)
	// quota- tokens answer 429 with Retry-After: 1 first, so the notification is
	// still running when the stream is cut.
	var tokens []token
	for i := 0; i < 200; i++ {
		tokens = append(tokens, token{"ab" + randomHex(t, 31), pushsvcv1.Platform_PLATFORM_APNS})
	}
	for i := 0; i < 100; i++ {
		tokens = append(tokens, token{fmt.Sprintf("quota-%s-%d", run, i), pushsvcv1.Platform_PLATFORM_FCM})
	}
	nid := registerAndSend(ctx, t, client, app, user, tokens)

	follower := &pushsvc.Follower{Client: client, AppID: app, NotificationID: nid, ResumeTimeout: time.Minute}
	seen := map[string]int{}
	cursors := map[string]bool{}
	n := 0
	err = follower.Run(ctx, func(r *pushsvcv1.Receipt) error {
		seen[r.GetToken()]++
		cursors[r.GetCursor()] = true
		if r.GetStatus() != pushsvcv1.DeliveryStatus_DELIVERY_STATUS_DELIVERED {
			return fmt.Errorf("token %s: %v, want DELIVERED", r.GetToken(), r.GetStatus())
		}
		n++
		if n == cutAfter {
			if err := os.WriteFile(filepath.Join(cutDir, "ready"), nil, 0o644); err != nil {
				return err
			}
			deadline := time.Now().Add(90 * time.Second)
			for {
				if _, err := os.Stat(filepath.Join(cutDir, "go")); err == nil {
					break
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("the driver never restarted the server")
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n != len(tokens) || len(seen) != len(tokens) || len(cursors) != len(tokens) {
		t.Fatalf("%d receipts, %d tokens, %d cursors; want %d of each", n, len(seen), len(cursors), len(tokens))
	}
	for _, tok := range tokens {
		if seen[tok.value] != 1 {
			t.Fatalf("token %s: %d receipts, want 1", tok.value, seen[tok.value])
		}
	}
	if follower.Resumes < 1 {
		t.Fatal("the stream was never cut")
	}
	writeResult(t, "resume", map[string]any{
		"notification_id": nid, "receipts": n, "unique_tokens": len(seen),
		"unique_cursors": len(cursors), "resumes": follower.Resumes, "status": "OK",
	})
}
