package remote

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Nacos result and error codes (PROTOCOL.md).
const (
	codeOK             = 200
	codeFail           = 500
	codeServerStarting = 300
	codeNotRegistered  = 301
	codeNoHandler      = 302
	codeInvalidParam   = 400
	codeServerError    = 500
	codeBadBody        = 502
	codeUnavailable    = 503 // no Raft quorum: persistent writes cannot commit
)

// Request and response class names the server itself deals in.
const (
	typeServerCheck     = "ServerCheckRequest"
	typeConnectionSetup = "ConnectionSetupRequest"
	typeHealthCheck     = "HealthCheckRequest"
	typeClientDetection = "ClientDetectionRequest"
	typeErrorResponse   = "ErrorResponse"
	typeServerCheckResp = "ServerCheckResponse"
	typeHealthCheckResp = "HealthCheckResponse"
	clientDetectionBody = `{"module":"internal"}`
	requestIDField      = `{"requestId":"`
)

// requestBase holds the field every request carries.
type requestBase struct {
	RequestID string `json:"requestId"`
}

func (b *requestBase) id() string { return b.RequestID }

// responseBase holds the fields every response carries.
type responseBase struct {
	ResultCode int    `json:"resultCode"`
	ErrorCode  int    `json:"errorCode"`
	Success    bool   `json:"success"`
	Message    string `json:"message,omitempty"`
	RequestID  string `json:"requestId"`
}

// succeed marks the response successful and echoes the request's id.
func (b *responseBase) succeed(requestID string) {
	b.ResultCode, b.Success, b.RequestID = codeOK, true, requestID
}

// response is what a handler returns on success.
type response interface{ succeed(requestID string) }

// errorResponse is Nacos's ErrorResponse.
type errorResponse struct{ responseBase }

// Error is a request failure with its Nacos error code.
type Error struct {
	Code    int
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("error %d: %s", e.Code, e.Message) }

func errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// decodeError turns a JSON decoding failure into the Nacos error for it: a
// value of the wrong type is an invalid parameter (named), anything else an
// unparseable body.
func decodeError(typ string, err error) *Error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		return errorf(codeInvalidParam, "%s: expected %s, got JSON %s", typeErr.Field, typeErr.Type, typeErr.Value)
	}
	return errorf(codeBadBody, "%s body could not be parsed: %v", typ, err)
}

// serverCheckResponse answers ServerCheckRequest with the connection's id.
type serverCheckResponse struct {
	responseBase
	ConnectionID              string `json:"connectionId"`
	SupportAbilityNegotiation bool   `json:"supportAbilityNegotiation"`
}

// connectionSetup is the first message a client sends on its bi-stream.
type connectionSetup struct {
	ClientVersion string            `json:"clientVersion"`
	Tenant        string            `json:"tenant"`
	Labels        map[string]string `json:"labels"`
}

// clientAnswer is the part of a client's answer to a server request that the
// server reads.
type clientAnswer struct {
	RequestID  string `json:"requestId"`
	ResultCode int    `json:"resultCode"`
	ErrorCode  int    `json:"errorCode"`
	Message    string `json:"message"`
}

// withRequestID returns the JSON object body with a requestId field added first.
func withRequestID(body []byte, id string) ([]byte, error) {
	body = bytes.TrimSpace(body)
	if len(body) < 2 || body[0] != '{' || body[len(body)-1] != '}' {
		return nil, errors.New("a server request body must be a JSON object")
	}
	inner := bytes.TrimSpace(body[1 : len(body)-1])
	out := make([]byte, 0, len(inner)+len(id)+len(requestIDField)+4)
	out = append(out, requestIDField...)
	out = append(out, id...)
	out = append(out, '"')
	if len(inner) > 0 {
		out = append(out, ',')
		out = append(out, inner...)
	}
	return append(out, '}'), nil
}
