package host

import (
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// pluginError is the error a plugin's call answered, as the plugin wrote it:
// without gRPC's "rpc error: code = Unknown desc = " around it, so that a
// user reads "starting the executor: config.url: ..." and not the plumbing.
// Failures of the call itself (the process died, a timeout) keep their gRPC
// text, which says what happened.
func pluginError(err error) error {
	if s, ok := status.FromError(err); ok && s.Code() == codes.Unknown {
		return errors.New(s.Message())
	}
	return err
}
