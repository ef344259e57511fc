package config

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
)

// A Setting is a key whose value differs from the built-in default, with
// where it was set, as the server logs it at start-up.
type Setting struct {
	Key string // such as "push.delay" or "plugins.webhook.path"
	// Value is the value as it may be logged: a secret's is "(set)", and a
	// list of blocks (auth.users, auth.roles) is only counted.
	Value string
	// Source is the file, environment variable or flags that set it, as
	// errors name them: "config file s.hcl", "environment variable
	// SEXTANT_PORT", "flags".
	Source string
}

// secretValue is what a secret's value is logged as.
const secretValue = "(set)"

// settings returns the settings of cfg that differ from Default(), each
// with its source in origin (key → the source that set it last), in key
// order.
func settings(cfg Config, origin map[string]string) []Setting {
	values := structValues("", reflect.ValueOf(cfg))
	defaults := structValues("", reflect.ValueOf(Default()))
	def := Default()
	var out []Setting
	for _, key := range slices.Sorted(maps.Keys(origin)) {
		v, isKey := values[key]
		switch {
		case isKey:
			if reflect.DeepEqual(v, defaults[key]) {
				continue
			}
		case strings.HasPrefix(key, "plugins."):
			var changed bool
			if v, changed = pluginSetting(cfg, def, key); !changed {
				continue
			}
		default:
			continue
		}
		out = append(out, Setting{Key: key, Value: display(key, v), Source: origin[key]})
	}
	return out
}

// pluginSetting returns the value of key, a key of the plugins section, and
// whether it differs from the default: a plugin's field, a key of its
// config block (always: no plugin has a default block), or the entry of a
// plugin set with no keys (when no default plugin has its name).
func pluginSetting(cfg, def Config, key string) (any, bool) {
	name, field, _ := strings.Cut(strings.TrimPrefix(key, "plugins."), ".")
	p, set := cfg.Plugins[name]
	d, isDefault := def.Plugins[name]
	switch {
	case !set:
		return nil, false
	case field == "":
		return "{}", !isDefault
	case field == "config" || strings.HasPrefix(field, "config."):
		return configValue(p.Config, strings.TrimPrefix(strings.TrimPrefix(field, "config"), ".")), true
	}
	v, ok := structValues("", reflect.ValueOf(p))[field]
	if !ok {
		return nil, false
	}
	return v, !reflect.DeepEqual(v, structValues("", reflect.ValueOf(d))[field])
}

// configValue returns the value at the dotted path in a plugin's config
// block ("" for the block itself).
func configValue(block map[string]any, path string) any {
	var v any = block
	for part := range strings.SplitSeq(path, ".") {
		if part == "" {
			break
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[part]
	}
	return v
}

// structValues returns the value of every key of a struct with koanf tags,
// as keyTypes names them; map fields (the plugins section) are left out.
func structValues(prefix string, v reflect.Value) map[string]any {
	out := make(map[string]any)
	for i := range v.NumField() {
		f := v.Type().Field(i)
		key := prefix + f.Tag.Get("koanf")
		switch f.Type.Kind() {
		case reflect.Struct:
			maps.Copy(out, structValues(key+".", v.Field(i)))
		case reflect.Map:
		default:
			out[key] = v.Field(i).Interface()
		}
	}
	return out
}

// display renders the value of key for the log: "(set)" for a secret, a
// count for a list of blocks, the value otherwise.
func display(key string, v any) string {
	if isSecret(key) {
		return secretValue
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Slice && rv.Type().Elem().Kind() == reflect.Struct {
		return fmt.Sprintf("(%d entries)", rv.Len())
	}
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

// isSecret reports whether key holds a secret, judging by the last part of
// its name: auth.token_secret, cluster.secret, a plugin's password, token
// (not auth.token_ttl), encrypt_key or credentials. A key's file
// (tls.key_file) is a path, not a secret.
func isSecret(key string) bool {
	name := strings.ReplaceAll(strings.ToLower(key[strings.LastIndexByte(key, '.')+1:]), "-", "_")
	for _, word := range []string{"secret", "password", "passwd", "credential", "private", "seed"} {
		if strings.Contains(name, word) {
			return true
		}
	}
	return strings.Contains(name, "token") && !strings.HasSuffix(name, "ttl") ||
		name == "key" || strings.HasSuffix(name, "_key") || strings.HasSuffix(name, "apikey")
}
