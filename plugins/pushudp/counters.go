package pushudp

import "sync/atomic"

// Counters are what the executor counted since it started. A push plugin has
// no metrics endpoint of its own: the server's plugin metrics count its
// batches and failed targets, the executor logs these when it closes, and
// datagrams it ignores are logged as they come (a line every 10 s at most).
type Counters struct {
	// Datagrams is how many datagrams the socket sent: pushes (first sends
	// and resends) and dump answers count.
	Datagrams int64
	// Resends is how many of them were pushes sent again, unacknowledged.
	Resends int64
	// OverGoV1 is how many pushes were larger than GoV1ReadSize: the Nacos
	// Go SDK v1 reads them truncated and never acknowledges them.
	OverGoV1 int64
	// Acked is how many targets acknowledged their push.
	Acked int64
	// Failed is how many targets Push reported failed, for any of the
	// reasons below.
	Failed int64
	// TimedOut is how many targets failed because no ack came after the
	// last resend's wait.
	TimedOut int64
	// Cancelled is how many targets failed because the push's context ended
	// (or the executor closed) first.
	Cancelled int64
	// BadAddress is how many targets failed at once, their Address not
	// being ip:port with a literal unicast IP and a port.
	BadAddress int64
	// TooLarge is how many targets failed at once, their push being larger
	// than MaxDatagram even gzipped.
	TooLarge int64
	// PendingFull is how many targets failed at once, max_pending acks
	// being awaited already.
	PendingFull int64
	// SendErrors is how many writes the socket refused. A first send
	// refused fails its targets at once (counted in Failed).
	SendErrors int64

	// Malformed is how many datagrams received were not JSON, or an ack or
	// dump request without a proper lastRefTime.
	Malformed int64
	// Oversized is how many datagrams received were larger than MaxInbound.
	Oversized int64
	// UnknownType is how many datagrams received were of a type other than
	// push-ack and dump.
	UnknownType int64
	// StaleAcks is how many acks matched no push awaiting one: late (the
	// push had given up), the ack of a resend after the first one's, or
	// made up.
	StaleAcks int64
	// ForeignAcks is how many acks named a push in flight but came from an
	// address it was not sent to.
	ForeignAcks int64
	// ReadErrors is how many reads of the socket failed.
	ReadErrors int64

	// Dumps is how many dump requests were answered.
	Dumps int64
	// DumpsLimited is how many dump requests were ignored, coming within
	// 100 ms of the last one answered.
	DumpsLimited int64
	// DumpTrimmed is how many services dump answers left out to fit one
	// datagram.
	DumpTrimmed int64
	// DumpForgotten is how many services were forgotten by dumps, more than
	// MaxDumpServices having been pushed since.
	DumpForgotten int64

	// Pending is how many acks are awaited now.
	Pending int64
}

// counters are the executor's live Counters.
type counters struct {
	datagrams, resends, overGoV1, acked, failed               atomic.Int64
	timedOut, cancelled, badAddress, tooLarge, pendingFull    atomic.Int64
	sendErrors, malformed, oversized, unknownType, staleAcks  atomic.Int64
	foreignAcks, readErrors, dumps, dumpsLimited, dumpTrimmed atomic.Int64
	dumpForgotten                                             atomic.Int64
}

// Counters returns what the executor counted so far.
func (e *Executor) Counters() Counters {
	c := &e.counters
	e.mu.Lock()
	pending := e.pending
	e.mu.Unlock()
	return Counters{
		Datagrams: c.datagrams.Load(), Resends: c.resends.Load(), OverGoV1: c.overGoV1.Load(),
		Acked: c.acked.Load(), Failed: c.failed.Load(), TimedOut: c.timedOut.Load(), Cancelled: c.cancelled.Load(),
		BadAddress: c.badAddress.Load(), TooLarge: c.tooLarge.Load(), PendingFull: c.pendingFull.Load(),
		SendErrors: c.sendErrors.Load(), Malformed: c.malformed.Load(), Oversized: c.oversized.Load(),
		UnknownType: c.unknownType.Load(), StaleAcks: c.staleAcks.Load(), ForeignAcks: c.foreignAcks.Load(),
		ReadErrors: c.readErrors.Load(), Dumps: c.dumps.Load(), DumpsLimited: c.dumpsLimited.Load(),
		DumpTrimmed: c.dumpTrimmed.Load(), DumpForgotten: c.dumpForgotten.Load(), Pending: int64(pending),
	}
}

// keyValues are the counters as a log line's key/value pairs.
func (c Counters) keyValues() []any {
	return []any{
		"datagrams", c.Datagrams, "resends", c.Resends, "over_go_v1", c.OverGoV1, "acked", c.Acked,
		"failed", c.Failed, "timed_out", c.TimedOut, "cancelled", c.Cancelled, "bad_address", c.BadAddress,
		"too_large", c.TooLarge, "pending_full", c.PendingFull, "send_errors", c.SendErrors,
		"malformed", c.Malformed, "oversized", c.Oversized, "unknown_type", c.UnknownType,
		"stale_acks", c.StaleAcks, "foreign_acks", c.ForeignAcks, "read_errors", c.ReadErrors,
		"dumps", c.Dumps, "dumps_limited", c.DumpsLimited, "dump_trimmed", c.DumpTrimmed,
		"dump_forgotten", c.DumpForgotten, "pending", c.Pending,
	}
}
