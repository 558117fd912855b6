package pushsvc

import (
	"context"
	"errors"
	"io"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pushsvcv1 "pushsvc.dev/clients/go/pushsvc/v1"
)

// Follower streams the receipts of one notification (or an app's live feed when
// NotificationID is empty) and resumes after UNAVAILABLE from the last cursor.
//
// pushsvc numbers receipts densely per app and per notification, so a stream
// reopened with after=<last cursor> continues with the next receipt: a drain on
// SIGTERM, a restart, a lost connection or a move to another replica neither
// skips nor repeats one.
type Follower struct {
	Client         pushsvcv1.PushServiceClient
	AppID          string
	NotificationID string
	// Cursor is where the stream starts (empty: the beginning of the
	// notification, or now for the live feed); Run advances it.
	Cursor string
	// ResumeTimeout bounds how long the server may stay unavailable (default 30 s).
	ResumeTimeout time.Duration
	// OnResume, when set, is called with each UNAVAILABLE error before reconnecting.
	OnResume func(error)
	// Resumes counts the reopened streams.
	Resumes int
}

// Run calls fn for each receipt, in order, until the server ends the stream with
// OK (a notification's stream does once it is finished), fn returns an error,
// ctx ends, or the server stays unavailable for ResumeTimeout.
func (f *Follower) Run(ctx context.Context, fn func(*pushsvcv1.Receipt) error) error {
	timeout := f.ResumeTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	failures := 0
	var failingSince time.Time
	for {
		err := f.once(ctx, fn, &failures)
		if err == nil {
			return nil
		}
		var cb *callbackError
		if errors.As(err, &cb) {
			return cb.err
		}
		if status.Code(err) != codes.Unavailable || ctx.Err() != nil {
			return err
		}
		now := time.Now()
		if failures == 0 {
			failingSince = now
		}
		if now.Sub(failingSince) >= timeout {
			return err
		}
		failures++
		f.Resumes++
		if f.OnResume != nil {
			f.OnResume(err)
		}
		delay := time.Duration(100<<min(failures-1, 5)) * time.Millisecond
		if delay > 2*time.Second {
			delay = 2 * time.Second
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

// once runs one stream; it resets failures when a receipt arrives.
func (f *Follower) once(ctx context.Context, fn func(*pushsvcv1.Receipt) error, failures *int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := f.Client.StreamReceipts(ctx, &pushsvcv1.StreamReceiptsRequest{
		AppId: f.AppID, NotificationId: f.NotificationID, After: f.Cursor,
	})
	if err != nil {
		return err
	}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		*failures = 0
		receipt := resp.GetReceipt()
		f.Cursor = receipt.GetCursor()
		if err := fn(receipt); err != nil {
			return &callbackError{err}
		}
	}
}

// callbackError carries fn's error out of Run unchanged, never taken for the server's UNAVAILABLE.
type callbackError struct{ err error }

func (e *callbackError) Error() string { return e.err.Error() }
func (e *callbackError) Unwrap() error { return e.err }
