package wire

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var (
	// ErrUnreachable wraps a failure to reach the server at all.
	ErrUnreachable = errors.New("server unreachable")
	// ErrConnectionLost wraps every failure caused by the connection's end:
	// its stream broke, the server closed it, or it was closed.
	ErrConnectionLost = errors.New("connection lost")
)

// ResponseError is a request the server answered with a failure:
// an ErrorResponse, or a response whose resultCode is not 200.
type ResponseError struct {
	Type       string // the response's class name
	ResultCode int
	ErrorCode  int
	Message    string
}

func (e *ResponseError) Error() string {
	return fmt.Sprintf("%s: result %d, error %d: %s", e.Type, e.ResultCode, e.ErrorCode, e.Message)
}

// ProtocolError is an answer that does not follow the wire protocol: an
// unexpected response class or a body that cannot be parsed.
type ProtocolError struct{ Reason string }

func (e *ProtocolError) Error() string { return "protocol: " + e.Reason }

// Kind names the class of err for counting in results: "timeout",
// "unreachable", "connection dropped", "refused (error 503)", "bad response",
// "cancelled" or "other".
func Kind(err error) string {
	var re *ResponseError
	var pe *ProtocolError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &re):
		if re.ErrorCode != 0 {
			return fmt.Sprintf("refused (error %d)", re.ErrorCode)
		}
		return fmt.Sprintf("failed (result %d)", re.ResultCode)
	case errors.As(err, &pe):
		return "bad response"
	case errors.Is(err, context.DeadlineExceeded), status.Code(err) == codes.DeadlineExceeded:
		return "timeout"
	case errors.Is(err, ErrUnreachable):
		return "unreachable"
	case errors.Is(err, ErrConnectionLost), status.Code(err) == codes.Unavailable:
		return "connection dropped"
	case errors.Is(err, context.Canceled), status.Code(err) == codes.Canceled:
		return "cancelled"
	default:
		return "other"
	}
}
