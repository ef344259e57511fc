package consensus

import (
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// logCacheSize is how many recent log entries stay in memory, for the
// followers' replication.
const logCacheSize = 512

// retainSnapshots is how many snapshots stay on disk.
const retainSnapshots = 2

// stores are where a node keeps its raft state, under DataDir/raft: the
// log and the stable store (term, vote) in raft.db, the snapshots in
// snapshots/.
type stores struct {
	bolt      *raftboltdb.BoltStore
	logs      raft.LogStore
	snapshots raft.SnapshotStore
}

func openStores(dir string, log hclog.Logger) (*stores, error) {
	bolt, err := raftboltdb.New(raftboltdb.Options{
		Path: filepath.Join(dir, "raft.db"),
		// Another process holding the file fails the start, rather than
		// waiting for ever.
		BoltOptions: &bbolt.Options{Timeout: time.Second},
	})
	if err != nil {
		return nil, err
	}
	logs, err := raft.NewLogCache(logCacheSize, bolt)
	if err != nil {
		bolt.Close()
		return nil, err
	}
	snapshots, err := raft.NewFileSnapshotStoreWithLogger(dir, retainSnapshots, log.Named("snapshots"))
	if err != nil {
		bolt.Close()
		return nil, err
	}
	return &stores{bolt: bolt, logs: logs, snapshots: snapshots}, nil
}
