package serve

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ramboot/ramboot/e2e/cache"
	"github.com/ramboot/ramboot/e2e/lab"
	"github.com/ramboot/ramboot/internal/netnstest"
)

// dhclientLease runs isc-dhcp-client's dhclient once on peer p (no
// reconfiguration: -sf /bin/true) and returns the address it was bound to.
// dhclient stays in the foreground (-d) and is stopped once bound.
func dhclientLease(t testing.TB, p *lab.Peer, leaseFile string) string {
	t.Helper()
	pr := lab.Start(t, "dhclient@"+p.NS, "ip", "netns", "exec", p.NS, "dhclient", "-4", "-v", "-1", "-d",
		"-sf", "/bin/true", "-lf", leaseFile, "-pf", leaseFile+".pid", p.Iface)
	m := pr.Expect(`bound to (\d+\.\d+\.\d+\.\d+)`, 30*time.Second)
	pr.Signal(t, syscall.SIGTERM)
	return m[1]
}

// udhcpcLease runs busybox's udhcpc once on peer p (-q: quit once bound,
// -s /bin/true: configure nothing) and returns the address it got.
func udhcpcLease(t testing.TB, p *lab.Peer) string {
	t.Helper()
	out, err := p.Exec(t, 40*time.Second, "udhcpc", "-i", p.Iface, "-n", "-q", "-f", "-s", "/bin/true", "-t", "5", "-T", "2")
	m := regexp.MustCompile(`lease of (\d+\.\d+\.\d+\.\d+) obtained from 192\.0\.2\.1\b`).FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("udhcpc in %s: %v\n%s", p.NS, err, out)
	}
	return m[1]
}

// dhcpClientPeer is a peer with a fixed MAC and no address, as a host
// before DHCP.
func dhcpClientPeer(t testing.TB, l *lab.Lab, addr, mac string) *lab.Peer {
	p := l.Peer(t, addr)
	p.SetMAC(t, mac)
	lab.Run(t, "ip", "-n", p.NS, "addr", "flush", "dev", p.Iface)
	return p
}

// TestServeFullDHCP: `ramboot serve --dhcp full` hands out addresses from
// its range to real clients (isc dhclient, busybox udhcpc), a static one
// from nodes.yaml, keeps leases across a kill -9, and refuses bad
// configurations with clear errors.
func TestServeFullDHCP(t *testing.T) {
	lab.Need(t, "dhclient", "isc-dhcp-client")
	lab.Need(t, "udhcpc", "udhcpc")
	l := lab.New(t)
	src, _ := cache.Image(t, "virt")

	// Configurations refused before anything listens.
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--dhcp", "full"}, 2, "--dhcp full needs an explicit --range"},
		{[]string{"--interface", "nope0"}, 1, "--interface nope0: "},
		{[]string{"--dhcp", "full", "--range", "198.51.100.10-198.51.100.20"}, 1, "is not inside br0's network 192.0.2.0/24"},
		{[]string{"--dhcp", "full", "--range", "192.0.2.100"}, 1, "--range \"192.0.2.100\": want FROM-TO"},
	} {
		args := append(l.ServeArgs(t, src, "--lease-file", filepath.Join(l.Dir, "refused.json")), tc.args...)
		out, err := netnstest.Exec(l.NS, 15*time.Second, args[3], args[4:]...)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("serve %s: %v, output %q; want exit status %d and %q", strings.Join(tc.args, " "), err, out, tc.code, tc.want)
		}
		t.Logf("serve %s: %s", strings.Join(tc.args, " "), strings.TrimSpace(out))
	}

	nodes := filepath.Join(l.Dir, "nodes.yaml")
	lab.WriteFile(t, nodes, "nodes:\n  - mac: 02:00:00:00:00:07\n    hostname: static-7\n    address: 192.0.2.50\n")
	leases := filepath.Join(l.Dir, "leases.json")
	args := []string{"--dhcp", "full", "--range", "192.0.2.100-192.0.2.110", "--nodes", nodes, "--lease-file", leases}
	srv := l.Serve(t, src, args...)

	u := dhcpClientPeer(t, l, "192.0.2.201", "02:00:00:00:00:01")
	d := dhcpClientPeer(t, l, "192.0.2.202", "02:00:00:00:00:02")
	s := dhcpClientPeer(t, l, "192.0.2.207", "02:00:00:00:00:07")
	ipU := udhcpcLease(t, u)
	dLease := filepath.Join(l.Dir, "dhclient-d.leases")
	ipD := dhclientLease(t, d, dLease)
	ipS := udhcpcLease(t, s)
	t.Logf("udhcpc %s, dhclient %s, static node %s", ipU, ipD, ipS)
	inRange := regexp.MustCompile(`^192\.0\.2\.(10[0-9]|110)$`)
	if !inRange.MatchString(ipU) || !inRange.MatchString(ipD) || ipU == ipD {
		t.Errorf("udhcpc got %s, dhclient %s: want two different addresses in 192.0.2.100-110", ipU, ipD)
	}
	if ipS != "192.0.2.50" {
		t.Errorf("the static node got %s, want 192.0.2.50 (nodes.yaml)", ipS)
	}
	if b, err := os.ReadFile(dLease); err != nil || !strings.Contains(string(b), "fixed-address "+ipD+";") {
		t.Errorf("dhclient's lease file: %v\n%s", err, b)
	}
	var ls []struct {
		MAC, IP string
		Static  bool
	}
	if err := json.Unmarshal(lab.ReadFile(t, leases), &ls); err != nil {
		t.Fatalf("lease file %s: %v", leases, err)
	}
	got := map[string]string{}
	for _, x := range ls {
		got[x.MAC] = fmt.Sprintf("%s static=%v", x.IP, x.Static)
	}
	for mac, want := range map[string]string{"02:00:00:00:00:01": ipU + " static=false", "02:00:00:00:00:02": ipD + " static=false", "02:00:00:00:00:07": "192.0.2.50 static=true"} {
		if got[mac] != want {
			t.Errorf("lease file: %s has %q, want %q (%s)", mac, got[mac], want, lab.ReadFile(t, leases))
		}
	}

	// kill -9 and start again with the same lease file: the same MAC gets
	// the same address (dhclient starts without its own lease, so it does
	// not ask for it), a new MAC another one.
	srv.Signal(t, syscall.SIGKILL)
	srv = l.Serve(t, src, args...)
	if again := dhclientLease(t, d, filepath.Join(l.Dir, "dhclient-d2.leases")); again != ipD {
		t.Errorf("after kill -9 and restart, dhclient (02:00:00:00:00:02) got %s, had %s", again, ipD)
	}
	n := dhcpClientPeer(t, l, "192.0.2.203", "02:00:00:00:00:03")
	ipN := dhclientLease(t, n, filepath.Join(l.Dir, "dhclient-n.leases"))
	if !inRange.MatchString(ipN) || ipN == ipU || ipN == ipD {
		t.Errorf("a new MAC got %s after the restart; udhcpc holds %s, dhclient %s", ipN, ipU, ipD)
	}
	e, _ := lab.WaitLog(t, srv, 0, 5*time.Second, "dhcp ack for the new MAC", func(e lab.LogLine) bool {
		return e.Msg() == "dhcp" && e.Str("event") == "ack" && e.Str("mac") == "02:00:00:00:00:03"
	})
	if e.Str("ip") != ipN {
		t.Errorf("serve logged %v for the new MAC, which got %s", e, ipN)
	}
}
