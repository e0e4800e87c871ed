//go:build linux

package netup

// Integration tests against real dnsmasq. Every server and the client run
// in network namespaces of their own (rbt-<random>), joined by veth pairs,
// on RFC 5737 addresses with no default route; nothing touches the host's
// interfaces. The client side is this test binary re-executed with
// `ip netns exec` (TestHelperProcess), so every socket and netlink call of
// Up happens inside the client namespace, and its hostname and resolv.conf
// hooks are swapped for files.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/vishvananda/netlink"

	"github.com/ramboot/ramboot/internal/netnstest"
	"github.com/ramboot/ramboot/internal/testenv"
)

const (
	helperEnv = "RAMBOOT_NETUP_HELPER" // JSON helperRequest
	proxyEnv  = "RAMBOOT_NETUP_PROXY"  // JSON proxyRequest
	bootURL   = "http://192.0.2.1/boot.ipxe"
	proxyURL  = "http://192.0.2.2/proxy.ipxe"
)

// helperRequest tells the re-executed test binary what to do.
type helperRequest struct {
	Out            string // file for the helperReply
	Dir            string // where the hooks write hostname and resolv.conf
	Interfaces     []string
	VendorClass    string
	DHCPTimeout    time.Duration
	CarrierTimeout time.Duration
	Renew          bool
}

type helperReply struct {
	Err            string
	Interface      string
	IP             string // CIDR
	Router         string
	DNS            []string
	ServerID       string
	NextServer     string
	BootFile       string
	Option224      string
	Option224From  string
	Lease          time.Duration
	Renewed        time.Duration
	RenewErr       string
	KernelAddrs    []string // what netlink shows on the interface afterwards
	KernelGateways []string
	Log            []string

	// Filled in by the parent from the hook files.
	HostnameFile, ResolvConfFile string
}

// proxyRequest configures the Go proxyDHCP responder (TestHelperProcess).
type proxyRequest struct {
	Iface    string
	ServerIP string
	Opt224   string
}

// proxyResponder is a minimal proxyDHCP server: it answers every DISCOVER
// with an OFFER of no address (yiaddr 0.0.0.0) that carries option 224
// (NUL-terminated, as some servers send strings). dnsmasq 2.90 cannot send
// option 224 in proxy mode, hence this stand-in. It runs until killed, or
// two minutes.
func proxyResponder(t *testing.T, raw string) {
	var req proxyRequest
	if err := json.Unmarshal([]byte(raw), &req); err != nil {
		t.Fatal(err)
	}
	netnstest.MustBeInside(t)
	sip := net.ParseIP(req.ServerIP).To4()
	handler := func(conn net.PacketConn, peer net.Addr, m *dhcpv4.DHCPv4) {
		if m.OpCode != dhcpv4.OpcodeBootRequest || m.MessageType() != dhcpv4.MessageTypeDiscover {
			return
		}
		resp, err := dhcpv4.NewReplyFromRequest(m,
			dhcpv4.WithMessageType(dhcpv4.MessageTypeOffer),
			dhcpv4.WithServerIP(sip),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(sip)),
			dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient")),
			dhcpv4.WithGeneric(Option224, []byte(req.Opt224+"\x00")),
			dhcpv4.WithBroadcast(true),
		)
		if err != nil {
			return
		}
		conn.WriteTo(resp.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort})
	}
	srv, err := server4.NewServer(req.Iface, &net.UDPAddr{IP: net.IPv4zero, Port: dhcpv4.ServerPort}, handler)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("proxy responder ready")
	time.AfterFunc(2*time.Minute, func() { srv.Close() })
	srv.Serve()
}

// TestHelperProcess is the client side of the namespace tests, or their
// Go proxyDHCP server; it does nothing unless run by them.
func TestHelperProcess(t *testing.T) {
	if raw := os.Getenv(proxyEnv); raw != "" {
		proxyResponder(t, raw)
		return
	}
	raw := os.Getenv(helperEnv)
	if raw == "" {
		return
	}
	var req helperRequest
	if err := json.Unmarshal([]byte(raw), &req); err != nil {
		t.Fatal(err)
	}
	netnstest.MustBeInside(t)
	var rep helperReply
	cfg := Config{
		Interfaces:     req.Interfaces,
		VendorClass:    req.VendorClass,
		DHCPTimeout:    req.DHCPTimeout,
		CarrierTimeout: req.CarrierTimeout,
		OfferWindow:    time.Second,
		Log: func(f string, a ...any) {
			rep.Log = append(rep.Log, fmt.Sprintf(f, a...))
		},
		WriteResolvConf: func(b []byte) error {
			return os.WriteFile(filepath.Join(req.Dir, "resolv.conf"), b, 0o644)
		},
		SetHostname: func(name string) error {
			return os.WriteFile(filepath.Join(req.Dir, "hostname"), []byte(name), 0o644)
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := Up(ctx, cfg)
	if err != nil {
		rep.Err = err.Error()
	} else {
		rep.Interface = res.Interface
		rep.IP = res.IP.String()
		rep.Router = res.Router.String()
		for _, d := range res.DNS {
			rep.DNS = append(rep.DNS, d.String())
		}
		rep.ServerID = res.ServerID.String()
		rep.NextServer, rep.BootFile = res.NextServer.String(), res.BootFile
		rep.Option224 = res.Option224
		rep.Option224From = res.Option224From.String()
		rep.Lease = res.Lease
		if req.Renew {
			d, err := res.Renew(ctx, cfg)
			rep.Renewed = d
			if err != nil {
				rep.RenewErr = err.Error()
			}
		}
		if l, err := netlink.LinkByName(res.Interface); err == nil {
			addrs, _ := netlink.AddrList(l, netlink.FAMILY_V4)
			for _, a := range addrs {
				rep.KernelAddrs = append(rep.KernelAddrs, a.IPNet.String())
			}
			routes, _ := netlink.RouteList(l, netlink.FAMILY_V4)
			for _, r := range routes {
				if r.Gw != nil {
					rep.KernelGateways = append(rep.KernelGateways, r.Gw.String())
				}
			}
		}
	}
	b, _ := json.Marshal(rep)
	if err := os.WriteFile(req.Out, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// lab starts the daemons of one test; its namespaces are
// internal/netnstest's (rbt-<pid>-<n>, deleted at the end).
type lab struct {
	t *testing.T
}

func newLab(t *testing.T) *lab {
	t.Helper()
	netnstest.Skip(t)
	netnstest.Need(t, "dnsmasq", "dnsmasq")
	return &lab{t: t}
}

func (l *lab) run(args ...string) {
	l.t.Helper()
	netnstest.Run(l.t, args[0], args[1:]...)
}

// ns makes a namespace for the part named (the name is for the reader).
func (l *lab) ns(part string) string {
	l.t.Helper()
	return netnstest.New(l.t)
}

// dnsmasq runs dnsmasq in ns with the common flags plus extra and kills it
// (by pid) at cleanup. It returns a function that stops it early.
func (l *lab) dnsmasq(ns, iface string, extra ...string) (stop func()) {
	l.t.Helper()
	dir := l.t.TempDir()
	args := append([]string{"netns", "exec", ns, "dnsmasq",
		"--no-daemon", "--conf-file=/dev/null", "--port=0", "--user=root",
		"--interface=" + iface, "--bind-interfaces",
		"--dhcp-leasefile=" + filepath.Join(dir, "leases"),
		"--pid-file=" + filepath.Join(dir, "pid"), // not written with --no-daemon
		"--log-dhcp", "--log-facility=-", "--no-ping",
	}, extra...)
	// With --no-daemon dnsmasq writes no pid file; its log says when the
	// DHCP socket is bound.
	return l.daemon("dnsmasq "+strings.Join(extra, " "), exec.Command("ip", args...), "sockets bound exclusively to interface")
}

// goProxy runs the Go proxyDHCP responder in ns.
func (l *lab) goProxy(ns string, req proxyRequest) (stop func()) {
	l.t.Helper()
	exe, err := os.Executable()
	if err != nil {
		l.t.Fatal(err)
	}
	b, _ := json.Marshal(req)
	cmd := exec.Command("ip", "netns", "exec", ns, exe, "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), proxyEnv+"="+string(b))
	return l.daemon("Go proxyDHCP", cmd, "proxy responder ready")
}

// daemon starts cmd (ip netns exec, which execs its command in place, so
// the pid is the daemon's), waits up to 5s for ready in its output and
// kills it by pid at cleanup or when stop is called.
func (l *lab) daemon(name string, cmd *exec.Cmd, ready string) (stop func()) {
	l.t.Helper()
	logBuf := new(testenv.Buffer)
	cmd.Stdout, cmd.Stderr = logBuf, logBuf
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			l.t.Errorf("%s (pid %d) did not exit", name, cmd.Process.Pid)
		}
		if l.t.Failed() || testing.Verbose() {
			l.t.Logf("%s:\n%s", name, logBuf.String())
		}
	}
	l.t.Cleanup(stop)
	for i := 0; i < 100; i++ { // up to 5s
		select {
		case <-exited:
			l.t.Fatalf("%s exited early:\n%s", name, logBuf.String())
		case <-time.After(50 * time.Millisecond):
		}
		if strings.Contains(logBuf.String(), ready) {
			return stop
		}
	}
	l.t.Fatalf("%s not ready within 5s:\n%s", name, logBuf.String())
	return stop
}

// client runs Up in ns through TestHelperProcess.
func (l *lab) client(ns string, req helperRequest) helperReply {
	l.t.Helper()
	exe, err := os.Executable()
	if err != nil {
		l.t.Fatal(err)
	}
	dir := l.t.TempDir()
	req.Out, req.Dir = filepath.Join(dir, "reply.json"), dir
	b, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, exe, "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+string(b))
	out, err := cmd.CombinedOutput()
	if err != nil {
		l.t.Fatalf("client: %v\n%s", err, out)
	}
	var rep helperReply
	rb, err := os.ReadFile(req.Out)
	if err != nil {
		l.t.Fatalf("client wrote no reply: %v\n%s", err, out)
	}
	if err := json.Unmarshal(rb, &rep); err != nil {
		l.t.Fatal(err)
	}
	rep.HostnameFile, rep.ResolvConfFile = l.file(dir, "hostname"), l.file(dir, "resolv.conf")
	l.t.Logf("client log:\n  %s", strings.Join(rep.Log, "\n  "))
	return rep
}

func (l *lab) file(dir, name string) string {
	b, _ := os.ReadFile(filepath.Join(dir, name))
	return string(b)
}

func inRange(t *testing.T, cidr, lo, hi string) {
	t.Helper()
	ip, _, err := net.ParseCIDR(cidr)
	if err != nil {
		t.Fatalf("address %q: %v", cidr, err)
	}
	v := func(s string) uint32 {
		b := net.ParseIP(s).To4()
		return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	}
	if x := v(ip.String()); x < v(lo) || x > v(hi) {
		t.Errorf("address %v not in %s-%s", ip, lo, hi)
	}
}

// TestUpDnsmasq: one ordinary dnsmasq that sends option 224.
func TestUpDnsmasq(t *testing.T) {
	l := newLab(t)
	srv, cli := l.ns("srv"), l.ns("cli")
	l.run("ip", "-n", srv, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", cli)
	l.run("ip", "-n", srv, "addr", "add", "192.0.2.1/24", "dev", "va")
	l.run("ip", "-n", srv, "link", "set", "va", "up")
	// A second client link whose peer (in the server namespace, so that
	// Up does not pick it) stays down: no carrier.
	l.run("ip", "-n", cli, "link", "add", "vx", "type", "veth", "peer", "name", "vy", "netns", srv)
	// A third whose peer is up but has no DHCP server: no answer.
	l.run("ip", "-n", cli, "link", "add", "vz", "type", "veth", "peer", "name", "vw", "netns", srv)
	l.run("ip", "-n", srv, "link", "set", "vw", "up")

	l.dnsmasq(srv, "va",
		"--dhcp-range=192.0.2.100,192.0.2.150,255.255.255.0,1h",
		"--dhcp-option=224,"+bootURL,
		"--dhcp-option=3,192.0.2.1",
		"--dhcp-option=6,192.0.2.53",
		"--dhcp-option=15,example.test",
		"--dhcp-host=*:*:*:*:*:*,ramboot-test",
	)

	t.Run("lease", func(t *testing.T) {
		// No Interfaces: picks the veths vb, vx and vz (not lo); vx has
		// no carrier, which is reported before vb's lease (>= OfferWindow).
		rep := l.client(cli, helperRequest{CarrierTimeout: 500 * time.Millisecond, Renew: true})
		if rep.Err != "" {
			t.Fatalf("Up: %s", rep.Err)
		}
		if rep.Interface != "vb" {
			t.Errorf("Interface = %q, want vb", rep.Interface)
		}
		inRange(t, rep.IP, "192.0.2.100", "192.0.2.150")
		if !strings.HasSuffix(rep.IP, "/24") {
			t.Errorf("IP = %s, want a /24", rep.IP)
		}
		if rep.Router != "192.0.2.1" || rep.ServerID != "192.0.2.1" {
			t.Errorf("Router %s, ServerID %s; want 192.0.2.1", rep.Router, rep.ServerID)
		}
		if rep.Option224 != bootURL || rep.Option224From != "192.0.2.1" {
			t.Errorf("Option224 %q from %s; want %q from 192.0.2.1", rep.Option224, rep.Option224From, bootURL)
		}
		if rep.Lease != time.Hour {
			t.Errorf("Lease = %v, want 1h", rep.Lease)
		}
		if rep.RenewErr != "" || rep.Renewed != time.Hour {
			t.Errorf("Renew: %v, %s", rep.Renewed, rep.RenewErr)
		}
		if len(rep.KernelAddrs) != 1 || rep.KernelAddrs[0] != rep.IP {
			t.Errorf("addresses on vb = %v, want [%s]", rep.KernelAddrs, rep.IP)
		}
		if len(rep.KernelGateways) != 1 || rep.KernelGateways[0] != "192.0.2.1" {
			t.Errorf("gateways on vb = %v, want [192.0.2.1]", rep.KernelGateways)
		}
		if rep.HostnameFile != "ramboot-test" {
			t.Errorf("hostname set to %q, want ramboot-test", rep.HostnameFile)
		}
		if want := "search example.test\nnameserver 192.0.2.53\n"; !strings.HasSuffix(rep.ResolvConfFile, want) {
			t.Errorf("resolv.conf:\n%s\nwant it to end in\n%s", rep.ResolvConfFile, want)
		}
		// (vx's no-carrier message is checked in "no carrier": here the
		// lease may well come before vx's carrier timeout.)
	})

	t.Run("no answer", func(t *testing.T) {
		rep := l.client(cli, helperRequest{Interfaces: []string{"vz"}, DHCPTimeout: 2 * time.Second})
		if want := "no DHCP answer on vz after 2s"; rep.Err != want {
			t.Errorf("error %q, want %q", rep.Err, want)
		}
	})

	t.Run("no carrier", func(t *testing.T) {
		rep := l.client(cli, helperRequest{Interfaces: []string{"vx"}, CarrierTimeout: time.Second})
		if want := "vx: no carrier after 1s (is the cable in?)"; rep.Err != want {
			t.Errorf("error %q, want %q", rep.Err, want)
		}
	})
}

// dnsmasqHasOptionPXE tells whether dnsmasq has --dhcp-option-pxe (2.91+),
// the only way to make it send option 224 in proxy mode.
func dnsmasqHasOptionPXE() bool {
	out, _ := exec.Command("dnsmasq", "--help").Output()
	return bytes.Contains(out, []byte("--dhcp-option-pxe"))
}

// TestUpProxyDHCP: an ordinary dnsmasq without option 224, a dnsmasq in
// proxy mode and a Go proxyDHCP responder that sends option 224, on one
// Ethernet segment (a bridge in the first server's namespace).
func TestUpProxyDHCP(t *testing.T) {
	l := newLab(t)
	srv, prx, gpx, cli := l.ns("srv"), l.ns("prx"), l.ns("gpx"), l.ns("cli")
	l.run("ip", "-n", srv, "link", "add", "br0", "type", "bridge", "forward_delay", "0")
	l.run("ip", "-n", srv, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", cli)
	l.run("ip", "-n", srv, "link", "add", "vp", "type", "veth", "peer", "name", "vq", "netns", prx)
	l.run("ip", "-n", srv, "link", "add", "vg", "type", "veth", "peer", "name", "vh", "netns", gpx)
	for _, port := range []string{"va", "vp", "vg"} {
		l.run("ip", "-n", srv, "link", "set", port, "master", "br0")
		l.run("ip", "-n", srv, "link", "set", port, "up")
	}
	l.run("ip", "-n", srv, "addr", "add", "192.0.2.1/24", "dev", "br0")
	l.run("ip", "-n", srv, "link", "set", "br0", "up")
	l.run("ip", "-n", prx, "addr", "add", "192.0.2.2/24", "dev", "vq")
	l.run("ip", "-n", prx, "link", "set", "vq", "up")
	l.run("ip", "-n", gpx, "addr", "add", "192.0.2.3/24", "dev", "vh")
	l.run("ip", "-n", gpx, "link", "set", "vh", "up")

	// dnsmasq proxy mode answers only when PXE is enabled (--pxe-prompt or
	// --pxe-service), only to a vendor class starting with "PXEClient"
	// that also sends option 93, and then sends only PXE options: its
	// --dhcp-option 224 is not sent. What it can carry is a boot file
	// (--dhcp-boot) in the BOOTP file field.
	proxyArgs := []string{"--dhcp-range=192.0.2.0,proxy", "--dhcp-option=224," + proxyURL,
		"--pxe-prompt=ramboot,0", "--dhcp-boot=" + proxyURL + ",,192.0.2.2"}
	optionPXE := dnsmasqHasOptionPXE()
	if optionPXE {
		proxyArgs = append(proxyArgs, "--dhcp-option-pxe=224,"+proxyURL)
	}
	l.dnsmasq(prx, "vq", proxyArgs...)
	stopDHCP := l.dnsmasq(srv, "br0",
		"--dhcp-range=192.0.2.100,192.0.2.150,255.255.255.0,1h",
		"--dhcp-option=3,192.0.2.1")

	checkLease := func(t *testing.T, rep helperReply) {
		t.Helper()
		if rep.Err != "" {
			t.Fatalf("Up: %s", rep.Err)
		}
		inRange(t, rep.IP, "192.0.2.100", "192.0.2.150")
		if rep.Router != "192.0.2.1" || rep.ServerID != "192.0.2.1" {
			t.Errorf("Router %s, ServerID %s; want 192.0.2.1", rep.Router, rep.ServerID)
		}
	}
	sawProxyOffer := func(rep helperReply, from string) bool {
		return strings.Contains(strings.Join(rep.Log, "\n"), "proxyDHCP offer (no address) from "+from)
	}

	t.Run("dnsmasq proxy, vendor class ramboot", func(t *testing.T) {
		rep := l.client(cli, helperRequest{Interfaces: []string{"vb"}, VendorClass: "ramboot"})
		checkLease(t, rep)
		if sawProxyOffer(rep, "192.0.2.2") {
			t.Errorf("dnsmasq's proxy answered a non-PXEClient vendor class")
		}
		if rep.Option224 != "" {
			t.Errorf("Option224 = %q, want none", rep.Option224)
		}
	})

	t.Run("dnsmasq proxy, vendor class PXEClient", func(t *testing.T) {
		rep := l.client(cli, helperRequest{Interfaces: []string{"vb"}, VendorClass: "PXEClient:ramboot"})
		checkLease(t, rep)
		if !sawProxyOffer(rep, "192.0.2.2") {
			t.Fatalf("no proxy offer from dnsmasq")
		}
		if rep.BootFile != proxyURL || rep.NextServer != "192.0.2.2" {
			t.Errorf("BootFile %q, NextServer %s; want %q from the proxy 192.0.2.2", rep.BootFile, rep.NextServer, proxyURL)
		}
		want224, wantFrom := "", "<nil>"
		if optionPXE {
			want224, wantFrom = proxyURL, "192.0.2.2"
		}
		if rep.Option224 != want224 || rep.Option224From != wantFrom {
			t.Errorf("Option224 %q from %s; want %q from %s (dnsmasq --dhcp-option-pxe: %v)",
				rep.Option224, rep.Option224From, want224, wantFrom, optionPXE)
		}
	})

	t.Run("proxy with option 224", func(t *testing.T) {
		const goURL = "http://192.0.2.3/boot.ipxe"
		stop := l.goProxy(gpx, proxyRequest{Iface: "vh", ServerIP: "192.0.2.3", Opt224: goURL})
		defer stop()
		rep := l.client(cli, helperRequest{Interfaces: []string{"vb"}, VendorClass: "PXEClient:ramboot"})
		checkLease(t, rep)
		if !sawProxyOffer(rep, "192.0.2.3") {
			t.Fatalf("no proxy offer from the Go responder")
		}
		if !optionPXE { // two proxies with 224 would make the winner a race
			if rep.Option224 != goURL || rep.Option224From != "192.0.2.3" {
				t.Errorf("Option224 %q from %s; want %q from 192.0.2.3", rep.Option224, rep.Option224From, goURL)
			}
		}
	})

	t.Run("proxy only", func(t *testing.T) {
		stopDHCP()
		rep := l.client(cli, helperRequest{Interfaces: []string{"vb"}, VendorClass: "PXEClient:ramboot", DHCPTimeout: 3 * time.Second})
		if want := "vb: got only proxyDHCP offers, no address: is there a DHCP server on this network? (waited 3s)"; rep.Err != want {
			t.Errorf("error %q, want %q", rep.Err, want)
		}
	})
}
