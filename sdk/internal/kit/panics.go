package kit

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
)

// Panics records the panics of an in-process plugin, which the kit's guards
// recover so that they do not crash the test process that serves it.
type Panics struct {
	mu    sync.Mutex
	n     int
	first string // the first one's value and stack
}

// Add records the panic v; call it from the deferred function that
// recovered it.
func (p *Panics) Add(v any) {
	stack := panicStack(2)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n++; p.n == 1 {
		p.first = fmt.Sprintf("%v\n%s", v, stack)
	}
}

// Count returns how many panics there were since the last Take.
func (p *Panics) Count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// Take returns how many panics there were since the last Take, and the
// first one's value and stack.
func (p *Panics) Take() (int, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n, first := p.n, p.first
	p.n, p.first = 0, ""
	return n, first
}

// PanicStack returns the stack of a recovered panic, from the frame that
// panicked down to the first of the kit that recovered it; call it from the
// deferred function that recovered the panic.
func PanicStack() string { return panicStack(2) }

// panicStack is PanicStack for the recovering function skip frames up.
func panicStack(skip int) string {
	var kit string // the recovering function's package, as a frame names it
	if pc, _, _, ok := runtime.Caller(skip); ok {
		if f := runtime.FuncForPC(pc); f != nil {
			name := f.Name()
			slash := strings.LastIndexByte(name, '/') + 1
			if dot := strings.IndexByte(name[slash:], '.'); dot >= 0 {
				kit = name[:slash+dot+1]
			}
		}
	}
	lines := strings.Split(string(debug.Stack()), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "panic(") {
			lines = lines[min(i+2, len(lines)):]
			break
		}
	}
	for i, l := range lines {
		if kit != "" && strings.HasPrefix(l, kit) {
			lines = lines[:i]
			break
		}
	}
	return strings.Join(lines, "\n")
}
