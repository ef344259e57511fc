package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/sextantd/sextant/core/naming"
)

// The parameters of the naming Open API come as form or query parameters, as
// Nacos reads them. An empty value is an absent one (Nacos's
// WebUtils.optional), so a client that sends "weight=" gets the default. The
// reading below only converts text to types; what the values may be is the
// registry's to check, as for every front end.

// params are a request's parameters.
type params url.Values

// str returns the parameter's first value, "" if absent.
func (p params) str(name string) string {
	if vs := p[name]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// first returns the first of the named parameters that is set, and its name.
func (p params) first(names ...string) (value, name string) {
	for _, n := range names {
		if v := p.str(n); v != "" {
			return v, n
		}
	}
	return "", names[0]
}

func (p params) required(name string) (string, error) {
	v := p.str(name)
	if v == "" {
		return "", missingParam(name)
	}
	return v, nil
}

// integer reads an int parameter; def when absent.
func (p params) integer(name string, def int) (int, error) {
	v := p.str(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 0, badParam(name, "%s is not an integer", quote(v))
	}
	return n, nil
}

// requiredInt reads an int parameter that must be present.
// address reads the required ip and port of the instance a request names.
func (p params) address() (ip string, port int, err error) {
	if ip, err = p.required("ip"); err != nil {
		return "", 0, err
	}
	port, err = p.requiredInt("port")
	return ip, port, err
}

func (p params) requiredInt(name string) (int, error) {
	if p.str(name) == "" {
		return 0, missingParam(name)
	}
	return p.integer(name, 0)
}

// number reads a float parameter; def when absent. Its range is the
// registry's to check (NaN and infinities included).
func (p params) number(name string, def float64) (float64, error) {
	v := p.str(name)
	if v == "" {
		return def, nil
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, badParam(name, "%s is not a number", quote(v))
	}
	return f, nil // out of float64's range: ±Inf, which the registry refuses
}

// boolean reads a bool parameter; def when absent. It accepts what Nacos's
// BooleanUtils and Go's ParseBool do (true/false, 1/0, yes/no, on/off, t/f,
// y/n, in any case) and refuses anything else.
func (p params) boolean(name string, def bool) (bool, error) {
	v := p.str(name)
	if v == "" {
		return def, nil
	}
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "1", "yes", "on", "t", "y":
		return true, nil
	case "false", "0", "no", "off", "f", "n":
		return false, nil
	}
	return false, badParam(name, "%s is not a boolean (true or false)", quote(v))
}

// enabled reads whether an instance is enabled: "enabled", or "enable", which
// the Nacos Go SDKs send; nil when neither is set.
func (p params) enabled() (*bool, error) {
	v, name := p.first("enabled", "enable")
	if v == "" {
		return nil, nil
	}
	b, err := p.boolean(name, true)
	return &b, err
}

// metadata reads an instance's metadata: a JSON object (string values; numbers
// and booleans are taken as their text) or Nacos's legacy "k=v,k2=v2"; nil
// when the parameter is absent.
func (p params) metadata(name string) (map[string]string, error) {
	v := p.str(name)
	if v == "" {
		return nil, nil
	}
	return parseMetadata(name, v)
}

func parseMetadata(name, v string) (map[string]string, error) {
	if strings.HasPrefix(strings.TrimSpace(v), "{") {
		var raw map[string]json.RawMessage
		if err := json.Unmarshal([]byte(v), &raw); err != nil {
			return nil, badParam(name, "not a JSON object of strings: %v", err)
		}
		md := make(map[string]string, len(raw))
		for k, r := range raw {
			var s string
			if string(r) == "null" {
				return nil, badParam(name, "the value of key %s is null", quote(k))
			}
			if err := json.Unmarshal(r, &s); err == nil {
				md[k] = s
				continue
			}
			var scalar any
			dec := json.NewDecoder(strings.NewReader(string(r)))
			dec.UseNumber()
			if err := dec.Decode(&scalar); err == nil {
				switch x := scalar.(type) {
				case json.Number:
					md[k] = x.String()
					continue
				case bool:
					md[k] = strconv.FormatBool(x)
					continue
				}
			}
			return nil, badParam(name, "the value of key %s is not a string", quote(k))
		}
		return md, nil
	}
	md := map[string]string{}
	for pair := range strings.SplitSeq(v, ",") {
		k, val, ok := strings.Cut(pair, "=")
		if !ok || strings.Contains(val, "=") {
			return nil, badParam(name, "neither a JSON object nor k=v pairs separated by commas: %s", quote(v))
		}
		md[k] = val
	}
	return md, nil
}

// service reads namespaceId, serviceName and groupName. As Nacos 2.x's
// ServiceNameFilter does, a serviceName of the form group@@name names its
// group itself (groupName is then ignored).
func (p params) service() (naming.Service, error) {
	name := strings.TrimSpace(p.str("serviceName"))
	if name == "" {
		return naming.Service{}, missingParam("serviceName")
	}
	svc := naming.Service{Namespace: p.str("namespaceId"), Group: p.str("groupName"), Name: name}
	if group, bare, grouped := strings.Cut(name, "@@"); grouped {
		if group == "" {
			return svc, badParam("serviceName", "%s has an empty group before '@@' (groupName@@serviceName)", quote(name))
		}
		svc.Group, svc.Name = group, bare
	}
	return svc, nil
}

// ephemeral reads whether a request is about an ephemeral instance (true,
// Nacos's default, when absent) or a persistent one (ephemeral=false), and
// whether the parameter was given at all.
func (p params) ephemeral() (ephemeral, given bool, err error) {
	given = p.str("ephemeral") != ""
	ephemeral, err = p.boolean("ephemeral", true)
	return ephemeral, given, err
}

// instance reads the instance a registration names (Ephemeral from the
// ephemeral parameter); the registry or the store applies the defaults it
// does not set (cluster, id) and checks it.
func (p params) instance() (naming.Instance, error) {
	var in naming.Instance
	var err error
	if in.IP, err = p.required("ip"); err != nil {
		return in, err
	}
	if in.Port, err = p.requiredInt("port"); err != nil {
		return in, err
	}
	if in.Weight, err = p.number("weight", 1); err != nil {
		return in, err
	}
	enabled, err := p.enabled()
	if err != nil {
		return in, err
	}
	in.Enabled = enabled == nil || *enabled
	if in.Healthy, err = p.boolean("healthy", true); err != nil {
		return in, err
	}
	if in.Metadata, err = p.metadata("metadata"); err != nil {
		return in, err
	}
	in.Cluster = p.str("clusterName")
	in.Ephemeral, _, err = p.ephemeral()
	return in, err
}

// quote quotes a value for a message, cut to its first 64 bytes.
func quote(s string) string {
	const most = 64
	if len(s) <= most {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:most]) + "..."
}

// Nacos's v2 API error codes (com.alibaba.nacos.api.model.v2.ErrorCode) that
// the naming API answers, with their messages.
const (
	codeSuccess           = 0
	codeParameterMissing  = 10000
	codeParameterValidate = 20002
	codeResourceNotFound  = 20004
	codeServerError       = 30000
)

var codeMessages = map[int]string{
	codeSuccess:           "success",
	codeParameterMissing:  "parameter missing",
	codeParameterValidate: "parameter validate error",
	codeResourceNotFound:  "resource not found",
	codeServerError:       "server error",
}

// apiError is a refusal: its HTTP status, its v2 code, and a message that
// names the parameter first ("port: ...").
type apiError struct {
	status int
	code   int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func missingParam(name string) error {
	return &apiError{status: http.StatusBadRequest, code: codeParameterMissing, msg: name + ": required parameter is missing"}
}

func badParam(name, format string, args ...any) error {
	return &apiError{status: http.StatusBadRequest, code: codeParameterValidate, msg: name + ": " + fmt.Sprintf(format, args...)}
}

// errPersistent refuses a persistent instance on a server without a store
// (Config.Store nil): 501, which the Nacos SDKs report as "error code 501"
// (they log the message).
func errPersistent(name string) error {
	return &apiError{status: http.StatusNotImplemented, code: codeParameterValidate,
		msg: name + ": persistent instances are not supported yet; register ephemeral instances (ephemeral=true)"}
}

// renames maps the registry's field names to a request's parameter names.
type renames map[string]string

// toAPIError turns what the registry or the reading of parameters returned
// into a refusal; the fields of the registry's InvalidErrors are renamed to
// the request's parameters (namespace is namespaceId throughout).
func toAPIError(err error, rn renames) *apiError {
	var api *apiError
	var invalid *naming.InvalidError
	var owned *naming.OwnedElsewhereError
	switch {
	case errors.As(err, &api):
		return api
	case errors.As(err, &invalid):
		field := invalid.Field
		if to, ok := rn[field]; ok {
			field = to
		} else if field == "namespace" {
			field = "namespaceId"
		}
		return &apiError{status: http.StatusBadRequest, code: codeParameterValidate, msg: field + ": " + invalid.Reason}
	case errors.Is(err, naming.ErrInstanceNotFound):
		return &apiError{status: http.StatusNotFound, code: codeResourceNotFound, msg: "instance not found"}
	case errors.As(err, &owned):
		return &apiError{status: http.StatusServiceUnavailable, code: codeServerError,
			msg: err.Error() + "; its responsibility is moving between nodes, try again"}
	}
	if api := storeError(err); api != nil {
		return api
	}
	return &apiError{status: http.StatusInternalServerError, code: codeServerError, msg: "server error: " + err.Error()}
}

// maxNamingBody bounds a naming request's body: 1 MiB, or four times the
// metadata limit (percent-encoded metadata, twice in a beat) if larger.
func maxNamingBody(limits naming.Limits) int64 {
	return max(1<<20, 4*int64(limits.MaxMetadataBytes))
}

// readParams reads a request's query and form body (at most maxBody bytes).
func readParams(w http.ResponseWriter, r *http.Request, maxBody int64) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return &apiError{status: http.StatusRequestEntityTooLarge, code: codeParameterValidate,
				msg: fmt.Sprintf("request body: larger than %d bytes", tooLarge.Limit)}
		}
		return badParam("request", "the parameters cannot be read: %v", err)
	}
	return nil
}
