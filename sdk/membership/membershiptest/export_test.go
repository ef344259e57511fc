package membershiptest

import "time"

// The kit's own tests wait less for what a broken plugin never sends.
func init() {
	firstListWait = 2 * time.Second
	changeWait = 2 * time.Second
}
