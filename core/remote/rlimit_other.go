//go:build !unix

package remote

// openFileLimit reports that there is no RLIMIT_NOFILE here.
func openFileLimit() (uint64, bool) { return 0, false }
