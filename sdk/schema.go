package sdk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"
)

// FieldType is the type of a configuration value.
type FieldType string

// The types a configuration value may have.
const (
	String     FieldType = "string"
	Int        FieldType = "int"
	Float      FieldType = "float"
	Bool       FieldType = "bool"
	Duration   FieldType = "duration" // a string such as "2s"
	StringList FieldType = "string_list"
)

// Field declares one key of a plugin's configuration block.
type Field struct {
	Key         string
	Type        FieldType
	Required    bool
	Description string
}

// Schema declares a plugin's configuration block: every key it accepts.
type Schema []Field

// Validate reports whether the schema itself is well formed.
func (s Schema) Validate() error {
	seen := map[string]bool{}
	var errs []error
	for i, f := range s {
		switch {
		case f.Key == "":
			errs = append(errs, fmt.Errorf("field %d has no key", i))
		case seen[f.Key]:
			errs = append(errs, fmt.Errorf("key %q is declared twice", f.Key))
		}
		seen[f.Key] = true
		switch f.Type {
		case String, Int, Float, Bool, Duration, StringList:
		default:
			errs = append(errs, fmt.Errorf("key %q has unknown type %q", f.Key, f.Type))
		}
	}
	return errors.Join(errs...)
}

// Check validates a user's configuration block against the schema and
// returns it as JSON: integers as numbers, durations as strings like "2s",
// lists as arrays. Every problem is reported, each naming its key.
func (s Schema) Check(block map[string]any) ([]byte, error) {
	fields := map[string]Field{}
	for _, f := range s {
		fields[f.Key] = f
	}
	out := map[string]any{}
	var errs []error
	for _, key := range slices.Sorted(maps.Keys(block)) {
		f, ok := fields[key]
		if !ok {
			errs = append(errs, fmt.Errorf("config.%s: unknown key", key))
			continue
		}
		v, err := f.Type.convert(block[key])
		if err != nil {
			errs = append(errs, fmt.Errorf("config.%s: %w", key, err))
			continue
		}
		out[key] = v
	}
	for _, f := range s {
		if _, ok := block[f.Key]; f.Required && !ok {
			errs = append(errs, fmt.Errorf("config.%s: required (%s)", f.Key, f.Type))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return json.Marshal(out)
}

// convert returns v as a value of type t, for JSON.
func (t FieldType) convert(v any) (any, error) {
	switch t {
	case String:
		if s, ok := v.(string); ok {
			return s, nil
		}
	case Bool:
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case Int:
		switch n := v.(type) {
		case int:
			return n, nil
		case int64:
			return n, nil
		case float64:
			if n == math.Trunc(n) {
				return int64(n), nil
			}
		}
	case Float:
		switch n := v.(type) {
		case int:
			return float64(n), nil
		case int64:
			return float64(n), nil
		case float64:
			return n, nil
		}
	case Duration:
		if s, ok := v.(string); ok {
			d, err := time.ParseDuration(s)
			if err != nil {
				return nil, fmt.Errorf("invalid duration %q", s)
			}
			return d.String(), nil
		}
	case StringList:
		if list, ok := v.([]any); ok {
			out := make([]string, len(list))
			for i, item := range list {
				s, ok := item.(string)
				if !ok {
					return nil, fmt.Errorf("item %d: want a string, got %v (%T)", i, item, item)
				}
				out[i] = s
			}
			return out, nil
		}
	}
	return nil, fmt.Errorf("want %s, got %v (%T)", t, v, v)
}

// DecodeConfig decodes the configuration a plugin was handed into v, a
// pointer to a struct whose JSON field names are the schema's keys; a key
// the struct lacks is an error. A key declared with type Duration arrives as
// a string such as "2s": decode it into a ConfigDuration field.
func DecodeConfig(config []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(config))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

// ConfigDuration is a duration in a plugin's configuration ("2s").
type ConfigDuration time.Duration

// UnmarshalJSON reads a duration string.
func (d *ConfigDuration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration string: %w", err)
	}
	parsed, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = ConfigDuration(parsed)
	return nil
}
