package server

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/crypto/bcrypt"

	"github.com/sextantd/sextant/core/config"
)

func TestNewAuthority(t *testing.T) {
	var out bytes.Buffer
	log := hclog.New(&hclog.LoggerOptions{Output: &out})
	a, err := newAuthority(config.Default().Auth, log)
	if a != nil || err != nil {
		t.Fatalf("auth off: %v, %v", a, err)
	}
	if !strings.Contains(out.String(), "[WARN]  auth is off: any client that reaches the client gRPC or HTTP port can read and write the registry") {
		t.Errorf("auth off is not logged as a warning:\n%s", out.String())
	}

	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	cfg := config.Default().Auth
	cfg.Enabled, cfg.TokenSecret = true, strings.Repeat("s", 32)
	cfg.Users = []config.AuthUser{{Name: "app", PasswordHash: string(hash), Roles: []string{"r"}}}
	cfg.Roles = []config.AuthRole{{Name: "r", Permissions: []config.AuthPermission{{Namespace: "public", Access: "rw"}}}}
	out.Reset()
	if a, err = newAuthority(cfg, log); a == nil || err != nil {
		t.Fatalf("auth on: %v, %v", a, err)
	}
	if !strings.Contains(out.String(), "[INFO]  auth is on") {
		t.Errorf("auth on is not logged:\n%s", out.String())
	}

	cfg.TokenSecret = "short"
	if _, err := newAuthority(cfg, log); err == nil || !strings.Contains(err.Error(), "at least 32") {
		t.Errorf("short secret: %v", err)
	}
	cfg.TokenSecret = strings.Repeat("s", 32)
	cfg.Roles[0].Permissions[0].Access = "all"
	if _, err := newAuthority(cfg, log); err == nil {
		t.Error("a bad access was accepted")
	}
}
