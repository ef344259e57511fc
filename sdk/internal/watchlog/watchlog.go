// Package watchlog holds what the membership plugin side and the conformance
// kit agree on about the plugin's log: the kit cannot see over the wire when
// a cancelled Watch really ended (the host's end of a server stream closes
// at once), so the plugin side logs it, and the kit reads a plugin binary's
// log for it.
package watchlog

// Ended is the message the plugin side logs, at debug level, each time a
// Watch of its provider has returned.
const Ended = "membership: watch ended"
