package push

import (
	"fmt"
	"testing"
)

// BenchmarkExecute measures one push of a service to 1,000 subscribers, from
// its execute task to the executor's results counted: reading the
// subscribers, sorting them into a batch, reading the view, and the delivery
// with its bookkeeping (the executor answers at once).
func BenchmarkExecute(b *testing.B) {
	f := start(b, 0, 0)
	f.connect(b, "provider")
	f.register(b, "provider", "10.0.0.1")
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprintf("sub-%d", i)
		f.connect(b, ids[i])
		f.subscribe(b, ids[i], "")
	}
	b.ReportAllocs()
	for b.Loop() {
		f.pusher.execute(svc, task{all: true})
		// Until the subscriptions' own pushes are out, the first ones
		// may be theirs.
		for len(f.exec.next(b).Targets) != len(ids) {
		}
		f.pusher.deliveries.Wait()
	}
}
