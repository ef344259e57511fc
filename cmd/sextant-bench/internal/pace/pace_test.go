package pace

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestDueTimesFollowTheRate(t *testing.T) {
	start := time.Unix(1000, 0)
	p := New(400, start)
	for k := range 5 {
		if got, want := p.Due(), start.Add(time.Duration(k)*2500*time.Microsecond); !got.Equal(want) {
			t.Errorf("operation %d due at %v, want %v", k, got, want)
		}
	}
	if !p.Limited() || New(0, start).Limited() {
		t.Error("Limited is wrong")
	}
}

func TestConcurrentTurnsAreDistinct(t *testing.T) {
	start := time.Unix(0, 0)
	p := New(1000, start)
	var mu sync.Mutex
	seen := map[time.Time]bool{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				d := p.Due()
				mu.Lock()
				seen[d] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != 800 {
		t.Errorf("%d distinct due times for 800 turns", len(seen))
	}
}

func TestWaitLimitsTheRate(t *testing.T) {
	const rate, n = 200, 20
	start := time.Now()
	p := New(rate, start)
	for range n {
		if _, err := p.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	// The last of n operations is due (n-1)/rate after the first.
	if min := time.Duration(n-1) * time.Second / rate; time.Since(start) < min {
		t.Errorf("%d operations at %d/s took %v, less than %v", n, rate, time.Since(start), min)
	}
}

func TestWaitWithoutRateReturnsAtOnce(t *testing.T) {
	p := New(0, time.Now())
	before := time.Now()
	due, err := p.Wait(context.Background())
	if err != nil || due.Before(before) || time.Since(due) > time.Second {
		t.Errorf("Wait = %v, %v", due, err)
	}
}

func TestWaitStopsAtTheDeadlineAndOnCancel(t *testing.T) {
	// Due after the deadline: fails at once instead of sleeping.
	p := New(1, time.Now().Add(time.Hour))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := p.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait past the deadline: %v", err)
	}
	// Cancelled while waiting.
	p = New(1, time.Now().Add(time.Hour))
	ctx, cancel = context.WithCancel(context.Background())
	go cancel()
	if _, err := p.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait cancelled: %v", err)
	}
	if _, err := p.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait on a cancelled context: %v", err)
	}
}
