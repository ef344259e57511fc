package scenario

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/sextantd/sextant/cmd/sextant-bench/internal/httpwire"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/report"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/stats"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/wire"
)

// BeatsOptions shape the beats scenario.
type BeatsOptions struct {
	Clients  int           // simulated 1.x clients, each with one instance that it keeps alive
	Services int           // services the instances are spread over
	Interval time.Duration // each client's beat interval (the SDKs': 5 s)
	// FullBeats sends the beat JSON with every beat, as nacos-sdk-go v1
	// does; without it the body goes only until the server answers
	// lightBeatEnabled, as the Java SDK (1.4) does: light beats.
	FullBeats bool
}

// Validate checks the options.
func (o BeatsOptions) Validate() error {
	switch {
	case o.Clients < 1:
		return fmt.Errorf("--clients must be at least 1, got %d", o.Clients)
	case o.Services < 1:
		return fmt.Errorf("--services must be at least 1, got %d", o.Services)
	case o.Interval <= 0:
		return fmt.Errorf("--interval must be positive, got %s", o.Interval)
	}
	return nil
}

// Nacos's beat answer codes.
const (
	beatOK       = 10200
	beatNotFound = 20404
)

// beatCodeError is a beat answered with a code other than 10200.
type beatCodeError struct{ code int }

func (e *beatCodeError) Error() string { return "beat answered code " + strconv.Itoa(e.code) }

// Kind names the error for counting in results.
func (e *beatCodeError) Kind() string { return "answered " + strconv.Itoa(e.code) }

// Beats measures the beats of 1.x clients (PUT /nacos/v1/ns/instance/beat)
// as the server sees them from many SDKs: each of N clients registers one
// instance (POST /nacos/v1/ns/instance), then beats for it every Interval,
// on an open-loop schedule at N / Interval beats per second spread evenly
// over the interval; they share Concurrency keep-alive connections per
// target. A beat answered 20404 (the server lost the instance) makes its
// client register again, as the SDK does. The first interval registers
// every client, the second sends each client's first beat (with the beat
// JSON; the server's answer enables light beats); both are warm-up, so the
// measured phase (after Warmup more) is the steady state. Latency counts
// from each beat's due time. At the end every service is listed
// (healthyOnly) to check it holds every client whose last beat was
// answered 10200, healthy; then the instances are deregistered.
//
// The rate is the clients' (N / Interval): raise N until the server falls
// behind (beats/s below the offered rate, latency growing) to find the
// highest rate it sustains.
func Beats(c *Common, o BeatsOptions, tool string) *report.Result {
	cc := *c
	cc.Rate = float64(o.Clients) / o.Interval.Seconds()
	cc.Warmup = c.Warmup + 2*o.Interval
	r := newRun(&cc, "beats", tool)
	r.param("clients", o.Clients)
	r.param("services", o.Services)
	r.param("interval", o.Interval)
	r.param("full_beats", o.FullBeats)
	if c.Rate != 0 {
		r.note("--rate %g was replaced by the clients' rate, --clients / --interval", c.Rate)
	}
	setupEnd := time.Now().Add(c.SetupTimeout)
	r.versions(context.Background())

	connect := r.newSeries("connect")
	register := r.newSeries("register")
	beat := r.newSeries("beat")
	reregister := r.newSeries("re-register")
	clients := r.dialHTTP(setupEnd, connect)
	defer closeHTTP(clients)

	n := o.Clients
	beats := make([]string, n) // each client's beat path and query
	for i := range n {
		beats[i] = beatPath + "?" + string(beatQuery(r.service(i%o.Services), instanceIP(i)))
	}
	light := make([]atomic.Bool, n)   // the server enabled its light beats
	status := make([]atomic.Int32, n) // of its last operation: 0 none, 1 answered 10200 (or registered), 2 other
	var full, lightSent atomic.Int64  // measured beats with and without the JSON
	if ok, _ := connect.Counts(); ok > 0 {
		r.drive(beat, c.Count, func(ctx context.Context, k int64) error {
			i := int(k % int64(n))
			svc, ip, client := r.service(i%o.Services), instanceIP(i), clients[i%len(clients)]
			if k < int64(n) { // the first interval: the registrations
				start := time.Now()
				err := registerHTTP(ctx, client, svc, ip, portBase, 1)
				record(register, start, err, &status[i])
				return err
			}
			var form []byte
			if o.FullBeats || !light[i].Load() {
				form = httpwire.AppendParam(make([]byte, 0, 320), "beat", beatJSON(svc, ip, o.Interval))
			}
			if !warmingUp(ctx) {
				if form != nil {
					full.Add(1)
				} else {
					lightSent.Add(1)
				}
			}
			body, err := client.Do(ctx, httpwire.Request{Method: "PUT", Path: beats[i], Form: form})
			if err != nil {
				status[i].Store(2)
				return err
			}
			code, lightOn, err := parseBeatAnswer(body)
			if err != nil {
				status[i].Store(2)
				return err
			}
			light[i].Store(lightOn)
			switch code {
			case beatOK:
				status[i].Store(1)
				return nil
			case beatNotFound:
				start := time.Now()
				err := registerHTTP(ctx, client, svc, ip, portBase, 1)
				record(reregister, start, err, &status[i])
			default:
				status[i].Store(2)
			}
			return &beatCodeError{code}
		})
	} else {
		r.note("no HTTP connection could be opened; nothing was measured")
	}
	r.sampleAfter()

	offered := cc.Rate
	r.figure("offered beats/s", offered, "/s")
	ok, failed := beat.Counts()
	if measured := r.measured.Seconds(); measured > 0 {
		r.figure("beats answered 10200 / offered", float64(ok)/measured/offered*100, "%")
	}
	if ok+failed > 0 {
		r.figure("beats answered 10200", float64(ok)/float64(ok+failed)*100, "%")
	}
	if sent := full.Load() + lightSent.Load(); sent > 0 {
		r.figure("light beats (without the beat JSON)", float64(lightSent.Load())/float64(sent)*100, "%")
	}

	want := make([]map[string]bool, o.Services)
	uncertain := map[string]bool{}
	for i := range want {
		want[i] = make(map[string]bool)
	}
	var alive int
	for i := range n {
		switch status[i].Load() {
		case 1:
			want[i%o.Services][hostKey(instanceIP(i), portBase)] = true
			alive++
		case 2:
			uncertain[hostKey(instanceIP(i), portBase)] = true
		}
	}
	r.figure("instances kept alive", float64(alive), "instances")
	if alive > 0 {
		r.checkServices("every client whose last beat was answered 10200 is listed healthy", want, addrKey, func(ctx context.Context, s int) ([]wire.Instance, error) {
			hosts, err := listHTTP(ctx, clients[s%len(clients)], r.service(s), true)
			// A client whose last beat failed may or may not be there.
			certain := hosts[:0]
			for _, h := range hosts {
				if !uncertain[addrKey(h)] {
					certain = append(certain, h)
				}
			}
			return certain, err
		})
	}
	r.deregisterAll(clients, r.newSeries("deregister"), n, func(i int) (wire.Service, string, bool) {
		return r.service(i % o.Services), instanceIP(i), status[i].Load() != 0
	}, func(i int) int { return i })
	return r.finish("beat", true)
}

// record records in series a registration that started at start, and its
// outcome in status (1: registered, 2: failed).
func record(series *stats.Series, start time.Time, err error, status *atomic.Int32) {
	if err != nil {
		series.Fail(kind(err))
		status.Store(2)
		return
	}
	series.OK(time.Since(start))
	status.Store(1)
}

// beatQuery is the query of a client's beat, as the Java SDK sends it
// (NamingProxy.sendBeat): the service, cluster and address.
func beatQuery(svc wire.Service, ip string) []byte {
	q := serviceParams(make([]byte, 0, 160), svc)
	q = httpwire.AppendParam(q, "clusterName", "DEFAULT")
	q = httpwire.AppendParam(q, "ip", ip)
	return httpwire.AppendParam(q, "port", strconv.Itoa(portBase))
}

// beatJSON is the beat parameter: the SDK's BeatInfo as JSON.
func beatJSON(svc wire.Service, ip string, interval time.Duration) string {
	return `{"cluster":"DEFAULT","ip":"` + ip + `","metadata":{},"period":` + strconv.FormatInt(interval.Milliseconds(), 10) +
		`,"port":` + strconv.Itoa(portBase) + `,"scheduled":false,"serviceName":"` + groupedName(svc) +
		`","stopped":false,"weight":1.0}`
}

// parseBeatAnswer reads the code and lightBeatEnabled of a beat's answer,
// {"clientBeatInterval":5000,"code":10200,"lightBeatEnabled":true}, without
// decoding the whole.
func parseBeatAnswer(body []byte) (code int, light bool, err error) {
	i := bytes.Index(body, []byte(`"code":`))
	if i < 0 {
		return 0, false, &wire.ProtocolError{Reason: fmt.Sprintf("beat answered %.100q, without a code", body)}
	}
	rest := body[i+len(`"code":`):]
	j := 0
	for j < len(rest) && '0' <= rest[j] && rest[j] <= '9' {
		code = code*10 + int(rest[j]-'0')
		j++
	}
	if j == 0 || j > 9 {
		return 0, false, &wire.ProtocolError{Reason: fmt.Sprintf("beat answered %.100q, without a code", body)}
	}
	return code, bytes.Contains(body, []byte(`"lightBeatEnabled":true`)), nil
}
