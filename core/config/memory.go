package config

import (
	"fmt"
	"strconv"
	"strings"
)

// minMemoryLimit is the lowest memory_limit accepted: an idle server's Go
// runtime alone takes several MiB, and a limit near what the server needs
// would keep the garbage collector running without pause.
const minMemoryLimit = 32 << 20

// memoryUnits are the suffixes of memory_limit, as GOMEMLIMIT takes them.
var memoryUnits = []struct {
	suffix string
	shift  uint
}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}

// ParseMemoryLimit reads a memory_limit: a number of bytes, with an optional
// unit suffix B, KiB, MiB, GiB or TiB, as GOMEMLIMIT takes it ("512MiB").
// "" is 0: no limit.
func ParseMemoryLimit(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	digits, shift := s, uint(0)
	for _, u := range memoryUnits {
		if d, ok := strings.CutSuffix(s, u.suffix); ok {
			digits, shift = d, u.shift
			break
		}
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size such as \"512MiB\" (bytes, or a whole number of B, KiB, MiB, GiB or TiB)", s)
	}
	if n > (1<<63-1)>>shift {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n << shift, nil
}

// MemoryLimitBytes returns memory_limit in bytes, 0 when unset. Validate
// has checked it.
func (c Config) MemoryLimitBytes() int64 {
	n, _ := ParseMemoryLimit(c.MemoryLimit)
	return n
}

// validateMemoryLimit checks memory_limit.
func (c Config) validateMemoryLimit(fail func(key, format string, args ...any)) {
	switch n, err := ParseMemoryLimit(c.MemoryLimit); {
	case err != nil:
		fail("memory_limit", "%v", err)
	case c.MemoryLimit != "" && n < minMemoryLimit:
		fail("memory_limit", "%s is below the minimum of %dMiB", c.MemoryLimit, minMemoryLimit>>20)
	}
}
