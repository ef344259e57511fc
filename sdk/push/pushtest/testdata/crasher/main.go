// Command crasher is a push plugin whose process dies on its first batch (a
// panic would not do it: the SDK answers a panicking Push with errors): the
// kit must say so.
package main

import (
	"context"
	"fmt"
	"os"
	"syscall"

	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/push"
)

type crasher struct{}

// stderr is the process's real standard error: go-plugin points os.Stderr
// elsewhere while it serves.
var stderr = os.NewFile(uintptr(syscall.Stderr), "/dev/stderr")

func (crasher) Push(context.Context, push.Batch) []error {
	fmt.Fprintln(stderr, "crasher: out of luck")
	os.Exit(3)
	return nil
}

func main() {
	push.Serve(push.Plugin{
		Info: sdk.Info{Name: "crasher", Version: "0.0.1"},
		Role: push.RoleRPC,
		New:  func([]byte, push.Host) (push.Executor, error) { return crasher{}, nil },
	})
}
