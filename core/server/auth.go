package server

import (
	"github.com/hashicorp/go-hclog"

	"github.com/sextantd/sextant/core/auth"
	"github.com/sextantd/sextant/core/config"
)

// newAuthority builds the authority that checks clients' tokens, or returns
// nil with auth off, and says at start-up which it is.
func newAuthority(cfg config.Auth, log hclog.Logger) (*auth.Authority, error) {
	if !cfg.Enabled {
		log.Warn("auth is off: any client that reaches the client gRPC or HTTP port can read and write the registry " +
			"(set auth.enabled, auth.token_secret and auth.users to require tokens)")
		return nil, nil
	}
	ac, err := cfg.AuthConfig()
	if err != nil {
		return nil, err
	}
	a, err := auth.New(ac)
	if err != nil {
		return nil, err
	}
	log.Info("auth is on: naming requests need a token", "users", len(cfg.Users), "roles", len(cfg.Roles), "token_ttl", a.TTL())
	return a, nil
}
