package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"
	"golang.org/x/crypto/bcrypt"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var secret = []byte("0123456789abcdef0123456789abcdef")

// hash returns a bcrypt hash of password at the lowest cost, which keeps
// the tests fast (logins compare at the hash's cost).
func hash(t *testing.T, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// clock is a settable time.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// newAuthority has users admin (global admin), app (rw on public, r on
// other), reader (r on public), writer (w on public), every (r on every
// namespace) and none (no role).
func newAuthority(t *testing.T, clk *clock) *Authority {
	t.Helper()
	cfg := Config{
		Secret: secret,
		TTL:    time.Hour,
		Users: []User{
			{Name: "admin", PasswordHash: hash(t, "admin-pw"), GlobalAdmin: true},
			{Name: "app", PasswordHash: hash(t, "app-pw"), Roles: []string{"public-rw", "other-r"}},
			{Name: "reader", PasswordHash: hash(t, "pw"), Roles: []string{"public-r"}},
			{Name: "writer", PasswordHash: hash(t, "pw"), Roles: []string{"public-w"}},
			{Name: "every", PasswordHash: hash(t, "pw"), Roles: []string{"all-r"}},
			{Name: "none", PasswordHash: hash(t, "pw")},
		},
		Roles: []Role{
			{Name: "public-rw", Permissions: []Permission{{Namespace: "public", Access: ReadWrite}}},
			{Name: "public-r", Permissions: []Permission{{Namespace: "public", Access: Read}}},
			{Name: "public-w", Permissions: []Permission{{Namespace: "public", Access: Write}}},
			{Name: "other-r", Permissions: []Permission{{Namespace: "other", Access: Read}}},
			{Name: "all-r", Permissions: []Permission{{Namespace: AllNamespaces, Access: Read}}},
		},
	}
	if clk != nil {
		cfg.Now = clk.Now
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func login(t *testing.T, a *Authority, user, password string) Token {
	t.Helper()
	tok, err := a.Login(context.Background(), user, password)
	if err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return tok
}

func TestLoginIssuesAVerifiableToken(t *testing.T) {
	a := newAuthority(t, nil)
	tok := login(t, a, "app", "app-pw")
	if tok.TTL != time.Hour || tok.Identity.Name != "app" || tok.Identity.GlobalAdmin {
		t.Fatalf("token %+v", tok)
	}
	id, err := a.Authenticate(tok.Value)
	if err != nil || id.Name != "app" {
		t.Fatalf("Authenticate: %v, %v", id, err)
	}
	// The token is an HS256 JWT naming the user, with an expiry.
	var claims jwt.RegisteredClaims
	parsed, err := jwt.ParseWithClaims(tok.Value, &claims, func(*jwt.Token) (any, error) { return secret, nil })
	if err != nil || parsed.Method.Alg() != "HS256" || claims.Subject != "app" || claims.ExpiresAt == nil {
		t.Fatalf("token %q: alg %v, claims %+v, err %v", tok.Value, parsed.Method, claims, err)
	}
	if got := time.Until(claims.ExpiresAt.Time); got < 59*time.Minute || got > time.Hour+time.Second {
		t.Fatalf("expires in %v, want an hour", got)
	}
	if admin := login(t, a, "admin", "admin-pw"); !admin.Identity.GlobalAdmin {
		t.Fatal("admin's identity is not a global admin")
	}
}

func TestLoginRefusesWithoutSayingWhy(t *testing.T) {
	a := newAuthority(t, nil)
	for _, c := range []struct{ user, password string }{
		{"app", "wrong"},
		{"nobody", "app-pw"},
		{"app", ""},
		{"", ""},
	} {
		_, err := a.Login(context.Background(), c.user, c.password)
		if !errors.Is(err, ErrBadCredentials) {
			t.Errorf("login %q/%q: %v, want ErrBadCredentials", c.user, c.password, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range cap(a.logins) {
		a.logins <- struct{}{} // every turn taken
	}
	if _, err := a.Login(ctx, "app", "app-pw"); !errors.Is(err, context.Canceled) {
		t.Errorf("login with every turn taken and ctx done: %v", err)
	}
}

func TestExpiredTokenIsRefused(t *testing.T) {
	clk := &clock{now: time.Now()}
	a := newAuthority(t, clk)
	tok := login(t, a, "app", "app-pw")
	clk.Add(time.Hour - time.Second)
	if _, err := a.Authenticate(tok.Value); err != nil {
		t.Fatalf("a second before expiry: %v", err)
	}
	clk.Add(2 * time.Second)
	if _, err := a.Authenticate(tok.Value); !errors.Is(err, ErrExpiredToken) {
		t.Fatalf("after expiry: %v, want ErrExpiredToken", err)
	}
}

func TestBadTokensAreRefused(t *testing.T) {
	a := newAuthority(t, nil)
	good := login(t, a, "app", "app-pw").Value
	exp := time.Now().Add(time.Hour)

	other, _ := New(Config{Secret: []byte("another secret of at least 32 bytes!")})
	otherSecret, err := other.Sign("app", exp)
	if err != nil {
		t.Fatal(err)
	}
	noUser, _ := a.Sign("ghost", exp)
	parts := strings.Split(good, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	tamperedPayload := base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), `"app"`, `"admin"`, 1)))
	tampered := parts[0] + "." + tamperedPayload + "." + parts[2]
	badSig := parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-2] + "AA"
	noneAlg, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.RegisteredClaims{Subject: "admin", ExpiresAt: jwt.NewNumericDate(exp)}).
		SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	hs512, _ := jwt.NewWithClaims(jwt.SigningMethodHS512, jwt.RegisteredClaims{Subject: "admin", ExpiresAt: jwt.NewNumericDate(exp)}).SignedString(secret)
	noExp, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{Subject: "admin"}).SignedString(secret)

	for _, c := range []struct {
		name, token string
		want        error
	}{
		{"empty", "", ErrNoToken},
		{"blank", "  ", ErrNoToken},
		{"garbage", "not-a-token", ErrInvalidToken},
		{"another secret", otherSecret, ErrInvalidToken},
		{"tampered payload", tampered, ErrInvalidToken},
		{"bad signature", badSig, ErrInvalidToken},
		{"alg none", noneAlg, ErrInvalidToken},
		{"alg none, unsigned", strings.TrimSuffix(noneAlg, "."), ErrInvalidToken},
		{"HS512", hs512, ErrInvalidToken},
		{"no expiry", noExp, ErrInvalidToken},
		{"unknown user", noUser, ErrInvalidToken},
		{"too long", good + strings.Repeat("A", maxTokenLength), ErrInvalidToken},
	} {
		if _, err := a.Authenticate(c.token); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestPermissionMatrix(t *testing.T) {
	a := newAuthority(t, nil)
	tokens := map[string]string{}
	for _, u := range []string{"admin", "app", "reader", "writer", "every", "none"} {
		tok, err := a.Sign(u, time.Now().Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		tokens[u] = tok
	}
	for _, c := range []struct {
		user, namespace string
		need            Access
		ok              bool
	}{
		{"admin", "public", ReadWrite, true},
		{"admin", "anything", Write, true},
		{"app", "public", Read, true},
		{"app", "public", Write, true},
		{"app", "public", ReadWrite, true},
		{"app", "other", Read, true},
		{"app", "other", Write, false},
		{"app", "third", Read, false},
		{"reader", "public", Read, true},
		{"reader", "public", Write, false},
		{"reader", "other", Read, false},
		{"writer", "public", Write, true},
		{"writer", "public", Read, false},
		{"every", "public", Read, true},
		{"every", "any-ns", Read, true},
		{"every", "any-ns", Write, false},
		{"none", "public", Read, false},
	} {
		id, err := a.Authorize(tokens[c.user], c.namespace, c.need)
		if c.ok != (err == nil) {
			t.Errorf("%s %s on %q: err %v, want ok=%v", c.user, c.need, c.namespace, err, c.ok)
		}
		var fe *ForbiddenError
		if !c.ok && (!errors.As(err, &fe) || fe.User != c.user || id == nil) {
			t.Errorf("%s %s on %q: %v, want a ForbiddenError", c.user, c.need, c.namespace, err)
		}
	}
}

func TestNewRefusesBadConfigurations(t *testing.T) {
	h := hash(t, "pw")
	for _, c := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no secret", Config{}, "at least 32"},
		{"short secret", Config{Secret: []byte("short")}, "at least 32"},
		{"sub-second TTL", Config{Secret: secret, TTL: time.Millisecond}, "shorter than a second"},
		{"bad hash", Config{Secret: secret, Users: []User{{Name: "u", PasswordHash: "plain"}}}, `user "u"`},
		{"unknown role", Config{Secret: secret, Users: []User{{Name: "u", PasswordHash: h, Roles: []string{"r"}}}}, `role "r" is not defined`},
		{"duplicate user", Config{Secret: secret, Users: []User{{Name: "u", PasswordHash: h}, {Name: "u", PasswordHash: h}}}, "twice"},
		{"duplicate role", Config{Secret: secret, Roles: []Role{{Name: "r"}, {Name: "r"}}}, "twice"},
		{"no namespace", Config{Secret: secret, Roles: []Role{{Name: "r", Permissions: []Permission{{Access: Read}}}}}, "no namespace"},
		{"no access", Config{Secret: secret, Roles: []Role{{Name: "r", Permissions: []Permission{{Namespace: "n"}}}}}, "invalid access"},
	} {
		_, err := New(c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

func TestHashPassword(t *testing.T) {
	h, err := HashPassword("secret")
	if err != nil || CheckPasswordHash(h) != nil {
		t.Fatalf("HashPassword: %q, %v", h, err)
	}
	if cost, _ := bcrypt.Cost([]byte(h)); cost != bcrypt.DefaultCost {
		t.Errorf("cost %d, want %d", cost, bcrypt.DefaultCost)
	}
	if bcrypt.CompareHashAndPassword([]byte(h), []byte("secret")) != nil {
		t.Error("the hash does not match its password")
	}
	if bcrypt.CompareHashAndPassword(unknownUserHash, []byte("sextant-no-such-user")) != nil {
		t.Error("unknownUserHash is not a valid bcrypt hash")
	}
	if cost, _ := bcrypt.Cost(unknownUserHash); cost != bcrypt.DefaultCost {
		t.Errorf("unknownUserHash has cost %d, want %d", cost, bcrypt.DefaultCost)
	}
}

func TestParseAccess(t *testing.T) {
	for s, want := range map[string]Access{"r": Read, "w": Write, "rw": ReadWrite} {
		if got, err := ParseAccess(s); err != nil || got != want {
			t.Errorf("ParseAccess(%q) = %v, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "wr", "read", "R"} {
		if _, err := ParseAccess(s); err == nil {
			t.Errorf("ParseAccess(%q) accepted", s)
		}
	}
}
