package grpctransport_test

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/sextantd/sextant/plugins/grpctransport"
	"github.com/sextantd/sextant/plugins/grpctransport/tlstest"
	"github.com/sextantd/sextant/sdk/transport/transporttest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	transporttest.Run(t, transporttest.Options{
		Plugin: &grpctransport.Plugin,
		Config: map[string]any{"dial_timeout": "1s", "max_message_size": 64 << 20},
	})
}

func TestConformanceWithTLS(t *testing.T) {
	t.Parallel()
	ca, other := tlstest.NewCA(t, "cluster"), tlstest.NewCA(t, "another")
	dir := t.TempDir()
	files := func(ca *tlstest.CA, name, self string, trusted ...*tlstest.CA) map[string]any {
		caFile, certFile, keyFile := ca.Files(t, dir, name, []string{self}, trusted...)
		return map[string]any{"tls_ca_file": caFile, "tls_cert_file": certFile, "tls_key_file": keyFile}
	}
	transporttest.Run(t, transporttest.Options{
		Plugin: &grpctransport.Plugin,
		Config: map[string]any{"dial_timeout": "1s", "max_message_size": 64 << 20},
		Auth: &transporttest.Auth{
			A: files(ca, "a", transporttest.NodeA),
			B: files(ca, "b", transporttest.NodeB),
			Refused: map[string]map[string]any{
				// It trusts the cluster's CA, so it talks to B.
				"a certificate of another CA": files(other, "c", transporttest.NodeC, ca),
				"no TLS":                      {},
			},
		},
	})
}

func TestConformanceWithSecret(t *testing.T) {
	t.Parallel()
	secret := map[string]any{"secret": "the cluster's own secret, 32 bytes or more"}
	transporttest.Run(t, transporttest.Options{
		Plugin: &grpctransport.Plugin,
		Config: map[string]any{"dial_timeout": "1s", "max_message_size": 64 << 20},
		Auth: &transporttest.Auth{
			A: secret,
			B: secret,
			Refused: map[string]map[string]any{
				"a wrong secret": {"secret": "not the cluster's secret, though long enough"},
				"no secret":      {},
			},
		},
	})
}

func TestConformanceOfTheBinary(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "grpctransport")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/grpctransport").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	transporttest.Run(t, transporttest.Options{Binary: bin})
}
