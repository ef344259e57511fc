package consensus

import "errors"

// Errors of a Node.
var (
	// ErrNoQuorum is wrapped by the error of a write or a read that could
	// not be committed within Config.ApplyTimeout: there is no leader, or
	// the leader cannot reach a quorum of the voters. The HTTP and gRPC
	// layers answer it with 503 (the client retries). A write that failed
	// with it after reaching the leader may still be applied later.
	ErrNoQuorum = errors.New("consensus: no leader or no quorum")
	// ErrStopped is returned by a node that is not running: not started
	// yet, stopping, or stopped.
	ErrStopped = errors.New("consensus: the node is not running")
	// ErrRejected is wrapped by the error of a write the state machine
	// rejected: its Apply returned an error, whose text follows, on the
	// leader and on a follower alike (the error crosses the cluster as
	// text, so only its text is kept).
	ErrRejected = errors.New("consensus: the state machine rejected the command")
	// ErrTooLarge is wrapped by the error of a command larger than
	// MaxCommandSize, and of a snapshot from a leader larger than
	// Config.MaxSnapshotSize.
	ErrTooLarge = errors.New("consensus: too large")
)

// quorumError is an ErrNoQuorum with its reason.
type quorumError struct{ reason string }

func (e *quorumError) Error() string { return ErrNoQuorum.Error() + ": " + e.reason }
func (e *quorumError) Unwrap() error { return ErrNoQuorum }

func noQuorum(reason string) error { return &quorumError{reason: reason} }

// rejectedError is an ErrRejected with the state machine's text.
type rejectedError struct{ text string }

func (e *rejectedError) Error() string { return ErrRejected.Error() + ": " + e.text }
func (e *rejectedError) Unwrap() error { return ErrRejected }
