package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"

	"github.com/sextantd/sextant/core/auth"
)

// Auth configures token authentication of clients (Nacos's
// nacos.core.auth.*). Users and roles are lists of blocks, which HCL and YAML
// decode alike:
//
//	auth {
//	  enabled      = true
//	  token_secret = "..."   # or SEXTANT_AUTH_TOKEN_SECRET
//	  users = [{ name = "app", password_hash = "$2a$10$...", roles = ["order-rw"] }]
//	  roles = [{ name = "order-rw", permissions = [{ namespace = "public", access = "rw" }] }]
//	}
type Auth struct {
	// Enabled requires a token of a configured user, with the permission
	// needed, on every naming request. Off, anyone who reaches the client
	// port can read and write the registry.
	Enabled bool `koanf:"enabled"`
	// TokenSecret signs tokens (HMAC-SHA256). There is no default, unlike
	// Nacos's published key (CVE-2021-29441): with auth on it must be set,
	// at least 32 bytes, and the same on every node of a cluster.
	TokenSecret string `koanf:"token_secret"`
	// TokenTTL is how long a token is valid; clients log in again before.
	TokenTTL time.Duration `koanf:"token_ttl"`
	Users    []AuthUser    `koanf:"users"`
	Roles    []AuthRole    `koanf:"roles"`
}

// String leaves the secret and the password hashes out of logs.
func (a Auth) String() string {
	secret := "unset"
	if a.TokenSecret != "" {
		secret = "set"
	}
	return fmt.Sprintf("{Enabled:%v TokenSecret:%s TokenTTL:%s Users:%d Roles:%d}", a.Enabled, secret, a.TokenTTL, len(a.Users), len(a.Roles))
}

// defaultTokenTTL is Nacos's token TTL.
const defaultTokenTTL = auth.DefaultTTL

// AuthUser is a user who may log in.
type AuthUser struct {
	Name         string   `koanf:"name"`
	PasswordHash string   `koanf:"password_hash"` // bcrypt, from "sextant hash-password"
	Roles        []string `koanf:"roles"`
	GlobalAdmin  bool     `koanf:"global_admin"` // may do everything in every namespace
}

// AuthRole is a named set of permissions.
type AuthRole struct {
	Name        string           `koanf:"name"`
	Permissions []AuthPermission `koanf:"permissions"`
}

// AuthPermission allows an access in a namespace.
type AuthPermission struct {
	Namespace string `koanf:"namespace"` // a namespace id ("public" is the default one), or "*" for every one
	Access    string `koanf:"access"`    // r (subscribe, query, list), w (register, deregister) or rw
}

// AuthConfig converts the configuration to what auth.New takes.
func (a Auth) AuthConfig() (auth.Config, error) {
	cfg := auth.Config{Secret: []byte(a.TokenSecret), TTL: a.TokenTTL}
	for _, u := range a.Users {
		cfg.Users = append(cfg.Users, auth.User{Name: u.Name, PasswordHash: u.PasswordHash, Roles: u.Roles, GlobalAdmin: u.GlobalAdmin})
	}
	for _, r := range a.Roles {
		role := auth.Role{Name: r.Name}
		for _, p := range r.Permissions {
			access, err := auth.ParseAccess(p.Access)
			if err != nil {
				return auth.Config{}, fmt.Errorf("role %q: namespace %q: %w", r.Name, p.Namespace, err)
			}
			role.Permissions = append(role.Permissions, auth.Permission{Namespace: p.Namespace, Access: access})
		}
		cfg.Roles = append(cfg.Roles, role)
	}
	return cfg, nil
}

// validate checks the auth section, reporting through fail.
func (a Auth) validate(fail func(key, format string, args ...any)) {
	if a.Enabled {
		switch {
		case a.TokenSecret == "":
			fail("auth.token_secret", "must be set when auth.enabled is true (there is no default secret: "+
				"set at least %d random bytes, e.g. from `openssl rand -base64 48`, the same on every node)", auth.MinSecretLength)
		case len(a.TokenSecret) < auth.MinSecretLength:
			fail("auth.token_secret", "has %d bytes; it needs at least %d", len(a.TokenSecret), auth.MinSecretLength)
		}
	}
	if a.TokenTTL < time.Second {
		fail("auth.token_ttl", "%s is shorter than a second", a.TokenTTL)
	}
	roles := map[string]bool{}
	for i, r := range a.Roles {
		item := fmt.Sprintf("item %d (%q)", i, r.Name)
		if r.Name == "" {
			fail("auth.roles", "item %d: name must be set", i)
		} else if roles[r.Name] {
			fail("auth.roles", "%s: the name is used twice", item)
		}
		roles[r.Name] = true
		for j, p := range r.Permissions {
			if p.Namespace == "" {
				fail("auth.roles", "%s: permissions item %d: namespace must be set (\"public\" is the default namespace, \"*\" every one)", item, j)
			}
			if _, err := auth.ParseAccess(p.Access); err != nil {
				fail("auth.roles", "%s: permissions item %d: access %v", item, j, err)
			}
		}
	}
	users := map[string]bool{}
	for i, u := range a.Users {
		item := fmt.Sprintf("item %d (%q)", i, u.Name)
		if u.Name == "" {
			fail("auth.users", "item %d: name must be set", i)
		} else if users[u.Name] {
			fail("auth.users", "%s: the name is used twice", item)
		}
		users[u.Name] = true
		if err := auth.CheckPasswordHash(u.PasswordHash); err != nil {
			fail("auth.users", "%s: password_hash: %v", item, err)
		}
		for _, role := range u.Roles {
			if !roles[role] {
				fail("auth.users", "%s: role %q is not defined in auth.roles", item, role)
			}
		}
	}
}

// convertBlocks decodes a list of blocks (auth.users, auth.roles) into t, a
// slice of structs: each block's keys must be the struct's koanf tags, with
// values of their types. In an environment variable or a flag the list is
// JSON: SEXTANT_AUTH_USERS='[{"name": "app", "password_hash": "..."}]'.
func convertBlocks(v any, t reflect.Type) (any, error) {
	if text, ok := v.(string); ok {
		if strings.TrimSpace(text) == "" {
			return reflect.MakeSlice(t, 0, 0).Interface(), nil
		}
		if err := json.Unmarshal([]byte(text), &v); err != nil {
			return nil, fmt.Errorf("want a JSON list of objects: %v", err)
		}
	}
	items, ok := v.([]any)
	if !ok {
		hint := ""
		switch v.(type) {
		case map[string]any, []map[string]any: // HCL blocks: key { ... }
			hint = ` (write a list: key = [{ ... }, { ... }] in HCL, a sequence of mappings in YAML)`
		}
		return nil, fmt.Errorf("want a list of blocks, got %s%s", describe(v), hint)
	}
	out := reflect.MakeSlice(t, len(items), len(items))
	var errs []error
	for i, item := range items {
		if _, ok := item.(map[string]any); !ok {
			errs = append(errs, fmt.Errorf("item %d: want a block, got %s", i, describe(item)))
			continue
		}
		dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
			ErrorUnused: true,
			TagName:     "koanf",
			Result:      out.Index(i).Addr().Interface(),
		})
		if err == nil {
			err = dec.Decode(item)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("item %d: %s", i, strings.ReplaceAll(err.Error(), "\n", " ")))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out.Interface(), nil
}
