package server

import (
	"context"
	"errors"

	"github.com/sextantd/sextant/core/cluster"
	"github.com/sextantd/sextant/core/distro"
)

var errNotClustered = errors.New("this node is not in a cluster")

// inbound takes what the transport receives from other members: health
// reports for the member table, everything else for Distro.
type inbound struct {
	cluster *cluster.Cluster
	distro  *distro.Distro // nil for a standalone node
}

func (in *inbound) Handle(ctx context.Context, from, kind string, payload []byte) ([]byte, error) {
	if kind == cluster.ReportKind {
		return in.cluster.HandleReport(from, payload)
	}
	if in.distro == nil {
		return nil, errNotClustered
	}
	return in.distro.Handle(ctx, from, kind, payload)
}

func (in *inbound) Snapshot(ctx context.Context, from string, fn func([]byte) error) error {
	if in.distro == nil {
		return errNotClustered
	}
	return in.distro.Snapshot(ctx, from, fn)
}
