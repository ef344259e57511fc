//go:build !linux

package httpapi

import "time"

// systemLoad is known on Linux only (sysload_linux.go).
func systemLoad() (load, mem float64) { return 0, 0 }

// processCPUTime is known on Linux only (sysload_linux.go).
func processCPUTime() (time.Duration, bool) { return 0, false }
