package transport

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ErrUnreachable is wrapped by the error of a Call or a Snapshot that could
// not reach the peer at all — the connection was refused, or could not be
// made in time — so that nothing was delivered. The cluster marks such a peer
// DOWN at once, where other failures only count against it.
//
// A plugin's errors reach the host as text; the SDK keeps this one across by
// its message, so a transport only has to wrap it:
//
//	fmt.Errorf("%w: %v", transport.ErrUnreachable, err)
var ErrUnreachable = errors.New("peer unreachable")

// errorText is err as it crosses between plugin and host: "" for none, and
// an error wrapping ErrUnreachable starts with its message.
func errorText(err error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	if errors.Is(err, ErrUnreachable) && !strings.HasPrefix(msg, ErrUnreachable.Error()) {
		msg = ErrUnreachable.Error() + ": " + msg
	}
	if msg == "" {
		msg = "error"
	}
	return msg
}

// errorFromText turns errorText's text back into an error (nil for ""):
// ErrUnreachable and the context's errors are themselves again.
func errorFromText(msg string) error {
	switch {
	case msg == "":
		return nil
	case msg == context.DeadlineExceeded.Error():
		return context.DeadlineExceeded
	case msg == context.Canceled.Error():
		return context.Canceled
	case msg == ErrUnreachable.Error():
		return ErrUnreachable
	case strings.HasPrefix(msg, ErrUnreachable.Error()+": "):
		return fmt.Errorf("%w: %s", ErrUnreachable, strings.TrimPrefix(msg, ErrUnreachable.Error()+": "))
	}
	return errors.New(msg)
}
