// Command sextant is the Sextant server: a service registry that speaks the
// Nacos 2.x naming protocol.
//
//	sextant server [--config FILE] [--port N] [--data-dir DIR] [--members H:P,H:P] [--log-level LEVEL] [--log-json]
//	sextant plugin NAME
//	sextant hash-password   (a password on stdin; prints its bcrypt hash)
//	sextant version
//	sextant services|instances|clients|subscribers|members|plugins|deregister ...  (the admin CLI)
//
// "sextant plugin NAME" runs one of the plugins built into the binary (see
// "sextant help" for their names); the server starts these itself.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sextantd/sextant/cmd/sextant/internal/admin"
	"github.com/sextantd/sextant/core/config"
	"github.com/sextantd/sextant/core/pluginhost"
	"github.com/sextantd/sextant/core/server"
	"github.com/sextantd/sextant/plugins/addressserver"
	"github.com/sextantd/sextant/plugins/clusterfile"
	"github.com/sextantd/sextant/plugins/dns"
	"github.com/sextantd/sextant/plugins/gossip"
	"github.com/sextantd/sextant/plugins/grpctransport"
	"github.com/sextantd/sextant/plugins/natstransport"
	"github.com/sextantd/sextant/plugins/pushrpc"
	"github.com/sextantd/sextant/plugins/pushudp"
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
	Push: map[string]sdkpush.Plugin{pushrpc.Plugin.Name: pushrpc.Plugin, pushudp.Plugin.Name: pushudp.Plugin},
	Membership: map[string]membership.Plugin{
		standalone.Plugin.Name:    standalone.Plugin,
		static.Plugin.Name:        static.Plugin,
		clusterfile.Plugin.Name:   clusterfile.Plugin,
		addressserver.Plugin.Name: addressserver.Plugin,
		dns.Plugin.Name:           dns.Plugin,
		gossip.Plugin.Name:        gossip.Plugin,
	},
	Transport: map[string]transport.Plugin{grpctransport.Plugin.Name: grpctransport.Plugin, natstransport.Plugin.Name: natstransport.Plugin},
}

const usageCommands = `usage:
  sextant server [--config FILE] [--port N] [--data-dir DIR] [--members H:P,H:P] [--log-level LEVEL] [--log-json]
  sextant plugin NAME    (run a built-in plugin; the server does this itself)
  sextant hash-password  (reads a password from stdin, prints its bcrypt hash for auth.users)
  sextant version
`

// usage returns the commands, the admin CLI's, and the built-in plugins'
// names.
func usage() string {
	return usageCommands + "\n" + admin.Usage + "\n" + builtinNames() + "\n"
}

// builtinNames lists the built-in plugins by kind, each kind's names sorted.
func builtinNames() string {
	return fmt.Sprintf("built-in plugins: push: %s; membership: %s; transport: %s",
		sortedNames(builtins.Push), sortedNames(builtins.Membership), sortedNames(builtins.Transport))
}

func sortedNames[P any](plugins map[string]P) string {
	return strings.Join(slices.Sorted(maps.Keys(plugins)), ", ")
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes a command line and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return 2
	}
	switch args[0] {
	case "server":
		return serve(args[1:], stderr)
	case "plugin":
		return servePlugin(args[1:], stderr)
	case "hash-password":
		return hashPassword(args[1:], os.Stdin, stdout, stderr)
	case "version":
		fmt.Fprintf(stdout, "sextant %s %s %s/%s\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage())
		return 0
	case "services", "instances", "clients", "subscribers", "members", "plugins", "deregister":
		return admin.Run(args[0], args[1:], os.Getenv, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "sextant: unknown command %q\n%s", args[0], usage())
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
	loaded, err := config.LoadWithSources(*path, os.Environ(), flags)
	cfg, notes := loaded.Config, loaded.Notes
	if err != nil {
		for _, n := range notes {
			if n.Warning {
				fmt.Fprintf(stderr, "sextant: configuration: warning: %s\n", n.Text)
			}
		}
		fmt.Fprintf(stderr, "sextant: configuration: %v\n", err)
		return 2
	}

	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "sextant",
		Level:      hclog.LevelFromString(cfg.Log.Level),
		JSONFormat: cfg.Log.JSON,
		Output:     stderr,
	})
	for _, n := range notes {
		if n.Warning {
			logger.Warn(n.Text)
		} else {
			logger.Info(n.Text)
		}
	}
	logSettings(logger, *path, loaded.Settings)
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
	defer reloadOnHangup(srv, logger)()
	logger.Info("starting", "version", version)
	logger.Debug("effective configuration", "config", fmt.Sprintf("%+v", cfg.Redacted()))
	if err := srv.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		logger.Error("server failed", "error", err)
		return 1
	}
	logger.Info("stopped")
	return 0
}

// logSettings logs the configuration file read, and each setting that is
// not the built-in default with the file, environment variable or flags it
// came from (secrets as "(set)").
func logSettings(logger hclog.Logger, path string, settings []config.Setting) {
	if path != "" {
		logger.Info("configuration file", "path", path)
	} else {
		logger.Info("no configuration file: built-in defaults, environment and flags")
	}
	for _, s := range settings {
		logger.Info("setting", "key", s.Key, "value", s.Value, "from", s.Source)
	}
}

// reloadOnHangup reloads srv (its TLS files) on every SIGHUP until the
// returned function is called.
func reloadOnHangup(srv *server.Server, logger hclog.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-hup:
				logger.Info("SIGHUP: reloading")
				_ = srv.Reload() // a failure is logged, and what is in use kept
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
	}
}

// servePlugin runs a built-in plugin process for a server that started it.
func servePlugin(args []string, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprint(stderr, usage())
		return 2
	}
	name := args[0]
	if p, ok := builtins.Push[name]; ok {
		stopQuietly(pluginStopGrace)
		sdkpush.Serve(p) // exits the process
	}
	if p, ok := builtins.Membership[name]; ok {
		stopQuietly(pluginStopGrace)
		membership.Serve(p)
	}
	if p, ok := builtins.Transport[name]; ok {
		stopQuietly(pluginStopGrace)
		transport.Serve(p)
	}
	fmt.Fprintf(stderr, "sextant plugin: there is no built-in plugin called %q\n%s\n", name, builtinNames())
	return 2
}

// pluginStopGrace is how long a built-in plugin that got SIGTERM or SIGINT
// waits for its server to stop it: the server's stop, and a margin.
const pluginStopGrace = 2 * server.StopTimeout

// stopQuietly makes SIGTERM and SIGINT no reason for a plugin process to
// die. Sent to the whole process group (systemd's stop, Ctrl-C in a
// terminal), they reach the server and its plugins at once; the server then
// stops its plugins itself, in order, after what still uses them. So the
// plugin serves on until its server stops it (or dies: then it exits, as
// always), and exits with status 0 after grace if neither happens.
func stopQuietly(grace time.Duration) {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, os.Interrupt)
	go func() {
		<-signals
		time.Sleep(grace) // the server stops this process first, as a rule
		os.Exit(0)
	}()
}
