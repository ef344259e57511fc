package wire

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestErrorText(t *testing.T) {
	for _, err := range []error{
		errors.New("plain"),
		ErrUnreachable,
		fmt.Errorf("%w: refused", ErrUnreachable),
		fmt.Errorf("dialing: %w", ErrUnreachable),
		context.DeadlineExceeded,
		context.Canceled,
	} {
		back := ErrorFromText(ErrorText(err))
		if errors.Is(back, ErrUnreachable) != errors.Is(err, ErrUnreachable) || !strings.Contains(back.Error(), err.Error()) ||
			errors.Is(back, context.DeadlineExceeded) != errors.Is(err, context.DeadlineExceeded) ||
			errors.Is(back, context.Canceled) != errors.Is(err, context.Canceled) {
			t.Errorf("%q came back as %q", err, back)
		}
	}
	if ErrorText(nil) != "" || ErrorFromText("") != nil || ErrorText(errors.New("")) == "" {
		t.Error("no error is not kept as none, or an empty one not as one")
	}
}
