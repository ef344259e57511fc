package remote

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/remote/serveropts"
)

func TestCheckLabels(t *testing.T) {
	many := map[string]string{}
	for i := range maxLabels + 6 {
		many[fmt.Sprintf("k%03d", i)] = "v"
	}
	firstKeys := map[string]string{}
	for i := range maxLabels {
		firstKeys[fmt.Sprintf("k%03d", i)] = "v"
	}
	long := strings.Repeat("x", maxLabelKeyBytes)
	longValue := strings.Repeat("v", maxLabelValueBytes)
	tests := []struct {
		name    string
		in      map[string]string
		want    map[string]string
		dropped int
		why     string
	}{
		{"none", nil, nil, 0, ""},
		{"a Nacos client's", map[string]string{"source": "sdk", "module": "naming", "AppName": "shop"},
			map[string]string{"source": "sdk", "module": "naming", "AppName": "shop"}, 0, ""},
		{"at the bounds", map[string]string{long: longValue, "empty": "", "ünïcode": "välue"},
			map[string]string{long: longValue, "empty": "", "ünïcode": "välue"}, 0, ""},
		{"too many: the smallest keys are kept", many, firstKeys, 6, "more than 64 labels"},
		{"long key", map[string]string{long + "x": "v", "ok": "v"}, map[string]string{"ok": "v"}, 1, "longer than 256 bytes"},
		{"long value", map[string]string{"big": longValue + "v", "ok": "v"}, map[string]string{"ok": "v"}, 1, "longer than 1024 bytes"},
		{"empty key", map[string]string{"": "v", "ok": "v"}, map[string]string{"ok": "v"}, 1, "empty key"},
		{"control character in a key", map[string]string{"a\x1b[31m": "v", "ok": "v"}, map[string]string{"ok": "v"}, 1, "control character"},
		{"newline in a value", map[string]string{"a": "x\ny", "ok": "v"}, map[string]string{"ok": "v"}, 1, "control character"},
		{"not UTF-8", map[string]string{"a": "\xff", "ok": "v"}, map[string]string{"ok": "v"}, 1, "not valid UTF-8"},
		{"C1 control", map[string]string{"a": "\u0085", "ok": "v"}, map[string]string{"ok": "v"}, 1, "control character"},
		{"all bad", map[string]string{"": "v"}, nil, 1, "empty key"},
	}
	for _, tc := range tests {
		got, dropped, why := checkLabels(tc.in)
		if !maps.Equal(got, tc.want) || dropped != tc.dropped || !strings.Contains(why, tc.why) || (tc.why == "") != (why == "") {
			t.Errorf("%s: got %d labels, %d dropped (%q); want %d, %d dropped (%q)", tc.name, len(got), dropped, why, len(tc.want), tc.dropped, tc.why)
		}
	}
}

// TestSetupDropsBadLabels sets up a connection with labels over every bound:
// the connection is set up and works, its client keeps the good labels (a
// subscription carries them), and the 4 dropped ones are counted.
func TestSetupDropsBadLabels(t *testing.T) {
	s, reg := newLimitServer(t, nil)
	labels := map[string]string{"source": "sdk", "module": "naming", "bad": "\x00", strings.Repeat("k", maxLabelKeyBytes+1): "v"}
	for i := range maxLabels {
		labels[fmt.Sprintf("z%03d", i)] = "v" // sorted after the others: 2 of them go
	}
	body, err := json.Marshal(map[string]any{"clientVersion": "test", "labels": labels})
	if err != nil {
		t.Fatal(err)
	}
	c := newConn("c1", "", time.Now(), func(serveropts.Message) error { return nil }, func(error) {})
	t.Cleanup(c.close)
	if err := s.register(c, body); err != nil {
		t.Fatalf("setup with bad labels was refused: %v", err)
	}
	if typ, resp := serve(s, "c1", "SubscribeServiceRequest", `{"requestId":"1","serviceName":"s","subscribe":true}`); typ != "SubscribeServiceResponse" {
		t.Fatalf("subscribe: %s %v", typ, resp)
	}
	subs := s.registry.Subscribers(naming.Service{Namespace: naming.DefaultNamespace, Group: naming.DefaultGroup, Name: "s"}, nil)
	if len(subs) != 1 {
		t.Fatalf("%d subscribers, want 1", len(subs))
	}
	kept := subs[0].Labels
	if len(kept) != maxLabels || kept["source"] != "sdk" || kept["module"] != "naming" {
		t.Errorf("the client kept %d labels (source %q, module %q), want %d with source and module", len(kept), kept["source"], kept["module"], maxLabels)
	}
	for k, v := range kept {
		if len(k) > maxLabelKeyBytes || naming.TextProblem(k) != "" || naming.TextProblem(v) != "" {
			t.Errorf("kept a bad label %q=%q", k, v)
		}
	}
	if got := metricValue(t, reg, "sextant_remote_labels_dropped_total"); got != 4 {
		t.Errorf("sextant_remote_labels_dropped_total = %v, want 4", got)
	}

	// Good labels are kept as they are, and not counted.
	c2 := newConn("c2", "", time.Now(), func(serveropts.Message) error { return nil }, func(error) {})
	t.Cleanup(c2.close)
	if err := s.register(c2, []byte(`{"labels":{"source":"sdk"}}`)); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, reg, "sextant_remote_labels_dropped_total"); got != 4 {
		t.Errorf("sextant_remote_labels_dropped_total = %v after good labels, want 4", got)
	}
}

// warnHook is a logger that calls hook with every warning's message.
type warnHook struct {
	hclog.Logger
	hook func(msg string)
}

func (w warnHook) Warn(msg string, args ...any) { w.hook(msg) }

// TestSetupCreatesTheClientBeforeTheConnectionIsFound serves a client's
// requests while its setup is under way (from the warning about its labels,
// which the setup logs): a client told its connection is set up (a
// HealthCheckRequest answered 200, what clients poll for after their setup)
// must find its client when it registers next, not be answered 301, "not
// connected"; once the setup is done, both succeed.
func TestSetupCreatesTheClientBeforeTheConnectionIsFound(t *testing.T) {
	const register = `{"requestId":"2","serviceName":"s","type":"registerInstance","instance":{"ip":"10.0.0.1","port":80,"weight":1,"enabled":true,"ephemeral":true}}`
	var s *Server
	var during []string
	attempt := func() []string {
		_, health := serve(s, "c1", "HealthCheckRequest", `{"requestId":"1"}`)
		_, reg := serve(s, "c1", "InstanceRequest", register)
		return []string{fmt.Sprint(health["resultCode"], "/", health["errorCode"]), fmt.Sprint(reg["resultCode"], "/", reg["errorCode"])}
	}
	s, _ = newLimitServer(t, func(cfg *Config) {
		cfg.Logger = warnHook{Logger: hclog.NewNullLogger(), hook: func(msg string) {
			if strings.Contains(msg, "dropping connection labels") {
				during = attempt()
			}
		}}
	})
	c := newConn("c1", "", time.Now(), func(serveropts.Message) error { return nil }, func(error) {})
	t.Cleanup(c.close)
	if err := s.register(c, []byte(`{"clientVersion":"test","labels":{"":"an empty key is dropped, and warned about"}}`)); err != nil {
		t.Fatal(err)
	}
	if during == nil {
		t.Fatal("the setup did not warn about the dropped label: the test served nothing during it")
	}
	if ok := "200/0"; during[0] == ok && during[1] != ok {
		t.Errorf("during the setup, a HealthCheckRequest was answered %s and the registration that followed %s: the connection was found before its client", during[0], during[1])
	}
	if after := attempt(); after[0] != "200/0" || after[1] != "200/0" {
		t.Errorf("after the setup, a HealthCheckRequest was answered %s and a registration %s; want 200/0 for both", after[0], after[1])
	}
}

func TestHTTPConnectionsFor(t *testing.T) {
	for _, tc := range []struct {
		nofile         uint64
		maxConnections int
		want           int
	}{
		{1 << 20, 0, 128},     // the client port takes all but 256
		{400, 0, 100},         // it takes half: 200
		{400, 100, 150},       // configured lower
		{400, 1000, 16},       // configured above the limit: the minimum
		{10, 0, 16},           // the minimum
		{1 << 63, 0, 1 << 30}, // no real limit
		{1 << 20, 1 << 10, 1<<19 - 1<<9},
	} {
		if got := httpConnectionsFor(tc.nofile, tc.maxConnections); got != tc.want {
			t.Errorf("httpConnectionsFor(%d, %d) = %d, want %d", tc.nofile, tc.maxConnections, got, tc.want)
		}
	}
	if got := DefaultHTTPConnections(0); got < minMaxConnections {
		t.Errorf("DefaultHTTPConnections(0) = %d", got)
	}
}
