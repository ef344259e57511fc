package server

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sextantd/sextant/core/config"
	"github.com/sextantd/sextant/core/pluginhost"
	"github.com/sextantd/sextant/proto/nacos"
	"github.com/sextantd/sextant/sdk"
	sdkpush "github.com/sextantd/sextant/sdk/push"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// freePort returns a port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// fakePush is a push plugin serving the rpc role whose executor hands each
// batch to pushed (dropping it when pushed is full) and acknowledges it: core
// does not import plugins, even in tests.
func fakePush(pushed chan<- sdkpush.Batch) sdkpush.Plugin {
	return sdkpush.Plugin{
		Info: sdk.Info{Name: "fakepush", Version: "0.0.1"},
		Role: sdkpush.RoleRPC,
		New: func([]byte, sdkpush.Host) (sdkpush.Executor, error) {
			return executorFunc(func(_ context.Context, b sdkpush.Batch) []error {
				select {
				case pushed <- b:
				default:
				}
				return make([]error, len(b.Targets))
			}), nil
		},
	}
}

type executorFunc func(context.Context, sdkpush.Batch) []error

func (f executorFunc) Push(ctx context.Context, b sdkpush.Batch) []error { return f(ctx, b) }

func payload(typ, body string) *nacos.Payload {
	return &nacos.Payload{Metadata: &nacos.Metadata{Type: typ}, Body: &anypb.Any{Value: []byte(body)}}
}

// TestStopLeavesNothingRunning starts a server, connects a client that
// registers and subscribes, and stops the server with the client still
// connected: Stop must return in time, and no goroutine may outlive it.
func TestStopLeavesNothingRunning(t *testing.T) {
	cfg := config.Default()
	cfg.Port = freePort(t)
	cfg.Remote.GRPCPort = freePort(t)
	cfg.DataDir = t.TempDir()
	cfg.Push.Delay = 0
	// The test binary cannot run "sextant plugin", so the executor runs in process.
	cfg.Plugins = map[string]config.Plugin{"fakepush": {InProcess: true}}
	pushed := make(chan sdkpush.Batch, 100)
	srv, err := New(cfg, Options{
		Logger:   hclog.NewNullLogger(),
		Builtins: pluginhost.Builtins{Push: map[string]sdkpush.Plugin{"fakepush": fakePush(pushed)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}

	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(cfg.Port) + "/nacos/v1/console/health/readiness")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("readiness: %v %v", resp, err)
	}
	resp.Body.Close()

	conn, err := grpc.NewClient("127.0.0.1:"+strconv.Itoa(cfg.GRPCPort()), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	unary := nacos.NewRequestClient(conn)
	if _, err := unary.Request(ctx, payload("ServerCheckRequest", `{}`)); err != nil {
		t.Fatal(err)
	}
	streamCtx, cancelStream := context.WithTimeout(ctx, 10*time.Second) // bounds the final Recv loop
	defer cancelStream()
	stream, err := nacos.NewBiRequestStreamClient(conn).RequestBiStream(streamCtx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(payload("ConnectionSetupRequest", `{"clientVersion":"test"}`)); err != nil {
		t.Fatal(err)
	}
	register := payload("InstanceRequest", `{"serviceName":"s","type":"registerInstance","instance":{"ip":"10.0.0.1","port":80,"enabled":true,"ephemeral":true}}`)
	deadline := time.Now().Add(5 * time.Second)
	for {
		p, err := unary.Request(ctx, register)
		if err != nil {
			t.Fatal(err)
		}
		if p.GetMetadata().GetType() == "InstanceResponse" {
			break
		}
		var e struct{ ErrorCode int }
		_ = json.Unmarshal(p.GetBody().GetValue(), &e)
		if e.ErrorCode != 301 || time.Now().After(deadline) {
			t.Fatalf("register answered %s %s", p.GetMetadata().GetType(), p.GetBody().GetValue())
		}
	}
	if _, err := unary.Request(ctx, payload("SubscribeServiceRequest", `{"serviceName":"s","subscribe":true}`)); err != nil {
		t.Fatal(err)
	}
	select { // the subscription reaches the executor the plugin host runs
	case b := <-pushed:
		if b.Service.Name != "s" {
			t.Fatalf("pushed %+v, want service s", b.Service)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the subscriber was never pushed to")
	}

	stopCtx, cancel := context.WithTimeout(ctx, StopTimeout)
	defer cancel()
	began := time.Now()
	if err := srv.Stop(stopCtx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if took := time.Since(began); took > StopTimeout {
		t.Fatalf("stop took %v", took)
	}
	for { // pushes sent before Stop may still be read; then the stream must end
		if _, err := stream.Recv(); err != nil {
			if streamCtx.Err() != nil {
				t.Fatal("the client's stream stayed open after Stop")
			}
			break
		}
	}
}
