// Package engine runs the server's background work: a DelayEngine holds keyed
// tasks until they are due, merging the ones for the same key, and an
// ExecuteEngine runs tasks on a fixed set of workers, in order per tag.
package engine

import (
	"context"
	"errors"
)

// Errors returned by the engines.
var (
	// ErrStarted is returned by Start when the engine was already started.
	ErrStarted = errors.New("engine: already started")
	// ErrStopped is returned once Stop has begun.
	ErrStopped = errors.New("engine: stopped")
)

type state int

const (
	created state = iota
	running
	stopped
)

// startErr reports why an engine in state s cannot start.
func (s state) startErr() error {
	switch s {
	case running:
		return ErrStarted
	case stopped:
		return ErrStopped
	}
	return nil
}

// await waits for done. When ctx ends first it calls cancel, still waits for
// done, and returns ctx.Err(). cancel is called in any case.
func await(ctx context.Context, done <-chan struct{}, cancel context.CancelFunc) error {
	defer cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		cancel()
		<-done
		return ctx.Err()
	}
}
