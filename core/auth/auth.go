// Package auth decides who may do what: the users and roles of the
// configuration, the tokens users log in for (HS256 JWTs, as Nacos issues),
// and the check of a request's token against the namespace it touches.
//
// A token carries only its user's name (sub) and its expiry (exp). What the
// user may do is looked up in the Authority at every check, so a token names
// a user; it grants nothing the configuration does not.
package auth

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"
)

// TokenHeader is the name of the header (gRPC metadata header, HTTP header)
// and of the HTTP parameter that carries a token, as in Nacos.
const TokenHeader = "accessToken"

// MinSecretLength is the shortest token secret accepted, in bytes: an HS256
// key should hold at least as many bits as the hash.
const MinSecretLength = 32

// DefaultTTL is how long a token is valid, as in Nacos
// (nacos.core.auth.plugin.nacos.token.expire.seconds).
const DefaultTTL = 18000 * time.Second

// maxTokenLength bounds what is parsed: a token of this package is a few
// hundred bytes.
const maxTokenLength = 4 << 10

// AllNamespaces, as a permission's namespace, grants it in every namespace.
const AllNamespaces = "*"

// Access is what a permission allows in a namespace: reading (subscribe,
// query, list), writing (register, deregister), or both.
type Access uint8

// The accesses.
const (
	Read Access = 1 << iota
	Write

	ReadWrite = Read | Write
)

// ParseAccess reads an access as Nacos writes its actions: "r", "w" or "rw".
func ParseAccess(s string) (Access, error) {
	switch s {
	case "r":
		return Read, nil
	case "w":
		return Write, nil
	case "rw":
		return ReadWrite, nil
	}
	return 0, fmt.Errorf("%q is not r, w or rw", s)
}

func (a Access) String() string {
	switch a {
	case Read:
		return "read"
	case Write:
		return "write"
	case ReadWrite:
		return "read and write"
	}
	return fmt.Sprintf("access(%d)", uint8(a))
}

// User is a user of the configuration.
type User struct {
	Name         string
	PasswordHash string // bcrypt
	Roles        []string
	GlobalAdmin  bool // may do everything, in every namespace
}

// Role is a named set of permissions.
type Role struct {
	Name        string
	Permissions []Permission
}

// Permission allows an access in a namespace (or AllNamespaces).
type Permission struct {
	Namespace string
	Access    Access
}

// Config configures an Authority.
type Config struct {
	Secret []byte        // signs and verifies tokens (HMAC-SHA256); at least MinSecretLength bytes
	TTL    time.Duration // how long a token is valid; 0 means DefaultTTL
	Users  []User
	Roles  []Role
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Errors of Login and Authenticate. Their texts go to clients.
var (
	// ErrBadCredentials says a login failed, never whether the user or the
	// password was wrong.
	ErrBadCredentials = errors.New("invalid username or password")
	ErrNoToken        = errors.New("no access token: log in (POST /nacos/v1/auth/users/login) and send the token in the " + TokenHeader + " header")
	ErrInvalidToken   = errors.New("invalid access token")
	ErrExpiredToken   = errors.New("access token expired: log in again")
)

// ForbiddenError says an authenticated user lacks an access.
type ForbiddenError struct {
	User      string
	Namespace string
	Need      Access
}

func (e *ForbiddenError) Error() string {
	return fmt.Sprintf("user %q has no %s permission on namespace %q", e.User, e.Need, e.Namespace)
}

// Identity is an authenticated user and what it may do.
type Identity struct {
	Name        string
	GlobalAdmin bool
	grants      map[string]Access // by namespace; AllNamespaces applies to every one
}

// Can reports whether the user has every access in need on namespace.
func (id *Identity) Can(namespace string, need Access) bool {
	if id.GlobalAdmin {
		return true
	}
	return (id.grants[namespace]|id.grants[AllNamespaces])&need == need
}

// Token is what a login returns.
type Token struct {
	Value    string
	TTL      time.Duration
	Identity *Identity
}

type user struct {
	hash     []byte
	identity *Identity
}

// Authority checks passwords and tokens. It is safe for concurrent use.
type Authority struct {
	secret []byte
	ttl    time.Duration
	now    func() time.Time
	users  map[string]*user
	parser *jwt.Parser
	// bcrypt costs tens of milliseconds of CPU: logins beyond this many at
	// once wait, so a flood of them cannot take every core.
	logins chan struct{}
}

// unknownUserHash is compared against for a user that does not exist, so a
// login with an unknown name takes as long as one with a wrong password
// (bcrypt cost 10, bcrypt's default).
var unknownUserHash = []byte("$2a$10$4fGjThzlPg1IfqCW6uVm8.mVWSOp94qjjXl3vkU5ZhIgIRj9NcXK.")

// New checks cfg and returns an Authority for it.
func New(cfg Config) (*Authority, error) {
	var errs []error
	if len(cfg.Secret) < MinSecretLength {
		errs = append(errs, fmt.Errorf("the token secret has %d bytes; it needs at least %d", len(cfg.Secret), MinSecretLength))
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.TTL < time.Second {
		errs = append(errs, fmt.Errorf("token TTL %s is shorter than a second", cfg.TTL))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	roles := make(map[string]Role, len(cfg.Roles))
	for _, r := range cfg.Roles {
		if r.Name == "" {
			errs = append(errs, errors.New("a role has no name"))
		}
		if _, dup := roles[r.Name]; dup {
			errs = append(errs, fmt.Errorf("role %q is defined twice", r.Name))
		}
		for _, p := range r.Permissions {
			if p.Namespace == "" {
				errs = append(errs, fmt.Errorf("role %q: a permission names no namespace", r.Name))
			}
			if p.Access == 0 || p.Access&^ReadWrite != 0 {
				errs = append(errs, fmt.Errorf("role %q: namespace %q: invalid access %d", r.Name, p.Namespace, p.Access))
			}
		}
		roles[r.Name] = r
	}
	users := make(map[string]*user, len(cfg.Users))
	for _, u := range cfg.Users {
		if u.Name == "" {
			errs = append(errs, errors.New("a user has no name"))
		}
		if _, dup := users[u.Name]; dup {
			errs = append(errs, fmt.Errorf("user %q is defined twice", u.Name))
		}
		if err := CheckPasswordHash(u.PasswordHash); err != nil {
			errs = append(errs, fmt.Errorf("user %q: %w", u.Name, err))
		}
		id := &Identity{Name: u.Name, GlobalAdmin: u.GlobalAdmin, grants: map[string]Access{}}
		for _, name := range u.Roles {
			r, ok := roles[name]
			if !ok {
				errs = append(errs, fmt.Errorf("user %q: role %q is not defined", u.Name, name))
			}
			for _, p := range r.Permissions {
				id.grants[p.Namespace] |= p.Access
			}
		}
		users[u.Name] = &user{hash: []byte(u.PasswordHash), identity: id}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Authority{
		secret: cfg.Secret,
		ttl:    cfg.TTL,
		now:    cfg.Now,
		users:  users,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithExpirationRequired(),
			jwt.WithTimeFunc(cfg.Now),
		),
		logins: make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2)),
	}, nil
}

// CheckPasswordHash reports whether hash is a bcrypt hash.
func CheckPasswordHash(hash string) error {
	if _, err := bcrypt.Cost([]byte(hash)); err != nil {
		return fmt.Errorf("the password hash is not a bcrypt hash (make one with \"sextant hash-password\"): %w", err)
	}
	return nil
}

// HashPassword returns the bcrypt hash of password, at bcrypt's default cost.
func HashPassword(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	return string(h), err
}

// TTL is how long the tokens Login issues are valid.
func (a *Authority) TTL() time.Duration { return a.ttl }

// Login checks a user's password and issues a token. A wrong user or
// password is ErrBadCredentials, after as long as a right one takes; ctx
// bounds the wait for a turn to check.
func (a *Authority) Login(ctx context.Context, username, password string) (Token, error) {
	select {
	case a.logins <- struct{}{}:
	case <-ctx.Done():
		return Token{}, ctx.Err()
	}
	u, known := a.users[username]
	hash := unknownUserHash
	if known {
		hash = u.hash
	}
	err := bcrypt.CompareHashAndPassword(hash, []byte(password))
	<-a.logins
	if err != nil || !known {
		return Token{}, ErrBadCredentials
	}
	value, err := a.Sign(username, a.now().Add(a.ttl))
	if err != nil {
		return Token{}, err
	}
	return Token{Value: value, TTL: a.ttl, Identity: u.identity}, nil
}

// Sign issues a token for username that expires at exp, whether or not the
// user exists (Authenticate refuses it if not).
func (a *Authority) Sign(username string, exp time.Time) (string, error) {
	claims := jwt.RegisteredClaims{
		Subject:   username,
		IssuedAt:  jwt.NewNumericDate(a.now()),
		ExpiresAt: jwt.NewNumericDate(exp),
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(a.secret)
}

// Authenticate returns the identity of the user a token was issued to: the
// token must be signed with this Authority's secret (HS256 only), unexpired,
// and name a user of the configuration.
func (a *Authority) Authenticate(token string) (*Identity, error) {
	token = strings.TrimSpace(token)
	if token == "" {
		return nil, ErrNoToken
	}
	if len(token) > maxTokenLength {
		return nil, ErrInvalidToken
	}
	var claims jwt.RegisteredClaims
	_, err := a.parser.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return a.secret, nil })
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, ErrExpiredToken
	case err != nil:
		return nil, ErrInvalidToken
	}
	u, ok := a.users[claims.Subject]
	if !ok {
		return nil, ErrInvalidToken
	}
	return u.identity, nil
}

// Authorize authenticates token and checks that its user has every access
// in need on namespace: a *ForbiddenError if not.
func (a *Authority) Authorize(token, namespace string, need Access) (*Identity, error) {
	id, err := a.Authenticate(token)
	if err != nil {
		return nil, err
	}
	if !id.Can(namespace, need) {
		return id, &ForbiddenError{User: id.Name, Namespace: namespace, Need: need}
	}
	return id, nil
}
