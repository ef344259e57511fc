package config

import (
	"strings"
	"testing"
)

func TestParseMemoryLimit(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		err  bool
	}{
		{"", 0, false},
		{"536870912", 512 << 20, false},
		{"536870912B", 512 << 20, false},
		{"512MiB", 512 << 20, false},
		{"65536KiB", 64 << 20, false},
		{"2GiB", 2 << 30, false},
		{"1TiB", 1 << 40, false},
		{"512MB", 0, true}, // Go's syntax: MiB
		{"512 MiB", 0, true},
		{"1.5GiB", 0, true},
		{"-1GiB", 0, true},
		{"MiB", 0, true},
		{"9000000TiB", 0, true},
	} {
		got, err := ParseMemoryLimit(tt.in)
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("ParseMemoryLimit(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestMemoryLimit(t *testing.T) {
	cfg, _, err := Load("", []string{"SEXTANT_MEMORY_LIMIT=512MiB"}, nil)
	if err != nil || cfg.MemoryLimit != "512MiB" || cfg.MemoryLimitBytes() != 512<<20 {
		t.Fatalf("Load with SEXTANT_MEMORY_LIMIT=512MiB: %q (%d bytes), %v", cfg.MemoryLimit, cfg.MemoryLimitBytes(), err)
	}
	if d := Default(); d.MemoryLimit != "" || d.MemoryLimitBytes() != 0 {
		t.Errorf("default memory_limit %q, want unset", d.MemoryLimit)
	}
	for in, want := range map[string]string{
		"lots":  `memory_limit: "lots" is not a size such as "512MiB"`,
		"16MiB": "memory_limit: 16MiB is below the minimum of 32MiB",
	} {
		c := Default()
		c.MemoryLimit = in
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("memory_limit %q: %v, want an error with %q", in, err, want)
		}
	}
	if _, _, err := Load(writeFile(t, "s.yaml", "memory_limit: 8MiB\n"), nil, nil); err == nil ||
		!strings.Contains(err.Error(), "s.yaml: memory_limit: 8MiB is below the minimum") {
		t.Errorf("a file's memory_limit of 8MiB: %v", err)
	}
}
