package fakenacos

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sextantd/sextant/proto/nacos"
)

func TestCeilingAnswersEveryRequestType(t *testing.T) {
	c, err := NewCeiling(CeilingOptions{Hosts: 3, MaxMessageSize: 1 << 20, MaxStreams: 10})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Serve(lis) }()
	defer func() {
		c.Stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	cc, err := grpc.NewClient("passthrough:///"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := nacos.NewRequestClient(cc)

	// The stream takes a setup and whatever follows until the client goes.
	stream, err := nacos.NewBiRequestStreamClient(cc).RequestBiStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{"ConnectionSetupRequest", "NotifySubscriberResponse"} {
		if err := stream.Send(&nacos.Payload{Metadata: &nacos.Metadata{Type: typ}, Body: &anypb.Any{Value: []byte(`{}`)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err == nil {
		t.Error("the stream sent something")
	}

	for typ, want := range map[string]string{
		"ServerCheckRequest":        "ServerCheckResponse",
		"HealthCheckRequest":        "HealthCheckResponse",
		"InstanceRequest":           "InstanceResponse",
		"PersistentInstanceRequest": "InstanceResponse",
		"BatchInstanceRequest":      "BatchInstanceResponse",
		"SubscribeServiceRequest":   "SubscribeServiceResponse",
		"ServiceQueryRequest":       "QueryServiceResponse",
		"ServiceListRequest":        "ServiceListResponse",
		"ConfigQueryRequest":        "ErrorResponse",
	} {
		p, err := client.Request(context.Background(), &nacos.Payload{Metadata: &nacos.Metadata{Type: typ}, Body: &anypb.Any{Value: []byte(`{"requestId":"1"}`)}})
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		var body struct {
			ResultCode   int    `json:"resultCode"`
			ErrorCode    int    `json:"errorCode"`
			ConnectionID string `json:"connectionId"`
			ServiceInfo  *struct {
				Name  string            `json:"name"`
				Hosts []json.RawMessage `json:"hosts"`
			} `json:"serviceInfo"`
		}
		if err := json.Unmarshal(p.GetBody().GetValue(), &body); err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		switch got := p.GetMetadata().GetType(); {
		case got != want:
			t.Errorf("%s answered with %s, want %s", typ, got, want)
		case want == "ErrorResponse":
			if body.ErrorCode != 302 {
				t.Errorf("%s: error %d, want 302", typ, body.ErrorCode)
			}
		case body.ResultCode != 200:
			t.Errorf("%s: result %d", typ, body.ResultCode)
		case typ == "ServerCheckRequest" && strings.Count(body.ConnectionID, "_") != 2:
			t.Errorf("connection id %q, want <millis>_<ip>_<port>", body.ConnectionID)
		case strings.HasSuffix(want, "ServiceResponse") && (body.ServiceInfo == nil || len(body.ServiceInfo.Hosts) != 3):
			t.Errorf("%s: service %+v, want 3 hosts", typ, body.ServiceInfo)
		}
	}
	if c.QueryBytes < 3*300 {
		t.Errorf("a query's answer is %d bytes: too small for 3 hosts", c.QueryBytes)
	}
}
