package forward

import (
	"context"
	"hash/maphash"
)

// keyLocks serialises the handoffs and writes of one client on this node:
// a striped set of locks, taken within a context.
type keyLocks struct {
	seed    maphash.Seed
	stripes [256]chan struct{}
}

func newKeyLocks() *keyLocks {
	l := &keyLocks{seed: maphash.MakeSeed()}
	for i := range l.stripes {
		l.stripes[i] = make(chan struct{}, 1)
	}
	return l
}

func (l *keyLocks) stripe(key string) chan struct{} {
	return l.stripes[maphash.String(l.seed, key)%uint64(len(l.stripes))]
}

// lock takes key's lock, or fails when ctx ends first.
func (l *keyLocks) lock(ctx context.Context, key string) (unlock func(), err error) {
	s := l.stripe(key)
	select {
	case s <- struct{}{}:
		return func() { <-s }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// tryLock takes key's lock if it is free.
func (l *keyLocks) tryLock(key string) (unlock func(), ok bool) {
	s := l.stripe(key)
	select {
	case s <- struct{}{}:
		return func() { <-s }, true
	default:
		return nil, false
	}
}
