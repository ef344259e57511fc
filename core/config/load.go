package config

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path/filepath"
	"reflect"
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
// "500ms". Unknown keys and values of the wrong type are errors naming the key
// and the file, variable or flag it came from; all of them are reported.
func Load(path string, env []string, flags map[string]any) (Config, error) {
	keys := keyTypes()
	k := koanf.New(".")
	var errs []error
	merge := func(values map[string]any, err error) {
		if err != nil {
			errs = append(errs, err)
			return
		}
		errs = append(errs, k.Load(confmap.Provider(values, "."), nil))
	}
	if path != "" {
		merge(fileValues(path, keys))
	}
	merge(envValues(env, keys))
	merge(convertAll("flags", flags, keys))
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}

	// Every value already has its field's type, so decoding is strict.
	cfg := Default()
	dc := &mapstructure.DecoderConfig{ErrorUnused: true, TagName: "koanf"}
	if err := k.UnmarshalWithConf("", &cfg, koanf.UnmarshalConf{DecoderConfig: dc}); err != nil {
		return Config{}, fmt.Errorf("decode configuration: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
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
	if field == "config" || strings.HasPrefix(field, "config.") {
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
	source := "config file " + path
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
// underscores, which keys contain too.
func envValues(env []string, keys map[string]reflect.Type) (map[string]any, error) {
	byName := make(map[string]string, len(keys))
	for key := range keys {
		byName[envName(key)] = key
	}

	values := make(map[string]any)
	var errs []error
	for _, kv := range env {
		name, text, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, envPrefix) {
			continue
		}
		key, ok := byName[name]
		if !ok {
			errs = append(errs, fmt.Errorf("environment variable %s: matches no configuration key", name))
			continue
		}
		v, err := convert(text, keys[key])
		if err != nil {
			errs = append(errs, fmt.Errorf("environment variable %s: %s: %w", name, key, err))
			continue
		}
		values[key] = v
	}
	return values, errors.Join(errs...)
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
	if t == reflect.TypeFor[[]string]() {
		return convertList(v)
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
