package console_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nacos-group/nacos-sdk-go/v2/clients/naming_client"
	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/sextantd/sextant/cmd/internal/nacostest"
	"github.com/sextantd/sextant/cmd/internal/rawnacos"
	"github.com/sextantd/sextant/cmd/internal/servertest"
)

// The registrations the console is shown: a few services of the default
// group, and batchServices more in the group "batch", for search and paging.
const (
	batchGroup    = "batch"
	batchServices = 10000
	batchClients  = 10 // a client may publish in 1,000 services (naming.max_services_per_client)
)

// hostile is metadata that would run script if the page put it in as markup.
const hostile = `<img src=x onerror="document.title='pwned'"><script>document.title='pwned'</script>`

// docsScreenshot, when set to 1, makes TestConsole write the README's
// screenshot, docs/console.png.
const docsScreenshot = "SEXTANT_UPDATE_DOCS_SCREENSHOT"

// TestConsole registers services with the Nacos SDK and drives every page
// of the console in chromium: the services with their counts, search and
// paging on the server, a service's instances and subscribers, an edit of
// a weight that a gRPC subscriber is pushed, live updates without a reload,
// a client, the clients, namespaces, members and plugins. It saves a
// screenshot of each page.
func TestConsole(t *testing.T) {
	t.Parallel()
	srv := servertest.Start(t, servertest.Options{Env: []string{"SEXTANT_PUSH_DELAY=20ms"}})
	shots := artifacts(t)

	// A connection holds one instance per service: each instance of orders
	// has a client of its own, as each process of an application would.
	register := func(client naming_client.INamingClient, service, ip string, port int, md map[string]string) {
		t.Helper()
		nacostest.Register(t, client, vo.RegisterInstanceParam{ServiceName: service, Ip: ip, Port: uint64(port), Metadata: md})
	}
	app := nacostest.NewClient(t, srv, "")
	register(app, "orders", "10.0.0.1", 8080, map[string]string{"version": "1.4.2", "zone": "eu-1"})
	register(app, "payments", "10.0.1.1", 9090, map[string]string{"version": "2.0.0"})
	register(app, "inventory", "10.0.2.1", 7070, nil)
	register(app, "catalog", "10.0.3.1", 6060, map[string]string{"note": hostile})
	register(nacostest.NewClient(t, srv, ""), "orders", "10.0.0.2", 8080, map[string]string{"version": "1.4.2", "zone": "eu-2"})
	registerBatch(t, srv)

	watcher := nacostest.Subscribe(t, nacostest.NewClient(t, srv, ""), vo.SubscribeParam{ServiceName: "orders"})
	watcher.AwaitCount(t, 2)

	b := newBrowser(t)
	total := batchServices + 4
	b.do("opening the console", chromedp.Navigate("http://"+srv.HTTPAddr()+"/"))
	b.await("the services and their count", pagerShows("services-pager", 1, (total+19)/20, total, "services"))
	rows := b.awaitRows("services", "the first page of services with their subscribers",
		`rows.length === 20 && rows.some(r => r[0] === 'orders' && r[5] === '1')`)
	want := []string{"catalog", "inventory", "orders", "payments", "job-0000"} // by group, then name
	for i, name := range want {
		if cell(rows[i], 0) != name {
			t.Fatalf("services page 1: %s, want %v first", firstCells(rows), want)
		}
	}
	b.screenshot(shots, "services")

	// Search runs on the server: one service matches.
	b.do("searching", chromedp.SendKeys(chromedp.CSS("#services-search"), "ORD"))
	rows = b.awaitRows("services", "the search's one match", `rows.length === 1 && rows[0][0] === 'orders'`)
	if r := rows[0]; cell(r, 1) != "DEFAULT_GROUP" || cell(r, 2) != "1" || cell(r, 3) != "2" || cell(r, 4) != "2" || cell(r, 5) != "1" {
		t.Errorf("orders: %q, want DEFAULT_GROUP, 1 cluster, 2 instances, 2 healthy, 1 subscriber", r)
	}

	// Paging runs on the server: the batch group's second page.
	b.clear("services-search")
	b.do("filtering by group", chromedp.SendKeys(chromedp.CSS("#services-group"), batchGroup))
	b.await("the batch group's pages", pagerShows("services-pager", 1, batchServices/20, batchServices, "services"))
	b.do("next page", chromedp.Click(chromedp.CSS("#services-pager-next")))
	b.awaitRows("services", "page 2", `rows.length === 20 && rows[0][0] === 'job-0020' && rows[19][0] === 'job-0039'`)
	if loc := eval[string](b, `location.hash`); loc != "#/services?group=batch&page=2&size=20" {
		t.Errorf("the page's URL does not say where it is: %s", loc)
	}
	b.do("100 per page", chromedp.SetValue(chromedp.CSS("#services-size"), "100"))
	eval[bool](b, `document.getElementById('services-size').dispatchEvent(new Event('change'))`)
	b.awaitRows("services", "100 per page", `rows.length === 100 && rows[0][0] === 'job-0000'`)

	// A service's instances, with their clients and owner node.
	b.clear("services-group")
	b.do("searching orders", chromedp.SendKeys(chromedp.CSS("#services-search"), "orders"))
	b.awaitRows("services", "orders alone", `rows.length === 1 && rows[0][0] === 'orders'`)
	b.click("opening orders", "#services tbody a")
	rows = b.awaitRows("instances", "the instances of orders", `rows.length === 2 && rows[0][8] !== '–'`)
	if r := rows[0]; cell(r, 0) != "10.0.0.1:8080" || cell(r, 1) != "DEFAULT" || cell(r, 2) != "1" || cell(r, 3) != "yes" ||
		cell(r, 4) != "yes" || cell(r, 5) != "yes" || cell(r, 6) != "version=1.4.2zone=eu-1" || cell(r, 7) == "–" {
		t.Errorf("instance 10.0.0.1:8080: %q", r)
	}
	client := cell(rows[0], 7)
	subs := b.awaitRows("subscribers", "the subscriber of orders", `rows.length === 1`)
	if cell(subs[0], 1) != "connection" || cell(subs[0], 0) == client {
		t.Errorf("subscriber: %q", subs[0])
	}
	png := b.screenshot(shots, "service")
	if os.Getenv(docsScreenshot) == "1" {
		if err := os.WriteFile(filepath.Join("..", "..", "..", "..", "docs", "console.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// An edit of the weight, in the page; the gRPC subscriber is pushed it.
	b.click("editing 10.0.0.1:8080", `button.edit[data-address="10.0.0.1:8080"]`)
	b.do("the edit form", chromedp.WaitVisible(chromedp.CSS("#edit-weight")))
	b.screenshot(shots, "edit")
	b.do("saving a weight of 7", chromedp.SetValue(chromedp.CSS("#edit-weight"), "7"), chromedp.Click(chromedp.CSS("#edit-save")),
		chromedp.WaitNotVisible(chromedp.CSS("#edit")))
	b.awaitRows("instances", "the new weight", `rows[0][0] === '10.0.0.1:8080' && rows[0][2] === '7'`)
	watcher.Await(t, "weight 7 on 10.0.0.1:8080", func(is []model.Instance) bool {
		for _, in := range is {
			if in.Ip == "10.0.0.1" && in.Weight == 7 && in.Metadata["zone"] == "eu-1" {
				return true
			}
		}
		return false
	})

	// Live: an instance registered meanwhile shows without a reload.
	register(nacostest.NewClient(t, srv, ""), "orders", "10.0.0.3", 8080, nil)
	b.awaitRows("instances", "the new instance", `rows.length === 3 && rows[2][0] === '10.0.0.3:8080'`)

	// What the API holds is text, never markup.
	b.do("opening catalog", chromedp.Navigate("http://"+srv.HTTPAddr()+"/console/#/service?name=catalog"))
	rows = b.awaitRows("instances", "catalog's instance", `rows.length === 1`)
	if cell(rows[0], 6) != "note="+hostile {
		t.Errorf("hostile metadata shown as %q", cell(rows[0], 6))
	}
	if n := eval[int](b, `document.querySelectorAll('main img, main script').length`); n != 0 {
		t.Errorf("metadata became %d elements", n)
	}
	if title := eval[string](b, `document.title`); title != "Sextant console" {
		t.Errorf("metadata ran script: the title is %q", title)
	}

	// The client that owns the instances, and what it publishes.
	b.click("opening the client", `#instances tbody td a`)
	b.awaitRows("client-published", "what the client publishes", `rows.length === 4`)
	b.await("the client's details", `document.getElementById('client-details').textContent.includes('connection')`)
	b.screenshot(shots, "client")

	// The other pages, through the navigation bar.
	for _, p := range []struct{ page, table, what, predicate string }{
		{"clients", "clients", "every client", `rows.length === 4 + ` + strconv.Itoa(batchClients) + ` && rows.every(r => r[1] === 'connection' && r[5] !== '–')`},
		{"namespaces", "namespaces", "the public namespace", `rows.length >= 1 && rows[0][0] === 'public' && rows[0][3] === '` + thousands(total) + `'`},
		{"members", "members", "this node, up", `rows.length === 1 && rows[0][1] === 'UP' && rows[0][2] === 'this node'`},
		{"plugins", "plugins", "the plugins, serving", `rows.length >= 1 && rows.every(r => r[3] === 'serving' && /^[0-9]+$/.test(r[4]) && r[5] === '0')`},
	} {
		b.do("opening "+p.page, chromedp.Click(chromedp.CSS(`#nav a[data-page="`+p.page+`"]`)))
		b.awaitRows(p.table, p.what, p.predicate)
		b.screenshot(shots, p.page)
	}
}

// registerBatch registers batchServices services, job-0000 and on, in the
// group batch, from batchClients connections at once. They speak the wire
// by hand (rawnacos): under a loaded test run, the Go SDK turns a slow
// answer into a reconnection that races with its own requests (a data race
// inside the SDK), and these 10,000 registrations are only the setting.
func registerBatch(t *testing.T, srv *servertest.Server) {
	t.Helper()
	const timeout = 30 * time.Second
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(srv.GRPCPort))
	var wg sync.WaitGroup
	errs := make(chan error, batchClients)
	start := time.Now()
	for c := range batchClients {
		conn, err := rawnacos.Dial(addr, rawnacos.Options{ClientVersion: "sextant-console-e2e", RequestIDPrefix: "console-", SetupTimeout: timeout})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(conn.Close)
		wg.Go(func() {
			for i := c; i < batchServices; i += batchClients {
				svc := fmt.Sprintf("job-%04d", i)
				a, err := conn.Call(timeout, "InstanceRequest", map[string]any{"type": "registerInstance",
					"namespace": "public", "groupName": batchGroup, "serviceName": svc,
					"instance": map[string]any{"ip": "10.1.0.1", "port": 20000 + i, "weight": 1.0, "healthy": true,
						"enabled": true, "ephemeral": true, "clusterName": "DEFAULT"}})
				if err != nil || a.ResultCode != 200 {
					errs <- fmt.Errorf("registering %s: %v %v", svc, a, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("registered %d services in %v", batchServices, time.Since(start))
}

// pagerShows is a JavaScript condition: a pager says it is on page of
// pages, of total items.
func pagerShows(pager string, page, pages, total int, what string) string {
	return fmt.Sprintf(`(document.getElementById('%s-info') || {}).textContent === 'Page %s of %s · %s %s'`,
		pager, thousands(page), thousands(pages), thousands(total), what)
}

// thousands writes n as the page does, with commas between thousands.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
