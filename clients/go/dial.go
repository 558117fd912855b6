// Package pushsvc is pushsvc's Go client: the generated stubs live in
// pushsvc.dev/clients/go/pushsvc/v1; this package adds a dial helper (TLS,
// credentials, retries, deadlines) and Follower, whose Run resumes a receipt
// stream from its last cursor.
package pushsvc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// ServiceConfig retries the idempotent calls (RegisterToken and RegisterTokens
// upsert, UnregisterToken and Prune converge, GetNotification, GetToken, ListTokens and
// ListNotifications read, a repeated CancelNotification answers as the first) on UNAVAILABLE and
// gives every unary call a 10 s deadline. Send is not retried: it is idempotent
// only with an idempotency_key. StreamReceipts is resumed by Follower.Run.
const ServiceConfig = `{
  "methodConfig": [
    {
      "name": [
        {"service": "pushsvc.v1.PushService", "method": "RegisterToken"},
        {"service": "pushsvc.v1.PushService", "method": "RegisterTokens"},
        {"service": "pushsvc.v1.PushService", "method": "UnregisterToken"},
        {"service": "pushsvc.v1.PushService", "method": "GetNotification"},
        {"service": "pushsvc.v1.PushService", "method": "Prune"},
        {"service": "pushsvc.v1.PushService", "method": "CancelNotification"},
        {"service": "pushsvc.v1.PushService", "method": "GetToken"},
        {"service": "pushsvc.v1.PushService", "method": "ListTokens"},
        {"service": "pushsvc.v1.PushService", "method": "ListNotifications"}
      ],
      "timeout": "10s",
      "retryPolicy": {
        "maxAttempts": 5,
        "initialBackoff": "0.1s",
        "maxBackoff": "2s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE"]
      }
    },
    {"name": [{"service": "pushsvc.v1.PushService", "method": "Send"}], "timeout": "10s"}
  ]
}`

// Options configure Dial. The zero value is a plaintext connection without credentials.
type Options struct {
	// TLS verifies the server against RootCAs (PEM; the system roots when empty).
	TLS     bool
	RootCAs []byte
	// APIKey and JWT are both sent as "authorization: Bearer <credential>"; the server tells them apart.
	APIKey string
	JWT    string
}

// Dial returns a client connection to pushsvc with the service config above and a
// reconnect backoff short enough that a stream resumes within seconds of a restart.
func Dial(target string, opts Options, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	if opts.APIKey != "" && opts.JWT != "" {
		return nil, errors.New("pushsvc: give an API key or a JWT, not both")
	}
	transport := insecure.NewCredentials()
	if opts.TLS {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if len(opts.RootCAs) > 0 {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(opts.RootCAs) {
				return nil, errors.New("pushsvc: RootCAs holds no PEM certificate")
			}
			cfg.RootCAs = pool
		}
		transport = credentials.NewTLS(cfg)
	}
	dialOpts := []grpc.DialOption{
		grpc.WithTransportCredentials(transport),
		grpc.WithDefaultServiceConfig(ServiceConfig),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		}),
	}
	if md := credentialMetadata(opts); md != nil {
		dialOpts = append(dialOpts, grpc.WithPerRPCCredentials(metadataCreds{md: md, secure: opts.TLS}))
	}
	return grpc.NewClient(target, append(dialOpts, extra...)...)
}

func credentialMetadata(opts Options) map[string]string {
	switch {
	case opts.APIKey != "":
		return map[string]string{"authorization": "Bearer " + opts.APIKey}
	case opts.JWT != "":
		return map[string]string{"authorization": "Bearer " + opts.JWT}
	}
	return nil
}

type metadataCreds struct {
	md     map[string]string
	secure bool
}

func (c metadataCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return c.md, nil
}

// RequireTransportSecurity is false only for plaintext channels, which the caller chose explicitly.
func (c metadataCreds) RequireTransportSecurity() bool { return c.secure }
