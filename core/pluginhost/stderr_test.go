package pluginhost

import (
	"fmt"
	"strings"
	"testing"
)

func TestStderrTail(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []string
		want   string
	}{
		{"nothing", nil, ""},
		{"blank", []string{"\n", "  \n"}, ""},
		{"a line", []string{"boom", "\n"}, "boom"},
		{"lines in pieces", []string{"usage: x", "\n", "  -v", "\n"}, "usage: x\n  -v"},
		{"the last 20 lines", written(lines(0, 30)), "...\n" + strings.Join(lines(10, 30), "\n")},
		{"exactly 20 lines", written(lines(0, 20)), strings.Join(lines(0, 20), "\n")},
		{"a line over the byte bound", []string{"first\n", strings.Repeat("y", 5000) + "\n", "last\n"},
			"...\n" + strings.Repeat("y", stderrTailBytes-len("\nlast\n")) + "\nlast"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tail stderrTail
			for _, w := range tc.writes {
				if n, err := tail.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if got := tail.String(); got != tc.want {
				t.Errorf("String() =\n%q\nwant\n%q", got, tc.want)
			}
			if len(tail.buf) > stderrTailBytes {
				t.Errorf("%d bytes kept, over the bound of %d", len(tail.buf), stderrTailBytes)
			}
		})
	}
}

func TestStderrTailKeepsNothingOnceClosed(t *testing.T) {
	var tail stderrTail
	_, _ = tail.Write([]byte("during the handshake\n"))
	tail.close()
	_, _ = tail.Write([]byte("after it\n"))
	if got := tail.String(); got != "" || len(tail.buf) != 0 {
		t.Errorf("String() = %q after close, with %d bytes kept", got, len(tail.buf))
	}
}

// lines returns "line N" for N from first up to end.
func lines(first, end int) []string {
	var out []string
	for i := first; i < end; i++ {
		out = append(out, fmt.Sprintf("line %d", i))
	}
	return out
}

// written is lines as a process writes them: each with its newline.
func written(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l + "\n"
	}
	return out
}
