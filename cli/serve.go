package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/ramboot/ramboot/server"
	"github.com/ramboot/ramboot/server/dhcp"
	"github.com/ramboot/ramboot/server/status"
	"github.com/ramboot/ramboot/server/tftp"
	"github.com/ramboot/ramboot/site"
)

type serveOpts struct {
	server.Server
	dhcpMode  string
	logFormat string
	verbose   bool
	config    string // --config: a YAML file of flag settings
	check     bool   // --check: validate and exit
}

func serveFlags(stderr io.Writer) (*pflag.FlagSet, *serveOpts) {
	o := &serveOpts{}
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVarP(&o.Root, "root", "r", "", "the built tree to serve (make image BOARD=rpi4 writes out/rpi4)")
	fs.StringVarP(&o.Interface, "interface", "i", "", "the one interface to serve; nothing listens elsewhere")
	fs.StringVar(&o.dhcpMode, "dhcp", "proxy", "proxy (next to a router's DHCP), full (isolated network, needs --range) or off")
	fs.StringVar(&o.Range, "range", "", "full DHCP: the address pool, FROM-TO")
	fs.StringVar(&o.LeaseFile, "lease-file", "", "full DHCP: where leases are kept (default next to --root)")
	fs.StringVar(&o.StateFile, "state-file", "", "nodes with install: in the inventory: each node's install state (default state.json next to the lease file); see 'ramboot help node'")
	fs.DurationVar(&o.LeaseTime, "lease-time", dhcp.DefaultLeaseTime, "full DHCP: how long a lease lasts (clients renew at half of it)")
	fs.DurationVar(&o.BootLease, "boot-lease", dhcp.DefaultBootLease, "full DHCP: how long the lease a Pi 3B's boot ROM gets at the OFFER lasts (it sends no REQUEST; its Linux asks for a full lease); at most --lease-time")
	fs.IntVar(&o.MaxDeclined, "dhcp-max-declined", 0, "full DHCP: addresses set aside at once after clients DECLINE them (one per MAC; the oldest freed for a new one); 0 is a quarter of --range")
	fs.IntVar(&o.StateMaxUnlisted, "state-max-unlisted", site.MaxUnlistedRecords, "install state records kept for MACs nodes.yaml does not list (defaults: install: covers them); the oldest not installed are dropped first")
	fs.StringVarP(&o.Nodes, "nodes", "n", "", "inventory file (nodes.yaml): hostname, address and option 224 per node")
	fs.StringVar(&o.HTTPAddr, "http", "", "HTTP listen address (default the interface's address, port 8080); an address of --interface, a wildcard (still bound to --interface) or loopback")
	fs.StringVar(&o.TFTPAddr, "tftp", "", "TFTP listen address (default the interface's address, port 69); an address of --interface, a wildcard (still bound to --interface) or loopback")
	fs.IntVar(&o.TFTPMaxTransfers, "tftp-max-transfers", tftp.DefaultMaxTransfers, "TFTP transfers in flight at most; more get ERROR \"server busy\" (logged once per client a minute)")
	fs.IntVar(&o.TFTPMaxPerClient, "tftp-max-per-client", tftp.DefaultMaxTransfersPerClient, "TFTP transfers in flight at most per client IP address (a node needs 1; a load generator standing in for a rack, many)")
	fs.DurationVar(&o.TFTPMaxTimeout, "tftp-max-timeout", tftp.DefaultMaxTimeout, "largest TFTP \"timeout\" option granted (RFC 2349 allows up to 255s); a stalled transfer ends after 6 timeouts")
	fs.IntVar(&o.Board.MaxOthers, "status-max-nodes", status.DefaultMaxOthers, "status board: nodes kept besides the inventory's, the least recently seen dropped first")
	fs.DurationVar(&o.HTTPHeaderTimeout, "http-header-timeout", server.DefaultHTTPHeaderTimeout, "HTTP: time a client has to send a request's header")
	fs.DurationVar(&o.HTTPIdleTimeout, "http-idle-timeout", server.DefaultHTTPIdleTimeout, "HTTP: an idle keep-alive connection is closed after this")
	fs.IntVar(&o.HTTPMaxHeaderBytes, "http-max-header-bytes", server.DefaultHTTPMaxHeaderBytes, "HTTP: largest request header")
	fs.IntVar(&o.HTTPMaxConns, "http-max-conns", server.DefaultHTTPMaxConns, "HTTP: connections open at once from all clients; more wait until one closes")
	fs.IntVar(&o.HTTPMaxConnsPerClient, "http-max-conns-per-client", server.DefaultHTTPMaxConnsPerClient, "HTTP: connections open at once from one client address (an IPv6 client's /64); more are answered 503 and closed (logged once per client a minute)")
	fs.DurationVar(&o.HTTPStallTimeout, "http-stall-timeout", server.DefaultHTTPStallTimeout, "HTTP: a response that makes no progress this long (64 kB not taken by the client) is closed; a download itself has no time limit")
	fs.StringVar(&o.logFormat, "log-format", "text", "text or json: one line per boot step per node")
	fs.BoolVarP(&o.verbose, "verbose", "v", false, "also log clients that are ignored")
	fs.StringVarP(&o.config, "config", "c", "", "YAML file of settings: the keys are these flags' long names (root: out/rpi4); flags given here override it")
	fs.BoolVar(&o.check, "check", false, "check the settings, tree, inventory, interface and listen addresses, print a summary and exit (non-zero, listing every problem, if any); binds nothing")
	markCLIOnly(fs, "config", "check")
	return fs, o
}

func serveUsage(fs *pflag.FlagSet) string {
	return `Usage: ramboot serve --root DIR --interface IF [flags]
       ramboot serve --config /etc/ramboot/serve.yaml [--check] [flags]

Serves a built tree to every node on one interface: the Pi bootloader's
proxyDHCP dialect (or a full DHCP server), TFTP, HTTP with per-node iPXE
scripts, and option 224 for ramboot's init from the inventory. Reload the
inventory with SIGHUP (it is also reloaded when the file changes).

Examples:
  ramboot serve --root out/rpi4 --interface eth1
  ramboot serve --root out/rpi4 --interface eth1 --nodes nodes.yaml --log-format json
  ramboot serve --root out/rpi4 --interface eth1 --dhcp full --range 192.0.2.100-192.0.2.199
  ramboot serve --config /etc/ramboot/serve.yaml --check

A config file (--config) sets any flag by its long name, one per line;
a flag on the command line wins over the file:

  root: /srv/ramboot/rpi4
  interface: eth1
  nodes: /etc/ramboot/nodes.yaml
  log-format: json

With no --lease-file, the full-DHCP lease file (and the install state,
state.json, next to it) is in $STATE_DIRECTORY under systemd
(dist/systemd: /var/lib/ramboot); for a config of those units
(/etc/ramboot/serve.yaml, /etc/ramboot/NAME.yaml) run by hand, in that
unit's state directory if it exists; else next to --root. ramboot node
--config finds it the same way.

Status page: http://ADDRESS:8080/status (JSON: /status.json)

Flags:
` + fs.FlagUsages()
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, o := serveFlags(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, serveUsage(fs)) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: serve: %v (see 'ramboot help serve')", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: serve: unexpected argument %q (flags only; see 'ramboot help serve')", errUsage, fs.Arg(0))
	}
	var problems []error
	if o.config != "" {
		newFS := func() *pflag.FlagSet { f, _ := serveFlags(io.Discard); return f }
		if _, err := applyConfig(fs, newFS, o.config); err != nil {
			if !o.check {
				return fmt.Errorf("%w: %v", errUsage, err)
			}
			problems = append(problems, err)
		}
	}
	o.DHCP = dhcp.Mode(o.dhcpMode)
	// Under systemd's StateDirectory= (the units in dist/systemd), leases
	// and the install state go there: the tree's parent is read-only in
	// the sandbox. `ramboot node` finds them the same way.
	o.defaultFiles(shippedUnits(), os.Getenv("STATE_DIRECTORY"))
	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	hopts := &slog.HandlerOptions{Level: level}
	switch o.logFormat {
	case "text":
		o.Log = slog.New(slog.NewTextHandler(stderr, hopts))
	case "json":
		o.Log = slog.New(slog.NewJSONHandler(stderr, hopts))
	default:
		err := fmt.Errorf("--log-format %q: use text or json", o.logFormat)
		if !o.check {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		problems = append(problems, err)
	}
	if o.check {
		return serveCheck(o, problems, stdout)
	}
	if err := o.Check(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				o.Reload()
			}
		}
	}()
	return o.Run(ctx)
}

// errCheckFailed is --check's error when it found problems: they are
// printed already.
var errCheckFailed = errors.New("serve --check found problems")

// serveCheck is --check: every problem (the config file's first), each
// on its line, or a summary; nothing is bound or started.
func serveCheck(o *serveOpts, problems []error, stdout io.Writer) error {
	pf := o.Preflight()
	if o.config != "" {
		pf.Summary = append([]string{"config: " + o.config}, pf.Summary...)
	}
	var lines []string // errors.Join'ed problems are one a line
	for _, err := range append(problems, pf.Problems...) {
		lines = append(lines, strings.Split(err.Error(), "\n")...)
	}
	for _, l := range pf.Summary {
		fmt.Fprintln(stdout, l)
	}
	for _, w := range pf.Warnings {
		fmt.Fprintln(stdout, "warning: "+w)
	}
	if len(lines) > 0 {
		fmt.Fprintf(stdout, "%d problem(s):\n", len(lines))
		for _, l := range lines {
			fmt.Fprintln(stdout, "  - "+l)
		}
		return fmt.Errorf("%w: %d (listed above)", errCheckFailed, len(lines))
	}
	fmt.Fprintln(stdout, "ok: ramboot serve would start with these settings")
	return nil
}
