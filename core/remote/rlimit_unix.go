//go:build unix

package remote

import "syscall"

// openFileLimit returns the process's RLIMIT_NOFILE soft limit (which the Go
// runtime raises to the hard limit at start).
func openFileLimit() (uint64, bool) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, false
	}
	return uint64(rl.Cur), true
}
