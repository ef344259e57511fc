package remote

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"google.golang.org/grpc/peer"

	"github.com/sextantd/sextant/core/auth"
	"github.com/sextantd/sextant/core/consensus"
	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/persist"
	"github.com/sextantd/sextant/core/remote/serveropts"
	"github.com/sextantd/sextant/proto/nacos"
)

// call is what a handler knows of the request beyond its body.
type call struct {
	connectionID string
	headers      map[string]string
	// authorize, set when auth is on, checks that the request's user may
	// do what it asks in the namespace its body names.
	authorize func(namespace string) error
}

// codeNoRight is Nacos's NO_RIGHT: the token is missing, invalid or expired,
// or its user lacks the permission.
const codeNoRight = 403

// openRequests need no token when auth is on: the client's keep-alive, which
// reads nothing. ServerCheckRequest is answered before any handler, and the
// connection setup and the client's answers to server requests come on the
// stream: none of them reads or changes the registry.
var openRequests = map[string]bool{typeHealthCheck: true}

// requestAccess is what each request type needs on the namespace it names,
// as Nacos's @Secured handlers. With auth on, a request type in neither this
// table nor openRequests is refused: a new one must say what it needs.
var requestAccess = map[string]auth.Access{
	"InstanceRequest":           auth.Write,
	"PersistentInstanceRequest": auth.Write,
	"BatchInstanceRequest":      auth.Write,
	"SubscribeServiceRequest":   auth.Read,
	"ServiceQueryRequest":       auth.Read,
	"ServiceListRequest":        auth.Read,
}

// namespaced is a request that names a namespace.
type namespaced interface{ scope() string }

func (r *namingRequest) scope() string { return r.Namespace }

// authorizer authenticates a request's token and returns the check of the
// namespace its body names, which runs once the body is decoded.
func (s *Server) authorizer(typ string, headers map[string]string) (func(string) error, *Error) {
	id, err := s.cfg.Auth.Authenticate(headers[auth.TokenHeader])
	if err != nil {
		return nil, errorf(codeNoRight, "%v", err)
	}
	need, known := requestAccess[typ]
	if !known {
		return nil, errorf(codeNoRight, "%s is refused while auth is on: no permission covers it", typ)
	}
	return func(namespace string) error {
		if namespace == "" {
			namespace = naming.DefaultNamespace
		}
		if !id.Can(namespace, need) {
			return errorf(codeNoRight, "%v", &auth.ForbiddenError{User: id.Name, Namespace: namespace, Need: need})
		}
		return nil
	}, nil
}

// handler serves one request type.
type handler struct {
	respType string
	serve    func(ctx context.Context, c *call, body []byte) (requestID string, resp response, err error)
}

// handle builds a handler that decodes the body into a fresh R: in one pass
// when R is a fastDecoder and the body is usual (request_decode.go), else
// with encoding/json.
func handle[R any, PR interface {
	*R
	id() string
}](respType string, fn func(context.Context, *call, PR) (response, error)) handler {
	return handler{respType: respType, serve: func(ctx context.Context, c *call, body []byte) (string, response, error) {
		req := PR(new(R))
		if f, ok := any(req).(fastDecoder); !ok || !f.decodeFast(body) {
			*req = *new(R) // what the fast path left
			if err := json.Unmarshal(body, req); err != nil {
				// After a type error the rest of the body is still decoded, so the
				// requestId can be echoed; after a syntax error it is "".
				return req.id(), nil, err
			}
		}
		if c.authorize != nil {
			ns, ok := any(req).(namespaced)
			if !ok {
				return req.id(), nil, errorf(codeNoRight, "%T names no namespace to check permissions on", req)
			}
			if err := c.authorize(ns.scope()); err != nil {
				return req.id(), nil, err
			}
		}
		resp, err := fn(ctx, c, req)
		return req.id(), resp, err
	}}
}

// serveRequest answers one unary request. It never fails at the gRPC level:
// every problem is an ErrorResponse with its Nacos code, but for a refusal
// (403), which is the request's own response type with that code.
func (s *Server) serveRequest(ctx context.Context, p *nacos.Payload) *serveropts.Answer {
	start := time.Now()
	typ := p.GetMetadata().GetType()
	respType, resp, code := s.dispatch(ctx, typ, p)
	a, err := newAnswer(respType, resp)
	if err != nil {
		resp, code = errorResponseFor("", errorf(codeServerError, "encoding %s: %v", respType, err)), codeServerError
		a, _ = newAnswer(typeErrorResponse, resp) // an errorResponse always encodes
	}
	label := typ
	if _, known := s.handlers[typ]; !known && typ != typeServerCheck {
		label = s.metrics.unknown.label(typ, s.log) // bounded: unknown_types.go
	}
	if e, failed := resp.(*errorResponse); failed && code != codeServerStarting && code != codeNoHandler && code != codeNotRegistered {
		s.requestFailed(ctx, label, code, e.Message)
	}
	s.metrics.request(label, code, time.Since(start))
	return a
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
	// A refusal for lack of rights is answered as Nacos's auth filter does:
	// the handler's own response type carrying the error. Clients retry an
	// ErrorResponse and then reconnect; a refusal they report to the caller.
	refuse := func(respType string, e *Error) (string, any, int) {
		return respType, errorResponseFor(requestID, e), e.Code
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
	cl := &call{connectionID: id, headers: p.GetMetadata().GetHeaders()}
	if s.cfg.Auth != nil && !openRequests[typ] {
		var e *Error
		if cl.authorize, e = s.authorizer(typ, cl.headers); e != nil {
			return refuse(h.respType, e)
		}
	}
	var r response
	var err error
	requestID, r, err = h.serve(ctx, cl, p.GetBody().GetValue())
	if err != nil {
		e := nacosError(typ, err)
		if e.Code == codeNoRight {
			return refuse(h.respType, e)
		}
		return fail(e)
	}
	r.succeed(requestID)
	return h.respType, r, codeOK
}

// requestFailed logs a request that failed at warn, as clientErrors does:
// each client's same failure (request type and code) once a minute at most.
// Unknown types are logged by their own bound (unknown_types.go); requests
// to a starting server, and those a client sends before its connection's
// setup has been handled (as clients do), fail by no fault of the client.
func (s *Server) requestFailed(ctx context.Context, typ string, code int, message string) {
	id := connectionIDFrom(ctx)
	var addr string
	if c := s.conn(id); c != nil {
		addr = c.addr
	} else if p, ok := peer.FromContext(ctx); ok {
		addr = p.Addr.String()
	}
	s.clientErrors.report(clientIP(addr, id), typ+" "+strconv.Itoa(code), "client request failed",
		"connection", id, "type", typ, "code", code, "error", message)
}

// encoder is a response that encodes itself faster than encoding/json would
// (response_encode.go).
type encoder interface{ encode() ([]byte, error) }

// newAnswer returns the answer of class typ whose body is resp: a ServiceInfo
// spliced in as it is cached, anything else encoded.
func newAnswer(typ string, resp any) (*serveropts.Answer, error) {
	if r, ok := resp.(*serviceInfoResponse); ok {
		return r.answer(typ), nil
	}
	var body []byte
	var err error
	if e, ok := resp.(encoder); ok {
		body, err = e.encode()
	} else {
		body, err = json.Marshal(resp)
	}
	if err != nil {
		return nil, err
	}
	a := new(singleAnswer)
	a.parts[0] = body
	a.Answer = serveropts.Answer{Type: typ, Body: a.parts[:]}
	return &a.Answer, nil
}

// singleAnswer is an answer of one part, allocated with it.
type singleAnswer struct {
	serveropts.Answer
	parts [1][]byte
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
	case errors.Is(err, consensus.ErrNoQuorum), errors.Is(err, consensus.ErrStopped):
		return errorf(codeUnavailable, "%s: %v", typ, err)
	case errors.Is(err, naming.ErrInstanceNotFound), errors.Is(err, persist.ErrNotFound), errors.Is(err, persist.ErrExists):
		return errorf(codeInvalidParam, "%v", err)
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
