package natstransport

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/sextantd/sextant/sdk/transport/transporttest"
)

// kitConfig is the kit's configuration block for a node on srv.
func kitConfig(srv *server.Server) map[string]any {
	return map[string]any{"servers": []any{srv.ClientURL()}, "request_timeout": "3s"}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	srv := startNATS(t, nil)
	transporttest.Run(t, transporttest.Options{Plugin: &Plugin, Config: kitConfig(srv)})
}

// TestConformanceWithPermissions runs the kit against a NATS server where
// each node has a user that may publish only as itself, as the README
// says to set it up: a stranger without credentials, with a wrong password,
// or with another node's credentials gets nothing through.
func TestConformanceWithPermissions(t *testing.T) {
	t.Parallel()
	srv := startNATS(t, func(o *server.Options) {
		o.Users = []*server.User{
			{Username: "a", Password: "secret-a", Permissions: member("sextant", transporttest.NodeA, "")},
			{Username: "b", Password: "secret-b", Permissions: member("sextant", transporttest.NodeB, "")},
		}
	})
	transporttest.Run(t, transporttest.Options{
		Plugin: &Plugin,
		Config: kitConfig(srv),
		Auth: &transporttest.Auth{
			A: map[string]any{"user": "a", "password": "secret-a"},
			B: map[string]any{"user": "b", "password": "secret-b"},
			Refused: map[string]map[string]any{
				"no credentials":             {},
				"a wrong password":           {"user": "b", "password": "not b's"},
				"node A's user, as node C":   {"user": "a", "password": "secret-a"},
				"node B's user, as node C":   {"user": "b", "password": "secret-b"},
				"a token the server ignores": {"token": "let me in"},
			},
		},
	})
}

func TestConformanceOfTheBinary(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "natstransport")
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/natstransport").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	srv := startNATS(t, nil)
	transporttest.Run(t, transporttest.Options{Binary: bin, Config: kitConfig(srv)})
}
