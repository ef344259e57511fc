package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	httppprof "net/http/pprof"
	"strconv"
	"time"

	"github.com/sextantd/sextant/cmd/sextant-bench/internal/fakenacos"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/target"
	"github.com/sextantd/sextant/core/config"
)

// ceilingVersion is what the ceiling reports as its version.
const ceilingVersion = "ceiling"

// runCeiling runs "serve-ceiling [flags]": the Nacos 2.x wire with no logic
// (fakenacos.Ceiling) on Sextant's ports and gRPC transport options, until
// ctx ends. Its HTTP port answers the readiness and version paths of a
// Nacos server.
func runCeiling(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	def := config.Default().Remote
	fs := flag.NewFlagSet("sextant-bench serve-ceiling", flag.ContinueOnError)
	fs.SetOutput(stderr)
	port := fs.Int("port", 8848, "HTTP port; the client gRPC port is this + 1000, as Sextant's")
	bind := fs.String("bind", "127.0.0.1", "address to listen on")
	hosts := fs.Int("hosts", 10, "instances in every query and subscription answer (the query scenario checks their number)")
	maxMessage := fs.Int("max-message-size", def.MaxMessageSize, "largest message accepted, as Sextant's remote.max_message_size")
	pprof := fs.Bool("pprof", false, "serve Go's profiles at /debug/pprof/ on the HTTP port, as Sextant's debug.pprof")
	maxStreams := fs.Int("max-streams", def.MaxStreamsPerConnection, "MAX_CONCURRENT_STREAMS, as Sextant's remote.max_streams_per_connection")
	transport := fs.String("transport", fakenacos.TransportGRPC, "the HTTP/2 server: grpc (grpc-go, Sextant's) or h2 (the purpose-built experiment, h2serve)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || *port < 1 || *port+target.GRPCOffset > 65535 || *hosts < 0 {
		fmt.Fprintln(stderr, "sextant-bench serve-ceiling: give --port P (P+1000 a port too), --hosts N >= 0 and no argument")
		return 2
	}
	c, err := fakenacos.NewCeiling(fakenacos.CeilingOptions{Hosts: *hosts, MaxMessageSize: *maxMessage, MaxStreams: *maxStreams, Transport: *transport})
	if err != nil {
		fmt.Fprintf(stderr, "sextant-bench serve-ceiling: %v\n", err)
		return 1
	}
	grpcAddr := net.JoinHostPort(*bind, strconv.Itoa(*port+target.GRPCOffset))
	httpAddr := net.JoinHostPort(*bind, strconv.Itoa(*port))
	glis, err := net.Listen("tcp", grpcAddr)
	if err != nil {
		fmt.Fprintf(stderr, "sextant-bench serve-ceiling: %v\n", err)
		return 1
	}
	hlis, err := net.Listen("tcp", httpAddr)
	if err != nil {
		glis.Close()
		fmt.Fprintf(stderr, "sextant-bench serve-ceiling: %v\n", err)
		return 1
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/nacos/v1/console/health/readiness", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "OK")
	})
	mux.HandleFunc("/nacos/v1/console/server/state", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"version":%q}`, ceilingVersion)
	})
	if *pprof {
		mux.HandleFunc("/debug/pprof/", httppprof.Index)
		mux.HandleFunc("/debug/pprof/profile", httppprof.Profile)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	errs := make(chan error, 2)
	go func() { errs <- c.Serve(glis) }()
	go func() { errs <- hs.Serve(hlis) }()
	fmt.Fprintf(stdout, "ceiling serving: http %s, grpc %s (%s), %d hosts per query answer (%d bytes)\n", httpAddr, grpcAddr, *transport, *hosts, c.QueryBytes)
	code := 0
	select {
	case <-ctx.Done():
	case err := <-errs:
		fmt.Fprintf(stderr, "sextant-bench serve-ceiling: %v\n", err)
		code = 1
	}
	c.Stop()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(stderr, "sextant-bench serve-ceiling: %v\n", err)
	}
	return code
}
