// Package server is `ramboot serve`: proxyDHCP or full DHCP, TFTP and HTTP
// on one interface, serving one built tree to a whole rack. The listeners
// (server/dhcp, server/tftp, HTTP) keep to protocol; what a node gets they
// ask a Booter (booter.go: the site model, site.Site, over nodes.yaml and
// the install state file), and what each node did is kept on a status
// board (server/status). Who a node is stays the server's own evidence
// (nodeAt): the Booter is told only outcomes the server believes.
//
//	s := &server.Server{Root: "out/rpi4", Interface: "eth1", DHCP: dhcp.Proxy}
//	err := s.Run(ctx)
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/sys/unix"

	"github.com/ramboot/ramboot/internal/report"
	"github.com/ramboot/ramboot/server/dhcp"
	"github.com/ramboot/ramboot/server/status"
	"github.com/ramboot/ramboot/site"
	"github.com/ramboot/ramboot/site/inventory"
)

// Server is one `ramboot serve`.
type Server struct {
	Root      string    // the built tree
	Interface string    // the only interface served
	DHCP      dhcp.Mode // proxy (default), full, off
	Range     string    // full mode: FROM-TO
	LeaseFile string    // full mode: default <Root>/../leases.json
	Nodes     string    // nodes.yaml; "" = defaults only
	HTTPAddr  string    // default <interface address>:8080
	TFTPAddr  string    // default <interface address>:69
	DHCPPort  int       // default 67 (tests use others)
	// BootServerPort is the PXE boot server's port, default 4011.
	BootServerPort   int
	Log              *slog.Logger
	LeaseTime        time.Duration // full DHCP: how long a lease lasts; 0 is dhcp.DefaultLeaseTime
	BootLease        time.Duration // full DHCP: a Pi 3B ROM's lease, committed at the OFFER; 0 is dhcp.DefaultBootLease
	MaxDeclined      int           // full DHCP: addresses set aside after DECLINEs at once; 0 is a quarter of the range
	StateMaxUnlisted int           // install state records kept for MACs nodes.yaml does not list; 0 is MaxUnlistedRecords

	// Limits; zero means the default named. The status board's is
	// Board.MaxOthers.
	TFTPMaxTransfers   int           // tftp.DefaultMaxTransfers
	TFTPMaxPerClient   int           // tftp.DefaultMaxTransfersPerClient
	TFTPMaxTimeout     time.Duration // tftp.DefaultMaxTimeout
	HTTPHeaderTimeout  time.Duration // DefaultHTTPHeaderTimeout
	HTTPIdleTimeout    time.Duration // DefaultHTTPIdleTimeout
	HTTPMaxHeaderBytes int           // DefaultHTTPMaxHeaderBytes
	HTTPMaxConns       int           // DefaultHTTPMaxConns
	ReportRate         int           // reports/s per node: DefaultReportRate
	ReportBurst        int           // DefaultReportBurst
	ReportTotalRate    int           // reports/s of all nodes: DefaultReportTotalRate

	// HTTPMaxConnsPerClient bounds the connections of one client address
	// (an IPv6 client's /64): more are refused at once. HTTPStallTimeout
	// closes a connection whose response makes no progress that long (the
	// client stopped reading). Zero means the default named.
	HTTPMaxConnsPerClient int           // DefaultHTTPMaxConnsPerClient
	HTTPStallTimeout      time.Duration // DefaultHTTPStallTimeout

	// OnReport, if set, is called with each report a node made of its
	// own boot (POST /report) once it is checked and on the status board:
	// key is the node's board key (its MAC). It runs in the HTTP handler
	// and must return quickly.
	OnReport func(key string, r report.Report)

	// StateFile keeps the nodes' install state (site/state.go); default
	// state.json next to the lease file.
	StateFile string

	// Booter decides what each node gets and takes its install outcomes.
	// nil: the server's own site.Site over Nodes, StateFile and
	// StateMaxUnlisted, which Run opens and reloads when nodes.yaml
	// changes (and Reload on demand). A Booter given here is its owner's
	// to open and reload; Run and Reload put its inventory's nodes on the
	// status board. It must be a working value: a typed nil such as
	// (*site.Site)(nil) or BooterFunc(nil) is not "no Booter".
	Booter Booter

	// ServerIP is the interface's IPv4 address, found at start.
	ServerIP net.IP
	Board    status.Board

	httpURL string // http://addr:port, once HTTP listens

	met         metricsState
	reports     reportState
	neighborMAC func(ip string) string // tests; nil reads /proc/net/arp

	httpConnState httpConnState // the HTTP listener's (httplimit.go)

	site        atomic.Pointer[site.Site] // the server's own, when Booter is nil; made at its first use
	statusFiles statusFiles               // what the status page last read of power.log and the state file
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return s.Log
}

// Reload reads the inventory again; a bad file is reported and the old
// inventory stays in force. With a Booter given, it puts the Booter's
// inventory's nodes on the status board (reloading is the Booter's
// owner's).
func (s *Server) Reload() error {
	st := s.ownSite()
	if st == nil {
		s.onInventory(s.Booter.Inventory())
		return nil
	}
	return st.Reload()
}

// InterfaceIPv4 returns the first IPv4 address of ifname.
func InterfaceIPv4(ifname string) (net.IP, *net.IPNet, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, nil, fmt.Errorf("--interface %s: %w (see `ip link` for the names)", ifname, err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, nil, fmt.Errorf("--interface %s: %w", ifname, err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			return n.IP.To4(), n, nil
		}
	}
	return nil, nil, fmt.Errorf("--interface %s has no IPv4 address: give it one (ip addr add ... dev %s)", ifname, ifname)
}

// onInventory puts a newly loaded inventory's nodes on the status board:
// pinned (always kept) and listed on the page even before they are seen.
func (s *Server) onInventory(inv *inventory.Inventory) {
	var roster []status.Node
	var keys []string // the board keys of its nodes: MAC, and serial
	if inv != nil {
		for _, n := range inv.Nodes {
			r := status.Node{Hostname: n.Hostname, Serial: strings.ToLower(strings.TrimSpace(n.Serial)), IP: n.Address}
			if mac, err := net.ParseMAC(strings.ReplaceAll(strings.TrimSpace(n.MAC), "-", ":")); err == nil {
				r.MAC = mac.String()
				keys = append(keys, r.MAC)
			}
			if r.Serial != "" {
				keys = append(keys, r.Serial)
			}
			roster = append(roster, r)
		}
	}
	s.Board.SetPinned(keys)
	s.Board.SetRoster(roster)
}

// listenConfig checks a listen address ("" means the interface's address
// and defPort) and returns it with a ListenConfig that keeps its socket to
// the served interface (SO_BINDTODEVICE), as DHCP's: TFTP and HTTP answer
// nothing that arrives on another interface, even on a wildcard address.
// A loopback address is left unbound, for local use and tests.
func (s *Server) listenConfig(flag, addr, defPort string) (string, *net.ListenConfig, error) {
	if addr == "" {
		addr = net.JoinHostPort(s.ServerIP.String(), defPort)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", nil, fmt.Errorf("%s %q: %w", flag, addr, err)
	}
	lc := &net.ListenConfig{}
	ip := net.ParseIP(host)
	if host != "" && ip == nil {
		return "", nil, fmt.Errorf("%s %q: give an IP address, not a name", flag, addr)
	}
	if ip != nil && ip.IsLoopback() {
		return addr, lc, nil
	}
	if ip != nil && !ip.IsUnspecified() && !s.interfaceHas(ip) {
		return "", nil, fmt.Errorf("%s %s: not an address of --interface %s (ramboot serve answers on that interface only)", flag, addr, s.Interface)
	}
	ifname := s.Interface
	lc.Control = func(network, address string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, ifname)
		}); err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("binding to interface %s: %w", ifname, serr)
		}
		return nil
	}
	return addr, lc, nil
}

// interfaceHas reports whether ip is one of the served interface's
// addresses.
func (s *Server) interfaceHas(ip net.IP) bool {
	ifi, err := net.InterfaceByName(s.Interface)
	if err != nil {
		return false
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// Check validates the configuration before anything listens.
func (s *Server) Check() error {
	if s.Root == "" {
		return errors.New("--root: name the built tree to serve (for example out/rpi4)")
	}
	if st, err := os.Stat(s.Root); err != nil || !st.IsDir() {
		return fmt.Errorf("--root %s: not a directory: build it first with `make image BOARD=rpi4`", s.Root)
	}
	if s.Interface == "" {
		return errors.New("--interface: name the one interface to serve (ramboot serve never answers on all interfaces)")
	}
	switch s.DHCP {
	case "":
		s.DHCP = dhcp.Proxy
	case dhcp.Proxy, dhcp.Off:
		if s.Range != "" {
			return fmt.Errorf("--range is for --dhcp full; proxy mode never hands out addresses")
		}
	case dhcp.Full:
		if s.Range == "" {
			return errors.New("--dhcp full needs an explicit --range FROM-TO: a full DHCP server on the wrong network takes it over")
		}
	default:
		return fmt.Errorf("--dhcp %q: use proxy, full or off", s.DHCP)
	}
	return nil
}

// Run serves until ctx ends or a listener fails.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Check(); err != nil {
		return err
	}
	ip, ipnet, err := InterfaceIPv4(s.Interface)
	if err != nil {
		return err
	}
	s.ServerIP = ip
	if err := s.openSite(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 4)
	var wg sync.WaitGroup
	start := func(name string, fn func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}

	haddr, hlc, err := s.listenConfig("--http", s.HTTPAddr, "8080")
	if err != nil {
		return err
	}
	hl, err := hlc.Listen(ctx, "tcp", haddr)
	if err != nil {
		return fmt.Errorf("http: %w (pass --http ADDR)", err)
	}
	if a, ok := hl.Addr().(*net.TCPAddr); ok {
		host := a.IP.String()
		if a.IP.IsUnspecified() {
			host = ip.String()
		}
		s.httpURL = "http://" + net.JoinHostPort(host, fmt.Sprint(a.Port))
	}

	if s.DHCP != dhcp.Off {
		ds := &dhcp.Server{Mode: s.DHCP, ServerIP: ip, Subnet: ipnet.Mask, Decide: s.decide, Log: s.dhcpLog,
			Held: s.metrics().countDHCP} // not logged (once per client a minute), still counted
		if s.DHCP == dhcp.Full {
			from, to, ok := strings.Cut(s.Range, "-")
			lf := s.LeaseFile
			if lf == "" {
				lf = path.Join(path.Dir(strings.TrimRight(s.Root, "/")), "leases.json")
			}
			pool, err := dhcp.OpenPool(net.ParseIP(strings.TrimSpace(from)), net.ParseIP(strings.TrimSpace(to)), lf)
			if !ok || err != nil {
				return fmt.Errorf("--range %q: want FROM-TO, like 192.0.2.100-192.0.2.200 (%v)", s.Range, err)
			}
			if !ipnet.Contains(pool.Start) || !ipnet.Contains(pool.End) {
				network := &net.IPNet{IP: ipnet.IP.Mask(ipnet.Mask), Mask: ipnet.Mask}
				return fmt.Errorf("--range %s is not inside %s's network %s", s.Range, s.Interface, network)
			}
			pool.LeaseTime, pool.BootLease, pool.MaxDeclined, pool.Reserved, ds.Pool = s.LeaseTime, s.BootLease, s.MaxDeclined, s.fixedAddresses(), pool
			s.Registry().Register(&declineCollector{pool}) // already there if Run runs again
		}
		port := s.DHCPPort
		if port == 0 {
			port = 67
		}
		pc, err := dhcp.ListenInterface(s.Interface, port)
		if err != nil {
			return err
		}
		s.log().Info("dhcp listening", "mode", string(s.DHCP), "interface", s.Interface, "port", port, "server", ip.String())
		start("dhcp", func(ctx context.Context) error { return ds.Serve(ctx, pc) })
		// UEFI PXE firmware asks a proxy's boot server on port 4011 for
		// its boot file.
		bsPort := s.BootServerPort
		if bsPort == 0 {
			bsPort = 4011
		}
		bs, err := dhcp.ListenInterface(s.Interface, bsPort)
		if err != nil {
			return err
		}
		start("pxe boot server", func(ctx context.Context) error { return ds.ServeBootServer(ctx, bs) })
	}

	if err := s.startTFTP(ctx, start); err != nil {
		return err
	}

	hs := s.httpServer()
	hl = s.httpListener(hl)
	s.log().Info("http listening", "addr", hl.Addr().String(), "interface", s.Interface, "status", "http://"+hl.Addr().String()+"/status",
		"max_conns", positive(s.HTTPMaxConns, DefaultHTTPMaxConns), "max_conns_per_client", positive(s.HTTPMaxConnsPerClient, DefaultHTTPMaxConnsPerClient),
		"stall_timeout", positive(s.HTTPStallTimeout, DefaultHTTPStallTimeout).String())
	start("http", func(ctx context.Context) error {
		go func() { <-ctx.Done(); hs.Close() }()
		if err := hs.Serve(hl); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})

	if st := s.ownSite(); st != nil && s.Nodes != "" {
		start("inventory", st.Watch)
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	cancel()
	wg.Wait()
	return runErr
}

// decide is DHCP's answer for a client: what the Booter says it gets
// (hostname, address, option 224) and the boot file for its kind of
// client, which is the server's (its HTTP address, the tree's files).
func (s *Server) decide(c dhcp.Client, server net.IP) dhcp.Decision {
	m, ok, err := s.booter().Lookup(c.MAC, c.Serial, server)
	if err != nil {
		s.log().Error("inventory", "mac", c.MAC.String(), "err", err)
	}
	var d dhcp.Decision
	if ok && m.Ignore {
		// defaults: discover: none: no answer until enrolled, but noted
		// for `ramboot node discovered`.
		s.booter().NoteSeen(site.Seen{MAC: c.MAC.String(), Serial: c.Serial, Model: c.Model, Kind: c.Kind.String(),
			Asked: "dhcp (not answered: defaults: discover: none)"})
		return dhcp.Decision{Ignore: true}
	}
	if ok {
		d = dhcp.Decision{Hostname: m.Hostname, Address: m.Address, Option224: m.Option224}
	}
	switch c.Kind {
	case dhcp.IPXE:
		if s.httpURL != "" {
			arch := "arm64"
			if dhcp.IsX86(c.Arch) {
				arch = "amd64"
			}
			d.BootFile = s.httpURL + "/boot/" + strings.ReplaceAll(c.MAC.String(), ":", "-") + ".ipxe?arch=" + arch
		}
	case dhcp.PCFirmware:
		if f := dhcp.PXEBootFile(c.Arch); f != "" && s.hasFile(f) {
			d.BootFile = f
		}
	case dhcp.HTTPBoot:
		if c.Arch == dhcp.ArchHTTPx64 && s.httpURL != "" && s.hasFile("ipxe.efi") {
			d.BootFile = s.httpURL + "/ipxe.efi"
		}
	}
	return d
}

func (s *Server) dhcpLog(e dhcp.Event) {
	s.metrics().countDHCP(e)
	mac := e.Client.MAC.String()
	attrs := []any{"mac", mac, "kind", e.Client.Kind.String(), "event", e.Type}
	if e.Client.Serial != "" {
		attrs = append(attrs, "serial", e.Client.Serial)
	}
	if e.Client.Model != "" {
		attrs = append(attrs, "model", e.Client.Model)
	}
	if e.Address != nil {
		attrs = append(attrs, "ip", e.Address.String())
	}
	if e.Detail != "" {
		attrs = append(attrs, "detail", e.Detail)
	}
	if e.Err != nil {
		attrs = append(attrs, "err", e.Err.Error())
	}
	if e.Type == "ignored" && e.Client.Kind == dhcp.Other {
		s.log().Debug("dhcp", attrs...)
		return
	}
	s.log().Info("dhcp", attrs...)
	if e.Client.Kind != dhcp.Other && e.Type != "ignored" {
		n := status.Node{MAC: mac, Serial: e.Client.Serial, Kind: e.Client.Kind.String()}
		how := status.Seen
		switch {
		case e.Address == nil || e.Type == "decline": // a declined address is not the node's
		case e.Type == "ack": // full mode: the server's own grant is the only address binding
			n.IP, how = e.Address.String(), status.Bound
		default:
			n.IP = e.Address.String()
		}
		s.Board.DHCP(mac, n, "dhcp "+e.Type, e.Detail, how)
		if e.Type == "offer" || e.Type == "ack" {
			s.booter().NoteSeen(site.Seen{MAC: mac, Serial: e.Client.Serial, Model: e.Client.Model,
				Kind: e.Client.Kind.String(), IP: n.IP, Asked: "dhcp " + e.Type})
		}
	}
}

var macPathRE = regexp.MustCompile(`^/boot/([0-9a-fA-F]{2}(?:[:-][0-9a-fA-F]{2}){5})\.ipxe$`)

// macFromPath parses /boot/<mac>.ipxe.
func macFromPath(p string) (net.HardwareAddr, bool) {
	m := macPathRE.FindStringSubmatch(p)
	if m == nil {
		return nil, false
	}
	mac, err := net.ParseMAC(strings.ReplaceAll(m[1], "-", ":"))
	return mac, err == nil
}

var _ = dhcpv4.MessageTypeAck
