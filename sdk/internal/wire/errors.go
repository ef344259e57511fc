package wire

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ErrUnreachable is sdk/transport's ErrUnreachable, defined here so that both
// sides of the protocol can keep it across: a plugin's errors reach the host
// as text.
var ErrUnreachable = errors.New("peer unreachable")

// ErrorText is err as it crosses between plugin and host: "" for none, and
// an error wrapping ErrUnreachable starts with its message.
func ErrorText(err error) string {
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

// ErrorFromText turns ErrorText's text back into an error (nil for ""):
// ErrUnreachable and the context's errors are themselves again.
func ErrorFromText(msg string) error {
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

// ErrorTexts turns per-target results into text: "" for success.
func ErrorTexts(errs []error) []string {
	out := make([]string, len(errs))
	for i, err := range errs {
		if err != nil {
			if out[i] = err.Error(); out[i] == "" {
				out[i] = "error"
			}
		}
	}
	return out
}

// ErrorsFromTexts turns texts back into results for n targets. A wrong
// number of results means a broken other side: every target then fails, so
// that nothing is taken as delivered on its word.
func ErrorsFromTexts(s []string, n int) []error {
	if len(s) != n {
		return Repeat(fmt.Errorf("the executor returned %d results for %d targets", len(s), n), n)
	}
	errs := make([]error, n)
	for i := range errs {
		if s[i] != "" {
			errs[i] = errors.New(s[i])
		}
	}
	return errs
}

// Repeat is err as the result of each of n targets.
func Repeat(err error, n int) []error {
	errs := make([]error, n)
	for i := range errs {
		errs[i] = err
	}
	return errs
}
