package config

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/hcl"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
)

// envPrefix starts the name of every environment variable Load reads.
const envPrefix = "SEXTANT_"

// Load builds the configuration from, in increasing precedence: Default(), the
// file at path (if path != ""), the SEXTANT_* variables in env (a list like
// os.Environ()), and flags (the keys the user actually set, such as
// {"port": 9000, "log.level": "debug"}, with values of the key's Go type or
// strings). The result is validated.
//
// Keys are koanf tags joined by dots ("push.retry_delay"); the environment
// variable of a key is SEXTANT_ and the key in upper case with dots as
// underscores (SEXTANT_PUSH_RETRY_DELAY). Durations are strings such as
// "500ms". Unknown keys in the file or flags, values of the wrong type and
// values out of range are errors naming the key and the file, variable or
// flag it came from; all of them are reported.
//
// SEXTANT_* variables that set no key do not stop start-up: a Kubernetes pod
// gets SEXTANT_PORT=tcp://..., SEXTANT_SERVICE_HOST and more whenever its
// namespace has a Service named sextant. Load returns the notes the caller
// should log about them (with any error, too): one for the service links it
// recognised, and a warning for each other unknown variable, naming the
// variable it probably meant.
func Load(path string, env []string, flags map[string]any) (Config, []Note, error) {
	l, err := LoadWithSources(path, env, flags)
	return l.Config, l.Notes, err
}

// Loaded is a configuration as LoadWithSources read it.
type Loaded struct {
	Config Config
	// Notes are what to log about the environment (see Load); they come
	// with an error too.
	Notes []Note
	// Settings are the keys whose values differ from the built-in
	// defaults, in key order, each with where it was set.
	Settings []Setting
}

// LoadWithSources is Load, also returning the settings that differ from the
// built-in defaults and where each came from, for the start-up log.
func LoadWithSources(path string, env []string, flags map[string]any) (Loaded, error) {
	keys := keyTypes()
	k := koanf.New(".")
	origin := make(map[string]string) // key → the file, variable or flags that set it last
	var errs []error
	merge := func(values map[string]any, source func(key string) string, err error) {
		if err != nil {
			errs = append(errs, err)
			return
		}
		for key := range values {
			origin[key] = source(key)
		}
		errs = append(errs, k.Load(confmap.Provider(values, "."), nil))
	}
	if path != "" {
		values, err := fileValues(path, keys)
		merge(values, func(string) string { return fileSource(path) }, err)
	}
	values, notes, err := envValues(env, keys)
	merge(values, func(key string) string { return envSource(envName(key)) }, err)
	values, err = convertAll(flagsSource, flags, keys)
	merge(values, func(string) string { return flagsSource }, err)
	if err := errors.Join(errs...); err != nil {
		return Loaded{Notes: notes}, err
	}

	// Every value already has its field's type, so decoding is strict.
	cfg := Default()
	dc := &mapstructure.DecoderConfig{ErrorUnused: true, TagName: "koanf"}
	if err := k.UnmarshalWithConf("", &cfg, koanf.UnmarshalConf{DecoderConfig: dc}); err != nil {
		return Loaded{Notes: notes}, fmt.Errorf("decode configuration: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return Loaded{Notes: notes}, attribute(err, origin)
	}
	return Loaded{Config: cfg, Notes: notes, Settings: settings(cfg, origin)}, nil
}

// A Note is something Load noticed that is no error but should be logged:
// environment variables it ignored.
type Note struct {
	Warning bool   // log at warn level; otherwise at info
	Text    string // one sentence, naming the variables
}

// The sources of settings, as errors name them.
const (
	flagsSource   = "flags"
	defaultSource = "built-in default"
)

func fileSource(path string) string { return "config file " + path }
func envSource(name string) string  { return "environment variable " + name }

// A keyError is Validate's error about the value of one key.
type keyError struct {
	key string // such as "push.delay" or "plugins.webhook"
	msg string
}

func (e *keyError) Error() string { return e.key + ": " + e.msg }

// dependsOn lists, for the keys whose check in Validate involves other keys,
// those keys, so that an error can say where they were set too.
var dependsOn = map[string][]string{
	"remote.grpc_port":      {"port"},
	"cluster.port":          {"port", "remote.grpc_port"},
	"cluster.client_expiry": {"cluster.verify_interval"},
	"auth.token_secret":     {"auth.enabled"},
}

// attribute begins each of Validate's errors with the file, variable or flags
// that set its key (or "built-in default"), as type errors begin, and ends it
// with where the other keys it depends on were set, when elsewhere:
//
//	config file s.yaml: remote.grpc_port: 9000 is also the HTTP port (port from flags)
func attribute(err error, origin map[string]string) error {
	list := []error{err}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		list = joined.Unwrap()
	}
	out := make([]error, len(list))
	for i, e := range list {
		ke, ok := errors.AsType[*keyError](e)
		if !ok {
			out[i] = e
			continue
		}
		source := sourceOf(ke.key, origin)
		var others []string
		for _, other := range dependsOn[ke.key] {
			if o, set := origin[other]; set && o != source {
				others = append(others, other+" from "+o)
			}
		}
		suffix := ""
		if len(others) > 0 {
			suffix = " (" + strings.Join(others, "; ") + ")"
		}
		out[i] = fmt.Errorf("%s: %w%s", source, e, suffix)
	}
	return errors.Join(out...)
}

// sourceOf returns where key was set: its own source, or for a section such
// as "plugins.webhook" the source of its first key that was set.
func sourceOf(key string, origin map[string]string) string {
	if o, ok := origin[key]; ok {
		return o
	}
	for _, k := range slices.Sorted(maps.Keys(origin)) {
		if strings.HasPrefix(k, key+".") {
			return origin[k]
		}
	}
	return defaultSource
}

// keyTypes returns the Go type of every configuration key, such as
// "push.retry_delay", derived from Config's koanf tags. The plugins section,
// whose keys are named by the user, is not in it: see pluginKeyType.
func keyTypes() map[string]reflect.Type {
	return structKeys("", reflect.TypeFor[Config]())
}

func structKeys(prefix string, t reflect.Type) map[string]reflect.Type {
	keys := make(map[string]reflect.Type)
	for f := range t.Fields() {
		key := prefix + f.Tag.Get("koanf")
		switch f.Type.Kind() {
		case reflect.Struct:
			maps.Copy(keys, structKeys(key+".", f.Type))
		case reflect.Map:
			// A section of user-named entries.
		default:
			keys[key] = f.Type
		}
	}
	return keys
}

// pluginKeys are the keys of one entry of the plugins section.
var pluginKeys = structKeys("", reflect.TypeFor[Plugin]())

// anyValue marks a key whose value is kept as it is: a plugin's own settings,
// which the plugin's schema checks once the plugin says what it is.
var anyValue = reflect.TypeFor[any]()

// pluginConfig is the type of a plugin's config block itself, which
// flattening leaves as a key only when it is empty or not a block at all.
var pluginConfig = reflect.TypeFor[map[string]any]()

// pluginKeyType returns the type of a key in the plugins section, such as
// "plugins.webhook.path", or false if key is not one.
func pluginKeyType(key string) (reflect.Type, bool) {
	rest, ok := strings.CutPrefix(key, "plugins.")
	if !ok {
		return nil, false
	}
	_, field, ok := strings.Cut(rest, ".")
	if !ok {
		return nil, false
	}
	if field == "config" {
		return pluginConfig, true
	}
	if strings.HasPrefix(field, "config.") {
		return anyValue, true
	}
	t, ok := pluginKeys[field]
	return t, ok
}

// envName returns the environment variable that sets key.
func envName(key string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// fileValues reads the settings in the HCL or YAML file at path.
func fileValues(path string, keys map[string]reflect.Type) (map[string]any, error) {
	source := fileSource(path)
	var parser koanf.Parser
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".hcl":
		// HCL v1 decodes every block as a list of maps; flattening turns
		// single blocks back into maps.
		parser = hcl.Parser(true)
	case ".yaml", ".yml":
		parser = yaml.Parser()
	default:
		return nil, fmt.Errorf("%s: unsupported extension %q (want .hcl, .yaml or .yml)", source, ext)
	}

	k := koanf.New(".")
	if err := k.Load(file.Provider(path), parser); err != nil {
		if pe, ok := errors.AsType[*fs.PathError](err); ok {
			err = pe.Err // the path is already in source
		}
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	return convertAll(source, k.All(), keys)
}

// envValues reads the SEXTANT_* variables in env, a list of "NAME=value".
// Variables are matched to keys by name, never by splitting the name at
// underscores, which keys contain too. Variables that match no key are
// ignored, and described in the notes returned: Kubernetes service links in
// one note, each other variable in a warning of its own.
// clientEnv are the variables of the admin CLI (sextant services, ...):
// not the server's configuration, and no typo of it, when they are set in
// the server's environment too.
var clientEnv = []string{"SEXTANT_ADDR", "SEXTANT_TOKEN"}

func envValues(env []string, keys map[string]reflect.Type) (map[string]any, []Note, error) {
	byName := make(map[string]string, len(keys))
	for key := range keys {
		byName[envName(key)] = key
	}

	values := make(map[string]any)
	seen := make(map[string]bool)
	var links, unknown []string
	var errs []error
	for _, kv := range env {
		name, text, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, envPrefix) || slices.Contains(clientEnv, name) {
			continue
		}
		key, known := byName[name]
		// A key's variable with a link's value is a link too: a Service
		// named sextant-cluster sets SEXTANT_CLUSTER_PORT=tcp://...
		isLink := serviceLinkValue.MatchString(text) && strings.HasSuffix(name, "_PORT") ||
			!known && serviceLinkName.MatchString(name)
		if isLink || !known {
			if !seen[name] {
				seen[name] = true
				if isLink {
					links = append(links, name)
				} else {
					unknown = append(unknown, name)
				}
			}
			continue
		}
		v, err := convert(text, keys[key])
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %w", envSource(name), key, err))
			continue
		}
		values[key] = v
	}

	var notes []Note
	slices.Sort(links)
	if len(links) > 0 {
		notes = append(notes, Note{Text: fmt.Sprintf("ignoring %s: Kubernetes service-link variables of a Service named sextant, "+
			"not configuration (enableServiceLinks: false in the pod spec leaves them out)", strings.Join(links, ", "))})
	}
	slices.Sort(unknown)
	for _, name := range unknown {
		text := fmt.Sprintf("ignoring %s: it matches no configuration key", envSource(name))
		if alt, ok := closestName(name, byName); ok {
			text += fmt.Sprintf("; did you mean %s (%s)?", alt, byName[alt])
		} else if strings.HasPrefix(name, envPrefix+"PLUGINS_") {
			text += " (plugins are configured in the file only)"
		}
		notes = append(notes, Note{Warning: true, Text: text})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, notes, err
	}
	return values, notes, nil
}

var (
	// serviceLinkName matches the names of the variables Kubernetes sets
	// for a Service named sextant or sextant-something (whose name is
	// upper-cased, with '-' as '_'): SEXTANT_SERVICE_HOST,
	// SEXTANT_SERVICE_PORT, SEXTANT_SERVICE_PORT_<PORT NAME>,
	// SEXTANT_PORT_<n>_<PROTOCOL> and that with _PROTO, _PORT or _ADDR.
	serviceLinkName = regexp.MustCompile(`^SEXTANT(_[A-Z0-9_]+)?_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT_[0-9]+_(TCP|UDP|SCTP)(_PROTO|_PORT|_ADDR)?)$`)
	// serviceLinkValue matches the value of SEXTANT_PORT as Kubernetes sets
	// it: the Service's first port as a URL, such as tcp://10.0.0.1:8848.
	serviceLinkValue = regexp.MustCompile(`^(tcp|udp|sctp)://[^/\s]+:[0-9]+$`)
)

// maxTypoDistance is the largest edit distance between an unknown variable
// and a key's that makes the key's the variable probably meant.
const maxTypoDistance = 2

// closestName returns the name in names nearest to name (ignoring case), if
// it is within maxTypoDistance edits; of equally near names, the first in
// order.
func closestName(name string, names map[string]string) (string, bool) {
	upper := strings.ToUpper(name)
	best, bestDist := "", maxTypoDistance+1
	for _, n := range slices.Sorted(maps.Keys(names)) {
		if d := editDistance(upper, n); d < bestDist {
			best, bestDist = n, d
		}
	}
	return best, best != ""
}

// editDistance is the Levenshtein distance between a and b: the fewest
// single-byte insertions, deletions and substitutions turning a into b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1) // distances from a[:i-1] to each b[:j]
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// convertAll converts flat, settings keyed by their full key, to their keys'
// types. Errors begin with source, the origin of the settings.
func convertAll(source string, flat map[string]any, keys map[string]reflect.Type) (map[string]any, error) {
	values := make(map[string]any, len(flat))
	var errs []error
	for _, key := range slices.Sorted(maps.Keys(flat)) {
		v := flat[key]
		t, isKey := keys[key]
		if !isKey {
			t, isKey = pluginKeyType(key)
		}
		var err error
		switch {
		case isKey:
			values[key], err = convert(v, t)
		case isSection(key, keys) && isEmpty(v):
			// An empty block or map sets nothing, but an empty plugin entry
			// still names a plugin to run.
			if strings.HasPrefix(key, "plugins.") {
				values[key] = map[string]any{}
			}
		case isSection(key, keys):
			err = fmt.Errorf("is a section, not a setting (got %s)", describe(v))
		default:
			err = errors.New("unknown key")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %w", source, key, err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return values, nil
}

// isSection reports whether key is a prefix of configuration keys, such as "push".
func isSection(key string, keys map[string]reflect.Type) bool {
	if key == "plugins" || strings.Count(key, ".") == 1 && strings.HasPrefix(key, "plugins.") {
		return true // the section, or one plugin's entry
	}
	for k := range keys {
		if strings.HasPrefix(k, key+".") {
			return true
		}
	}
	return false
}

// isEmpty reports whether v is nil or an empty map.
func isEmpty(v any) bool {
	m, isMap := v.(map[string]any)
	return v == nil || isMap && len(m) == 0
}

// convert returns v as a value of type t. v may be of type t already, or a
// string in t's syntax, as environment variables are: "9000", "true", "500ms".
// Nothing else is converted: true is no integer, and 500 no duration.
func convert(v any, t reflect.Type) (any, error) {
	if t == anyValue || reflect.TypeOf(v) == t {
		return v, nil
	}
	if t == pluginConfig {
		if v != nil {
			return nil, fmt.Errorf("want a block of the plugin's settings, got %s", describe(v))
		}
		return v, nil
	}
	if t == reflect.TypeFor[[]string]() {
		return convertList(v)
	}
	if t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct {
		return convertBlocks(v, t) // auth.users, auth.roles
	}
	var (
		name  string // the type as errors call it
		want  string // what a value of the type looks like
		parse func(string) (any, error)
	)
	switch t {
	case reflect.TypeFor[time.Duration]():
		name, want = "duration", `a duration such as "500ms"`
		parse = func(s string) (any, error) { return time.ParseDuration(s) }
	case reflect.TypeFor[int]():
		name, want = "integer", "an integer"
		parse = func(s string) (any, error) { return strconv.Atoi(s) }
	case reflect.TypeFor[bool]():
		name, want = "boolean", "true or false"
		parse = func(s string) (any, error) { return strconv.ParseBool(s) }
	case reflect.TypeFor[string]():
		want = "a string"
	default:
		return nil, fmt.Errorf("settings of type %s are not supported", t)
	}

	s, isString := v.(string)
	if !isString || parse == nil {
		return nil, fmt.Errorf("want %s, got %s", want, describe(v))
	}
	x, err := parse(s)
	if err != nil {
		return nil, fmt.Errorf("invalid %s %q", name, s)
	}
	return x, nil
}

// convertList returns v as a list of strings: a list of strings (a file's),
// or one string of comma-separated items (an environment variable's or a
// flag's; "" is the empty list).
func convertList(v any) (any, error) {
	switch v := v.(type) {
	case string:
		if v == "" {
			return []string{}, nil
		}
		items := strings.Split(v, ",")
		for i := range items {
			items[i] = strings.TrimSpace(items[i])
		}
		return items, nil
	case []any:
		out := make([]string, len(v))
		for i, item := range v {
			s, ok := item.(string)
			if !ok {
				return nil, fmt.Errorf("item %d: want a string, got %s", i, describe(item))
			}
			out[i] = s
		}
		return out, nil
	}
	return nil, fmt.Errorf("want a list of strings, got %s", describe(v))
}

// describe names v in an error.
func describe(v any) string {
	switch reflect.ValueOf(v).Kind() {
	case reflect.Invalid:
		return "nothing"
	case reflect.Map:
		return "a map"
	case reflect.Slice:
		return "a list"
	}
	return fmt.Sprintf("%v (%T)", v, v)
}
