//go:build linux

package httpapi

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// systemLoad returns the 1-minute load average and the share of memory in
// use (1 - MemAvailable/MemTotal), from /proc; 0 for what cannot be read.
func systemLoad() (load, mem float64) {
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			load, _ = strconv.ParseFloat(f[0], 64)
		}
	}
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return load, 0
	}
	var total, available float64
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "MemTotal:":
			total, _ = strconv.ParseFloat(f[1], 64)
		case "MemAvailable:":
			available, _ = strconv.ParseFloat(f[1], 64)
		}
	}
	if total > 0 && available <= total {
		mem = 1 - available/total
	}
	return load, mem
}

// processCPUTime returns the CPU time (user and system) this process used.
func processCPUTime() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
