package scenario

import (
	"context"
	"fmt"
	"time"

	"github.com/sextantd/sextant/cmd/sextant-bench/internal/report"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/wire"
)

// PersistentRegisterOptions shape the persistent-register scenario.
type PersistentRegisterOptions struct {
	Connections int // client connections
	Services    int // services the instances are spread over
}

// Validate checks the options.
func (o PersistentRegisterOptions) Validate() error {
	switch {
	case o.Connections < 1:
		return fmt.Errorf("--connections must be at least 1, got %d", o.Connections)
	case o.Services < 1:
		return fmt.Errorf("--services must be at least 1, got %d", o.Services)
	}
	return nil
}

// persistentPorts is how many ports an address block of persistent
// instances uses before the next IP.
const persistentPorts = 40000

// PersistentRegister measures persistent registrations: C connections send
// PersistentInstanceRequests (registerInstance, ephemeral=false), each for an
// address of its own, so that every one is a new instance the server writes
// through its Raft store; a request's latency is the Raft apply as a client
// sees it. Operation k registers 10.x.y.z:port (k-th address) in service
// k mod S over connection k mod C. The default count is unbounded: the run
// lasts --duration. The instances are persistent and stay on the server.
func PersistentRegister(c *Common, o PersistentRegisterOptions, tool string) *report.Result {
	r := newRun(c, "persistent-register", tool)
	r.param("connections", o.Connections)
	r.param("services", o.Services)
	setupEnd := time.Now().Add(c.SetupTimeout)
	r.versions(context.Background())

	connect := r.newSeries("connect")
	register := r.newSeries("register")
	conns := r.connect(setupEnd, o.Connections, connect, nil)

	if len(live(conns)) > 0 {
		r.drive(register, c.Count, func(ctx context.Context, k int64) error {
			conn := conns[int(k%int64(o.Connections))]
			if conn == nil {
				return errNotConnected
			}
			inst := wire.NewInstance(instanceIP(int(k/persistentPorts)), portBase+int(k%persistentPorts))
			return conn.Call(ctx, wire.RegisterPersistent(r.service(int(k%int64(o.Services))), inst), &wire.Response{})
		})
	} else {
		r.note("no connection could be set up; nothing was measured")
	}
	r.sampleAfter()
	r.figure("connections held", float64(len(live(conns))), "connections")
	r.note("the persistent instances stay on the server after the run (prefix %s)", c.Prefix)
	r.closeAll(connect, conns)
	return r.finish("register", true)
}
