package sdk

import (
	"strings"
	"testing"
	"time"
)

var testSchema = Schema{
	{Key: "url", Type: String, Required: true},
	{Key: "retries", Type: Int},
	{Key: "ratio", Type: Float},
	{Key: "verbose", Type: Bool},
	{Key: "timeout", Type: Duration},
	{Key: "services", Type: StringList},
}

func TestSchemaCheck(t *testing.T) {
	got, err := testSchema.Check(map[string]any{
		"url": "http://x", "retries": 3, "ratio": 1, "verbose": true, "timeout": "1500ms", "services": []any{"a-*", "b"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		URL      string         `json:"url"`
		Retries  int            `json:"retries"`
		Ratio    float64        `json:"ratio"`
		Verbose  bool           `json:"verbose"`
		Timeout  ConfigDuration `json:"timeout"`
		Services []string       `json:"services"`
	}
	if err := DecodeConfig(got, &cfg); err != nil {
		t.Fatalf("decoding %s: %v", got, err)
	}
	if cfg.URL != "http://x" || cfg.Retries != 3 || cfg.Ratio != 1 || !cfg.Verbose || time.Duration(cfg.Timeout) != 1500*time.Millisecond ||
		strings.Join(cfg.Services, ",") != "a-*,b" {
		t.Fatalf("decoded %+v from %s", cfg, got)
	}
}

func TestSchemaCheckErrors(t *testing.T) {
	tests := []struct {
		block map[string]any
		want  []string
	}{
		{map[string]any{}, []string{"config.url: required"}},
		{map[string]any{"url": "x", "urll": "y"}, []string{"config.urll: unknown key"}},
		{map[string]any{"url": 1}, []string{"config.url: want string"}},
		{map[string]any{"url": "x", "retries": 1.5}, []string{"config.retries: want int"}},
		{map[string]any{"url": "x", "timeout": "soon"}, []string{`config.timeout: invalid duration "soon"`}},
		{map[string]any{"url": "x", "timeout": 5}, []string{"config.timeout: want duration"}},
		{map[string]any{"url": "x", "services": []any{"a", 2}}, []string{"config.services: item 1"}},
		{map[string]any{"urll": "y", "verbose": "yes"}, []string{"config.urll", "config.verbose", "config.url: required"}},
	}
	for _, tc := range tests {
		_, err := testSchema.Check(tc.block)
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("Check(%v) = %v, want it to mention %q", tc.block, err, w)
			}
		}
	}
}

func TestSchemaValidate(t *testing.T) {
	if err := testSchema.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Schema{
		{{Key: "", Type: String}},
		{{Key: "a", Type: String}, {Key: "a", Type: Int}},
		{{Key: "a", Type: "map"}},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("Validate(%v) accepted it", bad)
		}
	}
}
