package config

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// testHash is a bcrypt hash (of "pw").
var testHash = func() string {
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		panic(err)
	}
	return string(h)
}()

const testSecret = "0123456789abcdef0123456789abcdef"

func TestAuthBlockHCLAndYAML(t *testing.T) {
	hcl := `
auth {
  enabled      = true
  token_secret = "` + testSecret + `"
  token_ttl    = "1h"
  users = [
    { name = "app", password_hash = "` + testHash + `", roles = ["order-rw", "all-r"] },
    { name = "root", password_hash = "` + testHash + `", global_admin = true },
  ]
  roles = [
    { name = "order-rw", permissions = [{ namespace = "public", access = "rw" }, { namespace = "dev", access = "w" }] },
    { name = "all-r", permissions = [{ namespace = "*", access = "r" }] },
  ]
}
`
	yaml := `
auth:
  enabled: true
  token_secret: "` + testSecret + `"
  token_ttl: 1h
  users:
    - name: app
      password_hash: "` + testHash + `"
      roles: [order-rw, all-r]
    - name: root
      password_hash: "` + testHash + `"
      global_admin: true
  roles:
    - name: order-rw
      permissions:
        - namespace: public
          access: rw
        - namespace: dev
          access: w
    - name: all-r
      permissions:
        - {namespace: "*", access: r}
`
	want := Auth{
		Enabled:     true,
		TokenSecret: testSecret,
		TokenTTL:    time.Hour,
		Users: []AuthUser{
			{Name: "app", PasswordHash: testHash, Roles: []string{"order-rw", "all-r"}},
			{Name: "root", PasswordHash: testHash, GlobalAdmin: true},
		},
		Roles: []AuthRole{
			{Name: "order-rw", Permissions: []AuthPermission{{Namespace: "public", Access: "rw"}, {Namespace: "dev", Access: "w"}}},
			{Name: "all-r", Permissions: []AuthPermission{{Namespace: "*", Access: "r"}}},
		},
	}
	for name, body := range map[string]string{"s.hcl": hcl, "s.yaml": yaml} {
		cfg, _, err := Load(writeFile(t, name, body), nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(cfg.Auth, want) {
			t.Errorf("%s: auth = %#v\nwant %#v", name, cfg.Auth, want)
		}
		ac, err := cfg.Auth.AuthConfig()
		if err != nil || string(ac.Secret) != testSecret || ac.TTL != time.Hour || len(ac.Users) != 2 || len(ac.Roles) != 2 ||
			ac.Roles[0].Permissions[0].Access != 3 || ac.Roles[0].Permissions[1].Access != 2 {
			t.Errorf("%s: AuthConfig() = %+v, %v", name, ac, err)
		}
	}
}

func TestAuthDefaultsAndSecretFromEnvironment(t *testing.T) {
	cfg, _, err := Load("", nil, nil)
	if err != nil || cfg.Auth.Enabled || cfg.Auth.TokenSecret != "" || cfg.Auth.TokenTTL != 18000*time.Second {
		t.Fatalf("defaults: %+v, %v", cfg.Auth, err)
	}
	cfg, _, err = Load("", []string{"SEXTANT_AUTH_ENABLED=true", "SEXTANT_AUTH_TOKEN_SECRET=" + testSecret}, nil)
	if err != nil || !cfg.Auth.Enabled || cfg.Auth.TokenSecret != testSecret {
		t.Fatalf("from the environment: %+v, %v", cfg.Auth, err)
	}
}

func TestAuthUsersAndRolesFromTheEnvironment(t *testing.T) {
	env := []string{
		"SEXTANT_AUTH_ENABLED=true",
		"SEXTANT_AUTH_TOKEN_SECRET=" + testSecret,
		`SEXTANT_AUTH_USERS=[{"name": "app", "password_hash": "` + testHash + `", "roles": ["r"]}]`,
		`SEXTANT_AUTH_ROLES=[{"name": "r", "permissions": [{"namespace": "public", "access": "rw"}]}]`,
	}
	cfg, _, err := Load("", env, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Auth{Enabled: true, TokenSecret: testSecret, TokenTTL: 18000 * time.Second,
		Users: []AuthUser{{Name: "app", PasswordHash: testHash, Roles: []string{"r"}}},
		Roles: []AuthRole{{Name: "r", Permissions: []AuthPermission{{Namespace: "public", Access: "rw"}}}}}
	if !reflect.DeepEqual(cfg.Auth, want) {
		t.Errorf("auth = %#v\nwant %#v", cfg.Auth, want)
	}
}

func TestAuthStringHidesSecrets(t *testing.T) {
	a := Auth{Enabled: true, TokenSecret: testSecret, TokenTTL: time.Hour, Users: []AuthUser{{Name: "u", PasswordHash: testHash}}}
	cfg := Default()
	cfg.Auth = a
	for _, out := range []string{fmt.Sprintf("%+v", cfg), fmt.Sprintf("%v", cfg), a.String()} {
		if strings.Contains(out, testSecret) || strings.Contains(out, testHash) {
			t.Errorf("printed configuration holds a secret: %s", out)
		}
	}
	if !strings.Contains(a.String(), "TokenSecret:set") {
		t.Errorf("String() = %s", a.String())
	}
}

func TestAuthErrors(t *testing.T) {
	tests := []struct {
		name     string
		fileName string
		body     string
		env      []string
		want     []string
	}{
		{"on without a secret", "s.hcl", "auth {\n  enabled = true\n}\n", nil,
			[]string{"built-in default: auth.token_secret: must be set when auth.enabled is true", "no default secret", "(auth.enabled from config file $FILE)"}},
		{"on without a secret, from the environment", "", "", []string{"SEXTANT_AUTH_ENABLED=true"},
			[]string{"auth.token_secret: must be set", "(auth.enabled from environment variable SEXTANT_AUTH_ENABLED)"}},
		{"short secret", "s.yaml", "auth:\n  enabled: true\n  token_secret: short\n", nil,
			[]string{"config file $FILE: auth.token_secret: has 5 bytes; it needs at least 32"}},
		{"sub-second TTL", "s.yaml", "auth:\n  token_ttl: 10ms\n", nil,
			[]string{"auth.token_ttl: 10ms is shorter than a second"}},
		{"unknown key in a user", "s.hcl", `auth { users = [{ name = "a", password = "x" }] }`, nil,
			[]string{"config file $FILE: auth.users: item 0:", "password"}},
		{"wrong type in a user", "s.yaml", "auth:\n  users:\n    - name: a\n      roles: r\n", nil,
			[]string{"auth.users: item 0:", "roles"}},
		{"users as a block", "s.hcl", "auth {\n  users {\n    name = \"a\"\n  }\n}\n", nil,
			[]string{"config file $FILE: auth.users.name: unknown key"}},
		{"users as repeated blocks", "s.hcl", "auth {\n  users { name = \"a\" }\n  users { name = \"b\" }\n}\n", nil,
			[]string{"auth.users: want a list of blocks", "key = [{ ... }"}},
		{"a user that is no block", "s.yaml", "auth:\n  users: [app]\n", nil,
			[]string{"auth.users: item 0: want a block, got app (string)"}},
		{"users from the environment, not JSON", "", "", []string{"SEXTANT_AUTH_USERS=app"},
			[]string{"environment variable SEXTANT_AUTH_USERS: auth.users: want a JSON list of objects"}},
		{"users from the environment, an object", "", "", []string{`SEXTANT_AUTH_USERS={"name": "app"}`},
			[]string{"environment variable SEXTANT_AUTH_USERS: auth.users: want a list of blocks, got a map"}},
		{"plain password", "s.hcl", `auth { users = [{ name = "a", password_hash = "secret" }] }`, nil,
			[]string{`config file $FILE: auth.users: item 0 ("a"): password_hash: the password hash is not a bcrypt hash`}},
		{"undefined role", "s.hcl", `auth { users = [{ name = "a", password_hash = "` + testHash + `", roles = ["r"] }] }`, nil,
			[]string{`auth.users: item 0 ("a"): role "r" is not defined in auth.roles`}},
		{"duplicate user", "s.yaml", "auth:\n  users:\n    - {name: a, password_hash: \"" + testHash + "\"}\n    - {name: a, password_hash: \"" + testHash + "\"}\n", nil,
			[]string{`auth.users: item 1 ("a"): the name is used twice`}},
		{"user without a name", "s.yaml", "auth:\n  users:\n    - {password_hash: \"" + testHash + "\"}\n", nil,
			[]string{`auth.users: item 0: name must be set`}},
		{"bad access", "s.hcl", `auth { roles = [{ name = "r", permissions = [{ namespace = "public", access = "all" }] }] }`, nil,
			[]string{`auth.roles: item 0 ("r"): permissions item 0: access "all" is not r, w or rw`}},
		{"no namespace", "s.hcl", `auth { roles = [{ name = "r", permissions = [{ access = "r" }] }] }`, nil,
			[]string{`auth.roles: item 0 ("r"): permissions item 0: namespace must be set`}},
		{"duplicate role", "s.hcl", `auth { roles = [{ name = "r" }, { name = "r" }] }`, nil,
			[]string{`auth.roles: item 1 ("r"): the name is used twice`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ""
			if tt.fileName != "" {
				path = writeFile(t, tt.fileName, tt.body)
			}
			_, _, err := Load(path, tt.env, nil)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			for _, w := range tt.want {
				if w = strings.ReplaceAll(w, "$FILE", path); !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}
