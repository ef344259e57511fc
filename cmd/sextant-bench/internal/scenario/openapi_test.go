package scenario

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sextantd/sextant/cmd/sextant-bench/internal/report"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/target"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/wire"
)

// fakeOpenAPI is a Nacos v1 instance API with a registry of its own: enough
// of one for the HTTP scenarios, with faults to inject.
type fakeOpenAPI struct {
	mu       sync.Mutex
	services map[string]map[string]wire.Instance // serviceName → ip:port → instance
	beats    map[string]int                      // ip:port → beats received
	// forgetFirstBeat answers each client's first light beat 20404 and
	// drops its instance, as a server that expired it would.
	forgetFirstBeat bool
	// refuse answers registrations with this status, when set.
	refuse int
}

func startFake(t *testing.T, f *fakeOpenAPI) string {
	t.Helper()
	f.services, f.beats = map[string]map[string]wire.Instance{}, map[string]int{}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func (f *fakeOpenAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	svc, addr := r.Form.Get("serviceName"), r.Form.Get("ip")+":"+r.Form.Get("port")
	if !strings.Contains(svc, "@@") {
		http.Error(w, "serviceName: want group@@name", 400)
		return
	}
	switch r.Method + " " + r.URL.Path {
	case "POST " + instancePath:
		if f.refuse != 0 {
			http.Error(w, "refused", f.refuse)
			return
		}
		port, _ := strconv.Atoi(r.Form.Get("port"))
		weight, _ := strconv.ParseFloat(r.Form.Get("weight"), 64)
		if f.services[svc] == nil {
			f.services[svc] = map[string]wire.Instance{}
		}
		f.services[svc][addr] = wire.Instance{IP: r.Form.Get("ip"), Port: port, Weight: weight, Healthy: true}
		_, _ = w.Write([]byte("ok"))
	case "DELETE " + instancePath:
		delete(f.services[svc], addr)
		_, _ = w.Write([]byte("ok"))
	case "PUT " + beatPath:
		light := r.PostForm.Get("beat") == ""
		f.beats[addr]++
		code := 10200
		if _, ok := f.services[svc][addr]; !ok || light && f.forgetFirstBeat && f.beats[addr] == 2 {
			delete(f.services[svc], addr)
			code = 20404
		}
		_, _ = w.Write([]byte(`{"clientBeatInterval":5000,"code":` + strconv.Itoa(code) + `,"lightBeatEnabled":true}` + "\n"))
	case "GET " + instanceListPath:
		var hosts []wire.Instance
		for _, in := range f.services[svc] {
			hosts = append(hosts, in)
		}
		_ = json.NewEncoder(w).Encode(wire.ServiceInfo{Name: svc, Hosts: hosts})
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeOpenAPI) instances() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, s := range f.services {
		n += len(s)
	}
	return n
}

// commonHTTP returns small options against the HTTP address addr.
func commonHTTP(addr string) *Common {
	c := common("127.0.0.1:1")
	c.Targets = []target.Target{{HTTP: addr, GRPC: "127.0.0.1:1"}}
	c.Timeout = 2 * time.Second
	c.Grace = 2 * time.Second
	return c
}

func TestHTTPRegister(t *testing.T) {
	f := &fakeOpenAPI{}
	c := commonHTTP(startFake(t, f))
	c.Count = 20 // two rounds and a half: the weights change
	res := HTTPRegister(c, HTTPRegisterOptions{Clients: 4, Instances: 2, Services: 3}, "test")
	if reg := res.SeriesNamed("register"); reg == nil || reg.OK != 20 || reg.Rate <= 0 {
		t.Fatalf("register %+v", reg)
	}
	if held, _ := res.FigureNamed("instances held"); held != 8 {
		t.Errorf("%v instances held, want 8", held)
	}
	if len(res.Checks) != 1 || !res.Checks[0].OK || res.Failed() {
		t.Errorf("checks %+v", res.Checks)
	}
	if d := res.SeriesNamed("deregister"); d.OK != 8 || f.instances() != 0 {
		t.Errorf("deregister %+v; %d instances left", d, f.instances())
	}
	if s := res.SeriesNamed("connect"); s.OK != int64(c.Concurrency) {
		t.Errorf("connect %+v", s)
	}
}

// TestHTTPRegisterCheckSeesWrongWeights: the check compares weights too.
func TestHTTPRegisterCheckSeesWrongWeights(t *testing.T) {
	f := &fakeOpenAPI{}
	addr := startFake(t, f)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "GET" {
			f.mu.Lock()
			for _, s := range f.services {
				for k, in := range s {
					in.Weight++
					s[k] = in
				}
			}
			f.mu.Unlock()
		}
		r.URL.Host, r.URL.Scheme = addr, "http"
		f.ServeHTTP(w, r)
	}))
	defer srv.Close()
	res := HTTPRegister(commonHTTP(strings.TrimPrefix(srv.URL, "http://")), HTTPRegisterOptions{Clients: 2, Instances: 1, Services: 1}, "test")
	if len(res.Checks) != 1 || res.Checks[0].OK || !strings.Contains(res.Checks[0].Detail, "weight") {
		t.Errorf("checks %+v, want the weights found wrong", res.Checks)
	}
}

func TestHTTPRegisterRefusalsAreCounted(t *testing.T) {
	c := commonHTTP(startFake(t, &fakeOpenAPI{refuse: 400}))
	res := HTTPRegister(c, HTTPRegisterOptions{Clients: 3, Instances: 2, Services: 2}, "test")
	if reg := res.SeriesNamed("register"); reg.OK != 0 || reg.Errors["HTTP 400"] != 6 {
		t.Errorf("register %+v, want 6 refusals", reg)
	}
	if !res.Failed() {
		t.Error("a run whose every registration was refused did not fail")
	}
}

func TestBeats(t *testing.T) {
	for _, full := range []bool{false, true} {
		f := &fakeOpenAPI{}
		c := commonHTTP(startFake(t, f))
		res := Beats(c, BeatsOptions{Clients: 50, Services: 3, Interval: 100 * time.Millisecond, FullBeats: full}, "test")
		// 500 beats/s for 0.5 s after 0.2 s of warm-up.
		b := res.SeriesNamed("beat")
		if b == nil || b.OK < 200 || b.OK > 260 || len(b.Errors) > 0 {
			t.Errorf("full %v: beat %+v", full, b)
		}
		if reg := res.SeriesNamed("register"); reg.OK != 50 {
			t.Errorf("full %v: register %+v", full, reg)
		}
		light, _ := res.FigureNamed("light beats (without the beat JSON)")
		if full && light != 0 || !full && light != 100 {
			t.Errorf("full %v: %v%% light beats", full, light)
		}
		if share, _ := res.FigureNamed("beats answered 10200"); share != 100 || res.Failed() {
			t.Errorf("full %v: %v%% answered 10200; checks %+v", full, share, res.Checks)
		}
		if offered, _ := res.FigureNamed("offered beats/s"); offered != 500 {
			t.Errorf("offered %v", offered)
		}
		if res.Params.Get("warmup") != 200*time.Millisecond || res.Params.Get("rate") != 500.0 {
			t.Errorf("params %v", res.Params)
		}
		if f.instances() != 0 {
			t.Errorf("full %v: %d instances left after the teardown", full, f.instances())
		}
	}
}

// TestBeatsRegisterAgain: a beat answered 20404 makes its client register
// again, as the SDK does; the beat counts as not answered 10200.
func TestBeatsRegisterAgain(t *testing.T) {
	f := &fakeOpenAPI{forgetFirstBeat: true}
	c := commonHTTP(startFake(t, f))
	// The first light beats are the third interval's: the first measured.
	res := Beats(c, BeatsOptions{Clients: 20, Services: 2, Interval: 100 * time.Millisecond}, "test")
	b := res.SeriesNamed("beat")
	if b.Errors["answered 20404"] != 20 {
		t.Errorf("beat %+v, want each client's first light beat answered 20404", b)
	}
	if re := res.SeriesNamed("re-register"); re.OK != 20 {
		t.Errorf("re-register %+v", re)
	}
	if share, _ := res.FigureNamed("beats answered 10200"); share <= 0 || share >= 100 {
		t.Errorf("%v%% answered 10200", share)
	}
	if len(res.Checks) != 1 || !res.Checks[0].OK {
		t.Errorf("checks %+v: the registered-again instances are not all there", res.Checks)
	}
}

func TestHTTPScenariosAgainstAnUnreachableTarget(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	for name, run := range map[string]func(c *Common) *report.Result{
		"http-register": func(c *Common) *report.Result {
			return HTTPRegister(c, HTTPRegisterOptions{Clients: 2, Instances: 1, Services: 1}, "test")
		},
		"beats": func(c *Common) *report.Result {
			return Beats(c, BeatsOptions{Clients: 2, Services: 1, Interval: 50 * time.Millisecond}, "test")
		},
	} {
		c := commonHTTP(addr)
		start := time.Now()
		res := run(c)
		if took := time.Since(start); took > bound(c)+100*time.Millisecond {
			t.Errorf("%s: took %s", name, took)
		}
		if res.Errors["connect: unreachable"] != int64(c.Concurrency) || !res.Failed() || len(res.Notes) == 0 {
			t.Errorf("%s: errors %v, notes %v; want unreachable connections and a failed run", name, res.Errors, res.Notes)
		}
	}
}
