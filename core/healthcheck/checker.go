package healthcheck

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/sextantd/sextant/core/naming"
)

// The checker types: Checker.Type.
const (
	// TypeTCP checks that a TCP connection to the instance opens. It is
	// Nacos's default for a cluster; the zero Checker (Type "") means it.
	TypeTCP = "TCP"
	// TypeHTTP checks that a GET of Checker.Path answers
	// Checker.ExpectedCode.
	TypeHTTP = "HTTP"
	// TypeNone never checks: the health of the cluster's instances is what
	// an operator sets.
	TypeNone = "NONE"
)

// Bounds of what a Checker may hold, as operators give it over the HTTP API.
const (
	// MaxPathBytes bounds Checker.Path.
	MaxPathBytes = 2048
	// MaxHeaders bounds the number of Checker.Headers.
	MaxHeaders = 32
	// MaxHeaderBytes bounds the names and values of Checker.Headers
	// together.
	MaxHeaderBytes = 4096
	// MaxCheckerJSONBytes bounds the JSON ParseChecker reads.
	MaxCheckerJSONBytes = 16 << 10
)

// DefaultExpectedCode is the status an HTTP check expects when
// Checker.ExpectedCode is 0, as Nacos's default expectedResponseCode.
const DefaultExpectedCode = http.StatusOK

// The fields of a checker as the HTTP API names them (Nacos's cluster
// parameters: the healthChecker JSON and checkPort), for errors.
const (
	fieldChecker      = "healthChecker"
	fieldType         = "healthChecker.type"
	fieldPath         = "healthChecker.path"
	fieldHeaders      = "healthChecker.headers"
	fieldExpectedCode = "healthChecker.expectedResponseCode"
	fieldCheckPort    = "checkPort"
)

// Checker is how the instances of one service cluster are health-checked:
// Nacos's cluster healthChecker, with the cluster's check port.
type Checker struct {
	// Type is TypeTCP, TypeHTTP or TypeNone; "" is TypeTCP, Nacos's
	// default for a cluster.
	Type string
	// Path is what an HTTP check GETs, with an optional query: "" (Nacos's
	// default) is "/"; any other path starts with "/" and is printable
	// ASCII (percent-encode the rest). HTTP only.
	Path string
	// ExpectedCode is the status an HTTP check must get; 0 is
	// DefaultExpectedCode (200). HTTP only.
	ExpectedCode int
	// Headers are sent with an HTTP check; "Host" sets the request's host.
	// HTTP only. The map is read, never modified.
	Headers map[string]string
	// CheckPort is the port checked (Nacos's checkPort, when the cluster
	// does not use the instance's port); 0 is the instance's own port.
	CheckPort int
}

// DefaultChecker returns the checker of a cluster that was never given one:
// TCP on the instance's port, as in Nacos.
func DefaultChecker() Checker { return Checker{Type: TypeTCP} }

// kind returns the checker's type with "" as TCP.
func (c Checker) kind() string {
	if c.Type == "" {
		return TypeTCP
	}
	return c.Type
}

// expected returns the status an HTTP check expects.
func (c Checker) expected() int {
	if c.ExpectedCode == 0 {
		return DefaultExpectedCode
	}
	return c.ExpectedCode
}

// requestPath returns Path as an HTTP check requests it.
func (c Checker) requestPath() string {
	if c.Path == "" {
		return "/"
	}
	return c.Path
}

// Validate checks the checker as the HTTP API accepts it from operators: nil,
// or a *naming.InvalidError naming the bad field as the API names it
// (healthChecker.type, healthChecker.path, healthChecker.headers,
// healthChecker.expectedResponseCode, checkPort). Path, ExpectedCode and
// Headers are for an HTTP checker only.
func (c Checker) Validate() error {
	if c.CheckPort < 0 || c.CheckPort > 65535 {
		return invalid(fieldCheckPort, "%d is not a port (0 for the instance's port, or 1 to 65535)", c.CheckPort)
	}
	switch c.kind() {
	case TypeTCP, TypeNone:
		switch {
		case c.Path != "":
			return invalid(fieldPath, "is for an HTTP checker, not %s", c.kind())
		case c.ExpectedCode != 0:
			return invalid(fieldExpectedCode, "is for an HTTP checker, not %s", c.kind())
		case len(c.Headers) != 0:
			return invalid(fieldHeaders, "are for an HTTP checker, not %s", c.kind())
		}
		return nil
	case TypeHTTP:
		if err := validatePath(c.Path); err != nil {
			return err
		}
		if c.ExpectedCode != 0 && (c.ExpectedCode < 100 || c.ExpectedCode > 599) {
			return invalid(fieldExpectedCode, "%d is not an HTTP status (100 to 599)", c.ExpectedCode)
		}
		return validateHeaders(c.Headers)
	}
	return badType(c.Type)
}

func badType(t string) error {
	if strings.EqualFold(t, "MYSQL") {
		return invalid(fieldType, "MYSQL checks are not supported; use TCP, HTTP or NONE")
	}
	return invalid(fieldType, "%q is not a checker type; use TCP, HTTP or NONE", t)
}

func validatePath(p string) error {
	if len(p) > MaxPathBytes {
		return invalid(fieldPath, "longer than %d bytes", MaxPathBytes)
	}
	if p == "" {
		return nil // Nacos's default: "/"
	}
	for i := 0; i < len(p); i++ {
		switch b := p[i]; {
		case b <= ' ' || b == 0x7f:
			return invalid(fieldPath, "holds a space or a control character at byte %d", i)
		case b >= utf8.RuneSelf:
			return invalid(fieldPath, "holds a byte that is not ASCII at byte %d; percent-encode it", i)
		}
	}
	if strings.Contains(p, "#") {
		return invalid(fieldPath, "holds a fragment (#)")
	}
	if strings.HasPrefix(p, "//") || strings.Contains(p, "://") && !strings.HasPrefix(p, "/") {
		return invalid(fieldPath, "%q is not a path: the host checked is always the instance", p)
	}
	if !strings.HasPrefix(p, "/") {
		return invalid(fieldPath, "%q does not start with \"/\" (write \"/%s\")", p, p)
	}
	u, err := url.ParseRequestURI(Checker{Path: p}.requestPath())
	if err != nil || u.Host != "" || u.Scheme != "" {
		return invalid(fieldPath, "%q is not a path with an optional query", p)
	}
	return nil
}

// hopHeaders are the headers the checker itself sets for its connection.
var hopHeaders = []string{"Connection", "Content-Length", "Keep-Alive", "Proxy-Connection", "Te", "Trailer",
	"Transfer-Encoding", "Upgrade"}

func validateHeaders(h map[string]string) error {
	if len(h) > MaxHeaders {
		return invalid(fieldHeaders, "%d headers, more than %d", len(h), MaxHeaders)
	}
	size := 0
	seen := make(map[string]string, len(h))
	for _, name := range slices.Sorted(maps.Keys(h)) { // the same error for the same input
		value := h[name]
		if !validHeaderName(name) || strings.Contains(name, "|") {
			return invalid(fieldHeaders, "%q is not a header name", name)
		}
		canon := http.CanonicalHeaderKey(name)
		if slices.Contains(hopHeaders, canon) {
			return invalid(fieldHeaders, "%s is set by the checker, not by the configuration", canon)
		}
		if other, dup := seen[canon]; dup {
			return invalid(fieldHeaders, "%q and %q are the same header", other, name)
		}
		seen[canon] = name
		for i := 0; i < len(value); i++ {
			if b := value[i]; b < ' ' && b != '\t' || b == 0x7f {
				return invalid(fieldHeaders, "the value of %s holds a control character at byte %d", name, i)
			}
		}
		if !utf8.ValidString(value) {
			return invalid(fieldHeaders, "the value of %s is not UTF-8", name)
		}
		if strings.Contains(value, "|") {
			return invalid(fieldHeaders, "the value of %s holds |, which separates headers in Nacos's form", name)
		}
		if size += len(name) + len(value); size > MaxHeaderBytes {
			return invalid(fieldHeaders, "longer than %d bytes in all", MaxHeaderBytes)
		}
	}
	return nil
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		switch {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0:
		default:
			return false
		}
	}
	return true
}

// ParseChecker reads a checker in the form of Nacos's cluster healthChecker
// parameter, {"type":"HTTP","path":"/health","headers":"k:v|k2:v2",
// "expectedResponseCode":200}, {"type":"TCP"} or {"type":"NONE"}, and
// validates it. The type is matched without regard to case; fields the
// type does not use, and unknown fields, are ignored, as Nacos ignores
// them; headers may also be a JSON object of strings. expectedResponseCode
// may be a number or a string of digits (Jackson accepts both). The check
// port is not part of this JSON (Nacos's checkPort and useInstancePort4Check
// are parameters of their own): the result has CheckPort 0.
//
// Unlike Nacos, which drops a header entry it cannot split in two at ":",
// an entry is split at its first ":" (so a value may hold colons), an entry
// without one is an error, and so is a header given twice. Empty entries
// ("a:1||b:2", a trailing "|") are skipped. A missing type is an error
// (Jackson would read it as NONE), and MYSQL is refused as not supported.
// Errors are *naming.InvalidError naming the field.
func ParseChecker(s string) (Checker, error) {
	if strings.TrimSpace(s) == "" {
		return Checker{}, invalid(fieldChecker, "empty; want a JSON object such as {\"type\":\"TCP\"}")
	}
	if len(s) > MaxCheckerJSONBytes {
		return Checker{}, invalid(fieldChecker, "longer than %d bytes", MaxCheckerJSONBytes)
	}
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(strings.NewReader(s))
	if err := dec.Decode(&fields); err != nil || fields == nil {
		return Checker{}, invalid(fieldChecker, "not a JSON object: %s", jsonReason(err))
	}
	if dec.More() {
		return Checker{}, invalid(fieldChecker, "not a JSON object: more after it")
	}
	var typ string
	if raw, ok := present(fields, "type"); !ok {
		return Checker{}, invalid(fieldType, "missing; use TCP, HTTP or NONE")
	} else if err := json.Unmarshal(raw, &typ); err != nil {
		return Checker{}, invalid(fieldType, "not a string")
	}
	c := Checker{Type: strings.ToUpper(strings.TrimSpace(typ))}
	switch c.Type {
	case TypeTCP, TypeNone:
		return c, nil
	case TypeHTTP:
	default:
		return Checker{}, badType(typ)
	}
	if raw, ok := present(fields, "path"); ok {
		if err := json.Unmarshal(raw, &c.Path); err != nil {
			return Checker{}, invalid(fieldPath, "not a string")
		}
		c.Path = strings.TrimSpace(c.Path)
	}
	if raw, ok := present(fields, "expectedResponseCode"); ok {
		code, err := parseCode(raw)
		if err != nil {
			return Checker{}, err
		}
		c.ExpectedCode = code
	}
	if raw, ok := present(fields, "headers"); ok {
		h, err := parseHeaders(raw)
		if err != nil {
			return Checker{}, err
		}
		c.Headers = h
	}
	if err := c.Validate(); err != nil {
		return Checker{}, err
	}
	return c, nil
}

// present returns the field name of fields unless it is missing or null.
func present(fields map[string]json.RawMessage, name string) (json.RawMessage, bool) {
	raw, ok := fields[name]
	if !ok || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, false
	}
	return raw, true
}

func jsonReason(err error) string {
	if err == nil {
		return "null"
	}
	return err.Error()
}

func parseCode(raw json.RawMessage) (int, error) {
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, invalid(fieldExpectedCode, "not a number")
	}
	code, err := strconv.Atoi(strings.TrimSpace(n.String()))
	if err != nil {
		return 0, invalid(fieldExpectedCode, "%q is not a whole number", n.String())
	}
	if code == 0 {
		return 0, invalid(fieldExpectedCode, "0 is not an HTTP status (100 to 599)")
	}
	return code, nil
}

// parseHeaders reads Nacos's "k:v|k2:v2", or a JSON object of strings.
func parseHeaders(raw json.RawMessage) (map[string]string, error) {
	var obj map[string]string
	if err := json.Unmarshal(raw, &obj); err == nil {
		if len(obj) == 0 {
			return nil, nil
		}
		return obj, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, invalid(fieldHeaders, "neither a string of name:value pairs separated by | nor an object of strings")
	}
	return parseHeaderString(s)
}

// parseHeaderString reads headers in Nacos's form, "name:value|name2:value2": each
// entry split at its first ":", name and value trimmed of spaces; empty
// entries skipped. nil for none. Errors as ParseChecker's.
func parseHeaderString(s string) (map[string]string, error) {
	if len(s) > MaxHeaderBytes+2*MaxHeaders {
		return nil, invalid(fieldHeaders, "longer than %d bytes in all", MaxHeaderBytes)
	}
	var h map[string]string
	for entry := range strings.SplitSeq(s, "|") {
		if strings.TrimSpace(entry) == "" {
			continue
		}
		name, value, ok := strings.Cut(entry, ":")
		if !ok {
			return nil, invalid(fieldHeaders, "%q is not name:value", entry)
		}
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if h == nil {
			h = make(map[string]string)
		}
		if _, dup := h[name]; dup {
			return nil, invalid(fieldHeaders, "%s given twice", name)
		}
		h[name] = value
	}
	return h, nil
}

// NacosJSON renders the checker as Nacos renders a cluster's healthChecker:
// {"type":"TCP"}, {"type":"NONE"}, or {"type":"HTTP","path":…,
// "headers":"k:v|k2:v2","expectedResponseCode":…} with the headers sorted by
// name. CheckPort is not part of it (Nacos's checkPort is the cluster's).
// ParseChecker reads it back.
func (c Checker) NacosJSON() string {
	if c.kind() != TypeHTTP {
		b, _ := json.Marshal(struct {
			Type string `json:"type"`
		}{c.kind()})
		return string(b)
	}
	var headers strings.Builder
	for i, name := range slices.Sorted(maps.Keys(c.Headers)) {
		if i > 0 {
			headers.WriteByte('|')
		}
		headers.WriteString(name + ":" + c.Headers[name])
	}
	b, _ := json.Marshal(struct {
		Type         string `json:"type"`
		Path         string `json:"path"`
		Headers      string `json:"headers"`
		ExpectedCode int    `json:"expectedResponseCode"`
	}{TypeHTTP, c.Path, headers.String(), c.expected()})
	return string(b)
}

func invalid(field, format string, args ...any) error {
	return &naming.InvalidError{Field: field, Reason: fmt.Sprintf(format, args...)}
}
