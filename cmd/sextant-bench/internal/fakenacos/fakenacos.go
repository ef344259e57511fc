// Package fakenacos holds stand-ins for a Nacos 2.x server's client gRPC
// endpoint. Start runs a scriptable one, for testing the load generator
// against faults a real server does not produce on demand: a slow start,
// refused requests, answers of the wrong class, dropped streams. It keeps no
// registry: every naming request gets an empty success unless
// Options.Respond says otherwise. Ceiling (ceiling.go) is the wire with no
// logic at all, the measure a real server is compared with.
package fakenacos

import (
	"context"
	"encoding/json"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sextantd/sextant/proto/nacos"
)

// Options script a Server.
type Options struct {
	// Starting is how many server checks are answered "starting" (error 300).
	Starting int
	// Respond, if set, answers the requests of set-up connections (except
	// health checks): it returns the response class and JSON body; ok false
	// leaves the request to the default answer.
	Respond func(typ string, body []byte) (respType string, respBody []byte, ok bool)
}

// Server is a running fake.
type Server struct {
	Addr string
	opts Options

	starting     atomic.Int64
	healthChecks atomic.Int64

	mu      sync.Mutex
	streams map[string]*stream // by connection id (the client's address)
	// Answers receives what clients send on their streams after the setup.
	Answers chan Answer
}

// Answer is a message a client sent on its stream.
type Answer struct {
	Type string
	Body []byte
}

type stream struct {
	send func(*nacos.Payload) error
	drop context.CancelFunc
}

// responseTypes maps request classes to the class of their answer.
var responseTypes = map[string]string{
	"HealthCheckRequest":      "HealthCheckResponse",
	"InstanceRequest":         "InstanceResponse",
	"BatchInstanceRequest":    "BatchInstanceResponse",
	"SubscribeServiceRequest": "SubscribeServiceResponse",
	"ServiceQueryRequest":     "QueryServiceResponse",
	"ServiceListRequest":      "ServiceListResponse",
	// The Java client 2.2+ registers persistent instances with it.
	"PersistentInstanceRequest": "InstanceResponse",
}

// Start serves on a free loopback port until the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: lis.Addr().String(), opts: opts, streams: make(map[string]*stream), Answers: make(chan Answer, 1024)}
	s.starting.Store(int64(opts.Starting))
	g := grpc.NewServer()
	nacos.RegisterRequestServer(g, unary{s: s})
	nacos.RegisterBiRequestStreamServer(g, bidi{s: s})
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	return s
}

// HealthChecks is how many health checks set-up connections sent.
func (s *Server) HealthChecks() int64 { return s.healthChecks.Load() }

// Connections is how many connections have their stream set up.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.streams)
}

// Send sends a server request to every set-up connection, with requestIds
// from firstID up.
func (s *Server) Send(typ string, body map[string]any, firstID int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := firstID
	for _, st := range s.streams {
		body["requestId"] = strconv.Itoa(id)
		id++
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		if err := st.send(&nacos.Payload{Metadata: &nacos.Metadata{Type: typ}, Body: &anypb.Any{Value: b}}); err != nil {
			return err
		}
	}
	return nil
}

// Drop ends every connection's stream, as a server does when it drops a
// connection.
func (s *Server) Drop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.streams {
		st.drop()
	}
}

func connectionID(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok {
		return p.Addr.String()
	}
	return ""
}

type unary struct {
	nacos.UnimplementedRequestServer
	s *Server
}

func (u unary) Request(ctx context.Context, p *nacos.Payload) (*nacos.Payload, error) {
	s := u.s
	typ, body := p.GetMetadata().GetType(), p.GetBody().GetValue()
	id := connectionID(ctx)
	if typ == "ServerCheckRequest" {
		if s.starting.Add(-1) >= 0 {
			return errorResponse(300, "starting"), nil
		}
		return response("ServerCheckResponse", map[string]any{"connectionId": id}), nil
	}
	s.mu.Lock()
	_, registered := s.streams[id]
	s.mu.Unlock()
	if !registered {
		return errorResponse(301, "connection is not registered"), nil
	}
	if typ == "HealthCheckRequest" {
		s.healthChecks.Add(1)
	} else if s.opts.Respond != nil {
		if rt, rb, ok := s.opts.Respond(typ, body); ok {
			return &nacos.Payload{Metadata: &nacos.Metadata{Type: rt}, Body: &anypb.Any{Value: rb}}, nil
		}
	}
	rt, ok := responseTypes[typ]
	if !ok {
		return errorResponse(302, "no handler for "+typ), nil
	}
	return response(rt, map[string]any{"serviceInfo": map[string]any{"hosts": []any{}}}), nil
}

type bidi struct {
	nacos.UnimplementedBiRequestStreamServer
	s *Server
}

func (b bidi) RequestBiStream(st nacos.BiRequestStream_RequestBiStreamServer) error {
	s := b.s
	id := connectionID(st.Context())
	ctx, drop := context.WithCancel(st.Context())
	defer drop()
	var sendMu sync.Mutex
	send := func(p *nacos.Payload) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return st.Send(p)
	}
	msgs := make(chan *nacos.Payload)
	go func() {
		defer close(msgs)
		for {
			p, err := st.Recv()
			if err != nil {
				return
			}
			select {
			case msgs <- p:
			case <-ctx.Done():
				return
			}
		}
	}()
	defer func() {
		s.mu.Lock()
		delete(s.streams, id)
		s.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case p, ok := <-msgs:
			if !ok {
				return nil
			}
			if p.GetMetadata().GetType() == "ConnectionSetupRequest" {
				s.mu.Lock()
				s.streams[id] = &stream{send: send, drop: drop}
				s.mu.Unlock()
				continue
			}
			select {
			case s.Answers <- Answer{Type: p.GetMetadata().GetType(), Body: p.GetBody().GetValue()}:
			default:
			}
		}
	}
}

func response(typ string, fields map[string]any) *nacos.Payload {
	fields["resultCode"], fields["errorCode"], fields["success"] = 200, 0, true
	b, _ := json.Marshal(fields)
	return &nacos.Payload{Metadata: &nacos.Metadata{Type: typ}, Body: &anypb.Any{Value: b}}
}

func errorResponse(code int, msg string) *nacos.Payload {
	b, _ := json.Marshal(map[string]any{"resultCode": 500, "errorCode": code, "success": false, "message": msg})
	return &nacos.Payload{Metadata: &nacos.Metadata{Type: "ErrorResponse"}, Body: &anypb.Any{Value: b}}
}
