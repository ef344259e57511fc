package main_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sextantd/sextant/cmd/internal/servertest"
)

// TestStartupLogSaysWhereSettingsCameFrom: the server logs the file it read
// and each setting that is not the default with its file, variable or flag,
// a secret only as "(set)".
func TestStartupLogSaysWhereSettingsCameFrom(t *testing.T) {
	const secret = "a cluster secret of 32 bytes at least"
	path := filepath.Join(t.TempDir(), "sextant.hcl")
	if err := os.WriteFile(path, []byte("push {\n  delay = \"20ms\"\n}\nhealth {\n  check_interval = \"1s\"\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := servertest.Start(t, servertest.Options{Args: []string{"--config", path},
		Env: []string{"SEXTANT_CLUSTER_SECRET=" + secret}})
	logs := srv.Logs()
	for _, want := range []string{
		"[INFO]  sextant: configuration file: path=" + path,
		`[INFO]  sextant: setting: key=push.delay value=20ms from="config file ` + path + `"`,
		`[INFO]  sextant: setting: key=cluster.secret value="(set)" from="environment variable SEXTANT_CLUSTER_SECRET"`,
		`[INFO]  sextant: setting: key=data_dir value=` + srv.DataDir + ` from=flags`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("no %q in the log:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "key=health.check_interval") {
		t.Errorf("a setting at its default was logged:\n%s", logs)
	}
	if strings.Contains(logs, secret) {
		t.Errorf("the secret is in the log:\n%s", logs)
	}
}
