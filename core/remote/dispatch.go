package remote

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/proto/nacos"
)

// call is what a handler knows of the request beyond its body.
type call struct {
	connectionID string
	headers      map[string]string
}

// handler serves one request type.
type handler struct {
	respType string
	serve    func(ctx context.Context, c *call, body []byte) (requestID string, resp response, err error)
}

// handle builds a handler that decodes the body into a fresh R.
func handle[R any, PR interface {
	*R
	id() string
}](respType string, fn func(context.Context, *call, PR) (response, error)) handler {
	return handler{respType: respType, serve: func(ctx context.Context, c *call, body []byte) (string, response, error) {
		req := PR(new(R))
		if err := json.Unmarshal(body, req); err != nil {
			// After a type error the rest of the body is still decoded, so the
			// requestId can be echoed; after a syntax error it is "".
			return req.id(), nil, err
		}
		resp, err := fn(ctx, c, req)
		return req.id(), resp, err
	}}
}

// serveRequest answers one unary request. It never fails at the gRPC level:
// every problem is an ErrorResponse with its Nacos code.
func (s *Server) serveRequest(ctx context.Context, p *nacos.Payload) *nacos.Payload {
	start := time.Now()
	typ := p.GetMetadata().GetType()
	respType, resp, code := s.dispatch(ctx, typ, p)
	body, err := encode(resp)
	if err != nil {
		respType, code = typeErrorResponse, codeServerError
		body, _ = json.Marshal(errorResponseFor("", errorf(codeServerError, "encoding %s: %v", respType, err)))
	}
	label := typ
	if _, known := s.handlers[typ]; !known && typ != typeServerCheck {
		label = "unknown"
	}
	s.metrics.request(label, code, time.Since(start))
	return &nacos.Payload{Metadata: &nacos.Metadata{Type: respType}, Body: &anypb.Any{Value: body}}
}

// dispatch routes a request to its handler and returns the response with its
// class name and result code.
func (s *Server) dispatch(ctx context.Context, typ string, p *nacos.Payload) (respType string, resp any, code int) {
	requestID := ""
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("request handler panicked", "type", typ, "panic", r)
			respType, resp, code = typeErrorResponse, errorResponseFor(requestID, errorf(codeServerError, "internal error handling %s", typ)), codeServerError
		}
	}()
	fail := func(e *Error) (string, any, int) {
		return typeErrorResponse, errorResponseFor(requestID, e), e.Code
	}
	if !s.ready.Load() {
		return fail(errorf(codeServerStarting, "server is starting, try again later"))
	}
	id := connectionIDFrom(ctx)
	if typ == typeServerCheck {
		r := &serverCheckResponse{ConnectionID: id}
		r.succeed("")
		return typeServerCheckResp, r, codeOK
	}
	// As in Nacos: an unknown type is 302 before an unknown connection is 301.
	h, ok := s.handlers[typ]
	if !ok {
		return fail(errorf(codeNoHandler, "no handler for request type %q", typ))
	}
	c := s.conn(id)
	if c == nil {
		return fail(errorf(codeNotRegistered, "connection %s is not registered: open the stream and send %s first", id, typeConnectionSetup))
	}
	c.touch(time.Now())
	var r response
	var err error
	requestID, r, err = h.serve(ctx, &call{connectionID: id, headers: p.GetMetadata().GetHeaders()}, p.GetBody().GetValue())
	if err != nil {
		return fail(nacosError(typ, err))
	}
	r.succeed(requestID)
	return h.respType, r, codeOK
}

// encoder is a response that encodes itself faster than encoding/json would.
type encoder interface{ encode() ([]byte, error) }

func encode(resp any) ([]byte, error) {
	if e, ok := resp.(encoder); ok {
		return e.encode()
	}
	return json.Marshal(resp)
}

func errorResponseFor(requestID string, e *Error) *errorResponse {
	return &errorResponse{responseBase{
		ResultCode: codeFail,
		ErrorCode:  e.Code,
		Message:    e.Message,
		RequestID:  requestID,
	}}
}

// nacosError maps a handler's error to the Nacos error for it.
func nacosError(typ string, err error) *Error {
	var e *Error
	var invalid *naming.InvalidError
	var syntax *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &e):
		return e
	case errors.As(err, &invalid):
		return errorf(codeInvalidParam, "%s", invalid.Error())
	case errors.Is(err, naming.ErrClientNotFound):
		return errorf(codeNotRegistered, "%v", err)
	case errors.As(err, &syntax), errors.As(err, &typeErr):
		return decodeError(typ, err)
	default:
		return errorf(codeServerError, "%s failed: %v", typ, err)
	}
}

// healthCheckRequest is the client's keep-alive.
type healthCheckRequest struct{ requestBase }

type healthCheckResponse struct{ responseBase }

func (s *Server) healthCheck(context.Context, *call, *healthCheckRequest) (response, error) {
	return &healthCheckResponse{}, nil
}
