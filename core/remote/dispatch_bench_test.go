package remote

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/notify"
	"github.com/sextantd/sextant/core/remote/serveropts"
	"github.com/sextantd/sextant/proto/nacos"
)

// The request path of one unary request, as grpc-go hands it to the
// server: decoding, the registry, encoding and the metrics. Each benchmark
// serves the request bodies the official Go client sends.

// benchServices is how many services the benchmarks spread their requests
// over.
const benchServices = 100

// newBenchServer returns a server with a set-up connection "c1" and, in
// every service, instances registered by ten other connections.
func newBenchServer(b *testing.B) (*Server, context.Context) {
	b.Helper()
	registry := naming.NewRegistry(naming.Config{Bus: notify.New(notify.Config{}),
		Limits: naming.Limits{MaxNameLength: 512, MaxMetadataBytes: 16384, MaxBatchSize: 1000, MaxClustersPerFilter: 64}})
	s := New(Config{MaxMessageSize: 1 << 20, Registry: registry, Logger: hclog.NewNullLogger(), Metrics: prometheus.NewRegistry()})
	s.SetReady(true)
	for p := range 11 {
		id := "c" + strconv.Itoa(p+1)
		c := newConn(id, "127.0.0.1:"+strconv.Itoa(40000+p), time.Now(), func(serveropts.Message) error { return nil }, func(error) {})
		if err := s.register(c, []byte(`{"clientVersion":"Nacos-Go-Client:v2.3.2","labels":{"source":"sdk","module":"naming"}}`)); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(c.close)
		if p == 0 {
			continue
		}
		for i := range benchServices {
			if typ, body := benchServe(s, contextOf(id), "InstanceRequest", registerBody(i, p, 8080), "InstanceResponse"); body != nil {
				b.Fatalf("populating: %s %s", typ, body)
			}
		}
	}
	return s, contextOf("c1")
}

func contextOf(connID string) context.Context {
	return withConnectionID(context.Background(), connID)
}

// registerBody is an InstanceRequest as nacos-sdk-go v2 sends it.
func registerBody(service, provider, port int) []byte {
	return fmt.Appendf(nil, `{"requestId":"%d","namespace":"public","serviceName":"bench-service-%d","groupName":"DEFAULT_GROUP",`+
		`"module":"naming","type":"registerInstance","instance":{"instanceId":"","ip":"10.0.0.%d","port":%d,"weight":1,`+
		`"healthy":true,"enabled":true,"ephemeral":true,"clusterName":"DEFAULT","serviceName":"","metadata":{"version":"1.0"},`+
		`"instanceHeartBeatInterval":0,"ipDeleteTimeout":0,"instanceHeartBeatTimeOut":0}}`, port, service, provider, port)
}

// queryBody is a ServiceQueryRequest as nacos-sdk-go v2 sends it.
func queryBody(service int) []byte {
	return fmt.Appendf(nil, `{"requestId":"%d","namespace":"public","serviceName":"bench-service-%d","groupName":"DEFAULT_GROUP",`+
		`"module":"naming","cluster":"","healthyOnly":false,"udpPort":0}`, service, service)
}

// benchServe serves a request and returns the answer's class, and its body
// if the class is not want.
func benchServe(s *Server, ctx context.Context, typ string, body []byte, want string) (string, []byte) {
	a := s.serveRequest(ctx, &nacos.Payload{Metadata: &nacos.Metadata{Type: typ, ClientIp: "127.0.0.1"}, Body: &anypb.Any{Value: body}})
	if a.Type != want {
		return a.Type, bytes.Join(a.Body, nil)
	}
	return a.Type, nil
}

// BenchmarkDispatchRegister registers c1's instance in one service after
// another, each time at a new port: every request is a change.
func BenchmarkDispatchRegister(b *testing.B) {
	s, ctx := newBenchServer(b)
	bodies := make([][]byte, 4*benchServices)
	for i := range bodies {
		bodies[i] = registerBody(i%benchServices, 0, 9000+i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if typ, body := benchServe(s, ctx, "InstanceRequest", bodies[i%len(bodies)], "InstanceResponse"); body != nil {
			b.Fatalf("%s %s", typ, body)
		}
		i++
	}
}

// BenchmarkDispatchQuery queries services of ten instances each.
func BenchmarkDispatchQuery(b *testing.B) {
	s, ctx := newBenchServer(b)
	bodies := make([][]byte, benchServices)
	for i := range bodies {
		bodies[i] = queryBody(i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if typ, body := benchServe(s, ctx, "ServiceQueryRequest", bodies[i%len(bodies)], "QueryServiceResponse"); body != nil {
			b.Fatalf("%s %s", typ, body)
		}
		i++
	}
}

// BenchmarkDispatchHealthCheck answers the client's keep-alive.
func BenchmarkDispatchHealthCheck(b *testing.B) {
	s, ctx := newBenchServer(b)
	body := []byte(`{"requestId":"1","module":"internal"}`)
	b.ReportAllocs()
	for b.Loop() {
		if typ, body := benchServe(s, ctx, "HealthCheckRequest", body, "HealthCheckResponse"); body != nil {
			b.Fatalf("%s %s", typ, body)
		}
	}
}
