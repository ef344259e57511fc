// Command sextant is the Sextant server: a service registry that speaks the
// Nacos 2.x naming protocol.
//
//	sextant server [--config FILE] [--port N] [--data-dir DIR] [--log-level LEVEL] [--log-json]
//	sextant version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/sextantd/sextant/core/config"
	"github.com/sextantd/sextant/core/pluginhost"
	"github.com/sextantd/sextant/core/server"
	"github.com/sextantd/sextant/plugins/addressserver"
	"github.com/sextantd/sextant/plugins/clusterfile"
	"github.com/sextantd/sextant/plugins/grpctransport"
	"github.com/sextantd/sextant/plugins/pushrpc"
	"github.com/sextantd/sextant/plugins/standalone"
	"github.com/sextantd/sextant/plugins/static"
	"github.com/sextantd/sextant/sdk/membership"
	sdkpush "github.com/sextantd/sextant/sdk/push"
	"github.com/sextantd/sextant/sdk/transport"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// builtins are the plugins this binary carries, by kind and name.
var builtins = pluginhost.Builtins{
	Push: map[string]sdkpush.Plugin{pushrpc.Plugin.Name: pushrpc.Plugin},
	Membership: map[string]membership.Plugin{
		standalone.Plugin.Name:    standalone.Plugin,
		static.Plugin.Name:        static.Plugin,
		clusterfile.Plugin.Name:   clusterfile.Plugin,
		addressserver.Plugin.Name: addressserver.Plugin,
	},
	Transport: map[string]transport.Plugin{grpctransport.Plugin.Name: grpctransport.Plugin},
}

const usage = `usage:
  sextant server [--config FILE] [--port N] [--data-dir DIR] [--members H:P,H:P] [--log-level LEVEL] [--log-json]
  sextant plugin NAME    (run a built-in plugin; the server does this itself)
  sextant version
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes a command line and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "server":
		return serve(args[1:], stderr)
	case "plugin":
		return servePlugin(args[1:], stderr)
	case "version":
		fmt.Fprintf(stdout, "sextant %s %s %s/%s\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "sextant: unknown command %q\n%s", args[0], usage)
		return 2
	}
}

// serverFlags maps each flag of "sextant server" to its configuration key.
var serverFlags = map[string]string{
	"port":      "port",
	"data-dir":  "data_dir",
	"members":   "cluster.members",
	"log-level": "log.level",
	"log-json":  "log.json",
}

func serve(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("sextant server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (.hcl, .yaml or .yml)")
	fs.Int("port", 0, "HTTP port; client gRPC listens on this +1000 (default 8848)")
	fs.String("data-dir", "", "directory for persistent state (default data)")
	fs.String("members", "", "the cluster's members, comma-separated HTTP addresses host:port (this node's included)")
	fs.String("log-level", "", "trace, debug, info, warn or error (default info)")
	fs.Bool("log-json", false, "log JSON lines")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sextant server: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	flags := map[string]any{}
	fs.Visit(func(f *flag.Flag) {
		if key, ok := serverFlags[f.Name]; ok {
			flags[key] = f.Value.(flag.Getter).Get()
		}
	})
	cfg, err := config.Load(*path, os.Environ(), flags)
	if err != nil {
		fmt.Fprintf(stderr, "sextant: configuration: %v\n", err)
		return 2
	}

	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "sextant",
		Level:      hclog.LevelFromString(cfg.Log.Level),
		JSONFormat: cfg.Log.JSON,
		Output:     stderr,
	})
	executable, err := os.Executable()
	if err != nil {
		logger.Error("cannot find this binary to run built-in plugins", "error", err)
		return 1
	}
	srv, err := server.New(cfg, server.Options{Logger: logger, Version: version, Builtins: builtins, Executable: executable})
	if err != nil {
		logger.Error("cannot build the server", "error", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger.Info("starting", "version", version)
	logger.Debug("effective configuration", "config", fmt.Sprintf("%+v", cfg))
	if err := srv.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		logger.Error("server failed", "error", err)
		return 1
	}
	logger.Info("stopped")
	return 0
}

// servePlugin runs a built-in plugin process for a server that started it.
func servePlugin(args []string, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	name := args[0]
	if p, ok := builtins.Push[name]; ok {
		sdkpush.Serve(p) // exits the process
	}
	if p, ok := builtins.Membership[name]; ok {
		membership.Serve(p)
	}
	if p, ok := builtins.Transport[name]; ok {
		transport.Serve(p)
	}
	fmt.Fprintf(stderr, "sextant plugin: no built-in plugin is called %q\n", name)
	return 2
}
