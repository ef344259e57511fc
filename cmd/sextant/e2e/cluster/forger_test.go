package cluster_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	clusterv1 "github.com/sextantd/sextant/proto/cluster/v1"
	peerv1 "github.com/sextantd/sextant/proto/grpctransport/v1"
)

// forger is what anyone who reaches a node's cluster port can run: a plain
// gRPC client of grpctransport's peer protocol (proto/grpctransport/v1),
// stating whatever sender it likes, and proving a secret of its choice.
type forger struct {
	client peerv1.PeerClient
	// secret, when set, is proved on each stream (see peer.proto); a
	// forger without the cluster's has a wrong one, or none.
	secret []byte
}

// newForger dials the cluster port of the node whose HTTP port is
// httpPort (HTTP port + 1001).
func newForger(t *testing.T, httpPort int, secret string) *forger {
	t.Helper()
	conn, err := grpc.NewClient(net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort+1001)),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &forger{client: peerv1.NewPeerClient(conn), secret: []byte(secret)}
}

// open returns the context a stream of method is opened with, as from.
func (f *forger) open(ctx context.Context, method, from string) (context.Context, error) {
	md := []string{"sextant-from", from}
	if len(f.secret) > 0 {
		res, err := f.client.Challenge(ctx, &peerv1.ChallengeRequest{})
		if err != nil {
			return nil, err
		}
		m := hmac.New(sha256.New, f.secret)
		for _, part := range []string{"sextant-grpctransport-v1", method, from} {
			m.Write([]byte(part))
			m.Write([]byte{0})
		}
		m.Write(res.GetChallenge())
		md = append(md, "sextant-challenge-bin", string(res.GetChallenge()), "sextant-proof-bin", string(m.Sum(nil)))
	}
	return metadata.AppendToOutgoingContext(ctx, md...), nil
}

// call sends one message of kind as from, on a stream of its own, and
// returns the answer: the node's error if it refused it.
func (f *forger) call(from, kind string, msg proto.Message) ([]byte, error) {
	payload, err := proto.Marshal(msg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx, err = f.open(ctx, peerv1.Peer_Call_FullMethodName, from)
	if err != nil {
		return nil, err
	}
	stream, err := f.client.Call(ctx)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&peerv1.CallRequest{Id: 1, Kind: kind, Payload: payload, TimeoutNanos: int64(5 * time.Second)}); err != nil {
		return nil, fmt.Errorf("send: %w", err)
	}
	res, err := stream.Recv()
	if err != nil {
		return nil, err
	}
	if res.GetError() != "" {
		return nil, errors.New(res.GetError())
	}
	return res.GetPayload(), nil
}

// sync sends a sync as from.
func (f *forger) sync(from string, msg *clusterv1.Sync) error {
	_, err := f.call(from, "sync", msg)
	return err
}

// verify sends a verification as from, and returns what the node asks for.
func (f *forger) verify(from string, entries ...*clusterv1.Verify_Entry) ([]string, error) {
	raw, err := f.call(from, "verify", &clusterv1.Verify{Entries: entries})
	if err != nil {
		return nil, err
	}
	var answer clusterv1.VerifyAnswer
	if err := proto.Unmarshal(raw, &answer); err != nil {
		return nil, err
	}
	return answer.Need, nil
}

// snapshot asks for the node's snapshot as from: every client it holds.
func (f *forger) snapshot(from string) ([]*clusterv1.Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx, err := f.open(ctx, peerv1.Peer_Snapshot_FullMethodName, from)
	if err != nil {
		return nil, err
	}
	stream, err := f.client.Snapshot(ctx, &peerv1.SnapshotRequest{})
	if err != nil {
		return nil, err
	}
	var clients []*clusterv1.Client
	var chunk []byte
	for {
		piece, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return clients, nil
		}
		if err != nil {
			return nil, err
		}
		chunk = append(chunk, piece.GetData()...)
		if piece.GetMore() {
			continue
		}
		var c clusterv1.SnapshotChunk
		if err := proto.Unmarshal(chunk, &c); err != nil {
			return nil, err
		}
		clients, chunk = append(clients, c.Clients...), nil
	}
}

// forgedClient is a client of one instance of service in namespace.
func forgedClient(id string, revision uint64, namespace, service string, in *clusterv1.Instance) *clusterv1.Client {
	return &clusterv1.Client{Id: id, Revision: revision, Services: []*clusterv1.ServiceInstances{
		{Namespace: namespace, Group: "DEFAULT_GROUP", Name: service, Instances: []*clusterv1.Instance{in}}}}
}

// forgedInstance is a healthy, enabled, ephemeral instance at ip:port of
// weight.
func forgedInstance(ip string, port int32, weight float64) *clusterv1.Instance {
	return &clusterv1.Instance{Id: fmt.Sprintf("%s#%d#DEFAULT#DEFAULT_GROUP@@forged", ip, port), Ip: ip, Port: port, Weight: weight,
		Healthy: true, Enabled: true, Ephemeral: true, Cluster: "DEFAULT"}
}
