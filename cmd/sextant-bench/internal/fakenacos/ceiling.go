package fakenacos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"

	"github.com/sextantd/sextant/core/remote/h2serve"
	"github.com/sextantd/sextant/core/remote/serveropts"
	"github.com/sextantd/sextant/proto/nacos"
)

// CeilingOptions shape a Ceiling.
type CeilingOptions struct {
	// Hosts is how many instances every query and subscription answer
	// lists: as many as the services of the scenario run against it have.
	Hosts int
	// MaxMessageSize and MaxStreams are those of the server compared with
	// (serveropts.Transport), whose transport the ceiling runs on: the two
	// differ only by what the server does.
	MaxMessageSize, MaxStreams int
	// Transport is the HTTP/2 server under it: TransportGRPC (grpc-go, as
	// Sextant's) or TransportH2 (h2serve, the purpose-built experiment).
	Transport string
}

// The transports a Ceiling can run on.
const (
	TransportGRPC = "grpc"
	TransportH2   = "h2"
)

// Ceiling is the Nacos 2.x client wire with no logic behind it: what a
// server on the same gRPC stack costs when it does nothing. It answers the
// server check with the connection's id, accepts the connection setup on the
// bi-stream (and whatever the client sends there after it), and answers
// every other request with a fixed body of the right class, encoded once,
// of the size a real server's would have: a query or a subscription gets a
// service of Hosts instances. It keeps nothing, checks nothing (a
// connection need not be set up to be answered) and echoes no requestId.
type Ceiling struct {
	grpc    *grpc.Server // or
	h2      *h2serve.Server
	answers map[string]*serveropts.Answer // by request class; read-only once built
	// noHandler answers a request class it does not know, as Nacos does.
	noHandler *serveropts.Answer
	// QueryBytes is the size of the body of a query's answer.
	QueryBytes int
}

// The service the fixed answers describe: a name as long as the load
// generator's (bench-<8 hex>-<n>).
const (
	ceilingGroup   = "DEFAULT_GROUP"
	ceilingService = "bench-ceiling-000"
)

// NewCeiling builds a Ceiling; Serve serves it.
func NewCeiling(o CeilingOptions) (*Ceiling, error) {
	info, err := json.Marshal(ceilingServiceInfo(o.Hosts))
	if err != nil {
		return nil, err
	}
	page := make([]string, 10)
	for i := range page {
		page[i] = ceilingService[:len(ceilingService)-1] + strconv.Itoa(i)
	}
	bodies := map[string]map[string]any{
		"HealthCheckRequest":        {},
		"InstanceRequest":           {"type": "registerInstance"},
		"PersistentInstanceRequest": {"type": "registerInstance"},
		"BatchInstanceRequest":      {"type": "batchRegisterInstance"},
		"SubscribeServiceRequest":   {"serviceInfo": json.RawMessage(info)},
		"ServiceQueryRequest":       {"serviceInfo": json.RawMessage(info)},
		"ServiceListRequest":        {"count": 1000, "serviceNames": page},
	}
	c := &Ceiling{answers: make(map[string]*serveropts.Answer, len(bodies)), noHandler: answer(errorResponse(302, "no handler for this request type"))}
	for typ, fields := range bodies {
		respType, ok := responseTypes[typ]
		if !ok {
			return nil, fmt.Errorf("no response class for %s", typ)
		}
		fields["requestId"] = ""
		c.answers[typ] = answer(response(respType, fields))
	}
	c.QueryBytes = len(c.answers["ServiceQueryRequest"].Body[0])
	switch o.Transport {
	case TransportGRPC, "":
		c.grpc = grpc.NewServer(serveropts.Transport(o.MaxMessageSize, o.MaxStreams)...)
		serveropts.RegisterRequest(c.grpc, c.request)
		nacos.RegisterBiRequestStreamServer(c.grpc, ceilingStream{})
	case TransportH2:
		c.h2 = h2serve.New(h2serve.Handlers{Unary: c.request, Stream: func(context.Context, *h2serve.Stream) h2serve.Receiver { return ignored{} }},
			h2serve.Options{MaxMessageSize: o.MaxMessageSize, MaxStreams: o.MaxStreams})
	default:
		return nil, fmt.Errorf("transport %q: want %q or %q", o.Transport, TransportGRPC, TransportH2)
	}
	return c, nil
}

// ignored takes what a client sends on its bi-stream and does nothing with
// it, as the ceiling's grpc-go stream does.
type ignored struct{}

func (ignored) Receive(*nacos.Payload) error { return nil }
func (ignored) Closed()                      {}

// answer is the Answer of p's class and body.
func answer(p *nacos.Payload) *serveropts.Answer {
	return &serveropts.Answer{Type: p.GetMetadata().GetType(), Body: [][]byte{p.GetBody().GetValue()}}
}

// Serve serves on lis until Stop.
func (c *Ceiling) Serve(lis net.Listener) error {
	if c.h2 != nil {
		if err := c.h2.Serve(lis); !errors.Is(err, h2serve.ErrStopped) {
			return err
		}
		return nil
	}
	return c.grpc.Serve(lis)
}

// Stop closes every connection and the listener.
func (c *Ceiling) Stop() {
	if c.h2 != nil {
		c.h2.Stop()
		return
	}
	c.grpc.Stop()
}

// ceilingInstance and ceilingInfo are an instance and a ServiceInfo with the
// fields a Nacos server sends.
type ceilingInstance struct {
	InstanceID                string            `json:"instanceId"`
	IP                        string            `json:"ip"`
	Port                      int               `json:"port"`
	Weight                    float64           `json:"weight"`
	Healthy                   bool              `json:"healthy"`
	Enabled                   bool              `json:"enabled"`
	Ephemeral                 bool              `json:"ephemeral"`
	ClusterName               string            `json:"clusterName"`
	ServiceName               string            `json:"serviceName"`
	Metadata                  map[string]string `json:"metadata"`
	InstanceHeartBeatInterval int64             `json:"instanceHeartBeatInterval"`
	InstanceHeartBeatTimeOut  int64             `json:"instanceHeartBeatTimeOut"`
	IPDeleteTimeout           int64             `json:"ipDeleteTimeout"`
	InstanceIDGenerator       string            `json:"instanceIdGenerator"`
}

type ceilingInfo struct {
	Name                     string            `json:"name"`
	GroupName                string            `json:"groupName"`
	Clusters                 string            `json:"clusters"`
	CacheMillis              int               `json:"cacheMillis"`
	Hosts                    []ceilingInstance `json:"hosts"`
	LastRefTime              int64             `json:"lastRefTime"`
	Checksum                 string            `json:"checksum"`
	AllIPs                   bool              `json:"allIPs"`
	ReachProtectionThreshold bool              `json:"reachProtectionThreshold"`
	Valid                    bool              `json:"valid"`
}

func ceilingServiceInfo(hosts int) ceilingInfo {
	grouped := ceilingGroup + "@@" + ceilingService
	info := ceilingInfo{Name: ceilingService, GroupName: ceilingGroup, CacheMillis: 10000,
		Hosts: make([]ceilingInstance, hosts), LastRefTime: time.Now().UnixMilli(), Valid: true}
	for i := range info.Hosts {
		ip := fmt.Sprintf("10.0.%d.%d", i>>8&0xff, i&0xff)
		info.Hosts[i] = ceilingInstance{
			InstanceID: ip + "#20000#DEFAULT#" + grouped, IP: ip, Port: 20000, Weight: 1,
			Healthy: true, Enabled: true, Ephemeral: true, ClusterName: "DEFAULT", ServiceName: grouped,
			Metadata: map[string]string{}, InstanceHeartBeatInterval: 5000, InstanceHeartBeatTimeOut: 15000,
			IPDeleteTimeout: 30000, InstanceIDGenerator: "simple",
		}
	}
	return info
}

// request answers a unary request.
func (c *Ceiling) request(ctx context.Context, p *nacos.Payload) *serveropts.Answer {
	typ := p.GetMetadata().GetType()
	if a := c.answers[typ]; a != nil {
		return a
	}
	if typ == "ServerCheckRequest" {
		// Once per connection: its id, as Nacos forms it.
		id := strconv.FormatInt(time.Now().UnixMilli(), 10)
		if pr, ok := peer.FromContext(ctx); ok {
			if host, port, err := net.SplitHostPort(pr.Addr.String()); err == nil {
				id += "_" + host + "_" + port
			}
		}
		return answer(response("ServerCheckResponse", map[string]any{"connectionId": id, "supportAbilityNegotiation": false}))
	}
	return c.noHandler
}

type ceilingStream struct {
	nacos.UnimplementedBiRequestStreamServer
}

// RequestBiStream reads the connection setup and what follows until the
// client goes.
func (ceilingStream) RequestBiStream(st nacos.BiRequestStream_RequestBiStreamServer) error {
	for {
		if _, err := st.Recv(); err != nil {
			return nil
		}
	}
}
