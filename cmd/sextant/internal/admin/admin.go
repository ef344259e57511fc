// Package admin is the sextant binary's admin CLI: "sextant services",
// "instances", "clients", "subscribers", "members", "plugins" and
// "deregister" read (and, for deregister, change) a running server through
// its HTTP port — the operator's read API under /v1/sextant/ and the Nacos
// Open API — and print a table, or JSON for scripts, as "consul catalog" and
// etcdctl do.
package admin

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Usage is the admin CLI's part of the binary's usage text.
const Usage = `admin commands (they talk to a running server's HTTP port):
  sextant services [--group G] [--search TEXT]   the services of a namespace: instances, healthy, subscribers
  sextant instances SERVICE                      a service's instances, the client owning each and that client's node
  sextant clients                                the clients the server holds (gRPC connections, HTTP ip:port clients)
  sextant subscribers SERVICE                    a service's subscribers
  sextant members                                the cluster's members and their state (UP, SUSPICIOUS, DOWN)
  sextant plugins                                the server's plugins: kind, role, pid, state, restarts, last error
  sextant deregister SERVICE IP:PORT [--cluster C] [--ephemeral=false]
                                                 remove an instance registered over HTTP, or a persistent one
                                                 (a gRPC client's instance lives as long as its connection)
  SERVICE is NAME or GROUP@@NAME; --group G sets the group of a bare NAME (default DEFAULT_GROUP).
  Flags go after the command, before or after its arguments:
    --server HOST:PORT   the server's HTTP address, or an http:// or https:// URL
                         (default $SEXTANT_ADDR, else 127.0.0.1:8848)
    --namespace ID       the namespace (default public)
    --json               print JSON (an array of the API's items; deregister: an object) instead of a table
    --token TOKEN        a global admin's access token when the server has auth on (default $SEXTANT_TOKEN)
    --username U --password P
                         log in (POST /nacos/v1/auth/login) for a token instead
    --timeout D          each request's timeout (default 10s)
  Exit codes: 0 done; 1 the server answered an error or what was asked for does not exist
  (an unknown service, instance or a refused token); 2 usage error; 3 the server cannot be reached.
  Example:
    SEXTANT_ADDR=10.0.0.1:8848 sextant instances shop@@orders --json | jq -r '.[] | "\(.ip):\(.port)"'
`

// The exit codes.
const (
	exitOK          = 0
	exitServer      = 1 // the server answered an error, or what was asked for does not exist
	exitUsage       = 2
	exitUnreachable = 3
)

// Environment variables the CLI reads.
const (
	envAddr  = "SEXTANT_ADDR"
	envToken = "SEXTANT_TOKEN"
)

// defaultServer is the server's address when neither --server nor
// SEXTANT_ADDR names one: Nacos's port on this host.
const defaultServer = "127.0.0.1:8848"

// defaultTimeout bounds each request unless --timeout says otherwise.
const defaultTimeout = 10 * time.Second

// usageError is a command line the CLI cannot run: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// options are what the flags and the environment set.
type options struct {
	server, namespace, group string
	json                     bool
	token                    string
	username, password       string
	timeout                  time.Duration
	// services
	search string
	// deregister
	cluster   string
	ephemeral bool

	// The positional arguments, checked: SERVICE, and deregister's IP:PORT.
	service string
	ip      string
	port    int
}

// Run runs the admin command with its arguments (those after the command),
// reading SEXTANT_ADDR and SEXTANT_TOKEN through getenv, and returns the
// process's exit code.
func Run(command string, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	opts, err := parse(command, args, getenv, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, Usage)
		return exitOK
	case err != nil:
		var usage *usageError
		if errors.As(err, &usage) { // the flag package printed its own errors
			fmt.Fprintf(stderr, "sextant %s: %v\n", command, err)
		}
		fmt.Fprintf(stderr, "run \"sextant help\" for the usage\n")
		return exitUsage
	}
	c, err := newClient(opts)
	if err == nil {
		err = commands[command](c, opts, stdout)
	}
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "sextant %s: %v\n", command, err)
	var usage *usageError
	var unreachable *unreachableError
	switch {
	case errors.As(err, &usage):
		return exitUsage
	case errors.As(err, &unreachable):
		return exitUnreachable
	}
	return exitServer
}

// commands run each command.
var commands = map[string]func(c *client, o options, out io.Writer) error{
	"services":    services,
	"instances":   instances,
	"clients":     clients,
	"subscribers": subscribers,
	"members":     members,
	"plugins":     plugins,
	"deregister":  deregister,
}

// arity is how many positional arguments each command takes, and what they
// are called.
var arity = map[string][]string{
	"instances":   {"SERVICE"},
	"subscribers": {"SERVICE"},
	"deregister":  {"SERVICE", "IP:PORT"},
}

// parse reads the command's flags, wherever they are among its arguments,
// and its positional arguments, and checks them.
func parse(command string, args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	if _, ok := commands[command]; !ok {
		return options{}, usagef("unknown admin command %q", command)
	}
	o := options{timeout: defaultTimeout}
	fs := flag.NewFlagSet("sextant "+command, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {} // the error is printed, then a pointer to the usage
	fs.StringVar(&o.server, "server", "", "the server's HTTP address")
	fs.StringVar(&o.namespace, "namespace", "", "the namespace")
	fs.BoolVar(&o.json, "json", false, "print JSON")
	fs.StringVar(&o.token, "token", "", "an access token")
	fs.StringVar(&o.username, "username", "", "log in as this user")
	fs.StringVar(&o.password, "password", "", "the user's password")
	fs.DurationVar(&o.timeout, "timeout", defaultTimeout, "each request's timeout")
	switch command {
	case "services", "instances", "subscribers", "deregister":
		fs.StringVar(&o.group, "group", "", "the group")
	}
	switch command {
	case "services":
		fs.StringVar(&o.search, "search", "", "only services whose name contains this")
	case "deregister":
		fs.StringVar(&o.cluster, "cluster", "", "the instance's cluster")
		fs.BoolVar(&o.ephemeral, "ephemeral", true, "false for a persistent instance")
	}
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return o, err
	}
	if want := arity[command]; len(positional) != len(want) {
		if len(want) == 0 {
			return o, usagef("takes no arguments, got %q", positional)
		}
		return o, usagef("wants %s, got %d argument(s)", strings.Join(want, " "), len(positional))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.server == "" {
		o.server = getenv(envAddr)
	}
	if o.server == "" {
		o.server = defaultServer
	}
	if o.token == "" && o.username == "" {
		o.token = getenv(envToken)
	}
	switch {
	case (o.username == "") != (o.password == ""):
		return o, usagef("--username and --password go together")
	case o.username != "" && set["token"]:
		return o, usagef("give --token or --username and --password, not both")
	case o.timeout <= 0:
		return o, usagef("--timeout must be positive, got %v", o.timeout)
	}
	if _, err := baseURL(o.server); err != nil {
		return o, err
	}
	return o, o.setPositional(positional)
}

// setPositional checks the positional arguments and keeps them: SERVICE
// (not blank), IP:PORT (an ip or host and a port 1-65535).
func (o *options) setPositional(args []string) error {
	if len(args) > 0 {
		if strings.TrimSpace(args[0]) == "" {
			return usagef("SERVICE must not be empty")
		}
		o.service = args[0]
	}
	if len(args) > 1 {
		ip, port, err := net.SplitHostPort(args[1])
		n, perr := strconv.Atoi(port)
		if err != nil || perr != nil || ip == "" || n < 1 || n > 65535 {
			return usagef("IP:PORT %q: want the instance's ip and port, such as 10.0.0.1:8080", args[1])
		}
		o.ip, o.port = ip, n
	}
	return nil
}

// parseInterspersed parses fs's flags wherever they are among args, and
// returns the other arguments in order; after "--" every argument is one of
// those.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		if len(rest) == 0 {
			return positional, nil
		}
		positional, args = append(positional, rest[0]), rest[1:]
	}
}

// baseURL returns the URL of the server's HTTP port: server is host:port
// (plain HTTP), a bare host (port 8848), or an http:// or https:// URL.
func baseURL(server string) (*url.URL, error) {
	if strings.Contains(server, "://") {
		u, err := url.Parse(server)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
			u.RawQuery != "" || u.Fragment != "" {
			return nil, usagef("--server %q: want host:port or an http:// or https:// URL of the server's HTTP port", server)
		}
		u.Path = strings.TrimSuffix(u.Path, "/")
		return u, nil
	}
	host, port, err := net.SplitHostPort(server)
	if err != nil {
		host, port = server, "8848"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || host == "" || strings.ContainsAny(host, "/?#@ ") {
		return nil, usagef("--server %q: want host:port of the server's HTTP port", server)
	}
	return &url.URL{Scheme: "http", Host: net.JoinHostPort(host, port)}, nil
}
