package serve

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/ramboot/ramboot/e2e/cache"
	"github.com/ramboot/ramboot/e2e/client"
	"github.com/ramboot/ramboot/e2e/lab"
)

func optCodes(p *dhcpv4.DHCPv4) []int {
	var cs []int
	for c := range p.Options {
		cs = append(cs, int(c))
	}
	sort.Ints(cs)
	return cs
}

// TestServePiReplay replays a Raspberry Pi 4's network boot against
// `ramboot serve` in proxy mode next to a DHCP server (dnsmasq) that hands
// out the addresses: the proxy offer must be byte-equal where it counts
// to dnsmasq's proxy reply (the known-good path), a REQUEST for the
// router's address must get no answer from the proxy, and the TFTP
// sequence the EEPROM runs (size probe with early terminate, files under
// the serial prefix, a missing signature file) must work, with per-serial
// and per-MAC overrides over the one shared tree.
func TestServePiReplay(t *testing.T) {
	l := lab.New(t)
	src, _ := cache.Image(t, "rpi4")
	tree := lab.CopyTree(t, src)
	router := l.Peer(t, "192.0.2.2")
	dns := l.DnsmasqOn(t, router, "--dhcp-range=192.0.2.100,192.0.2.150,12h", "--no-ping")
	srv := l.Serve(t, tree) // proxy is the default
	pi, c := client.DHCPPeer(t, l, "192.0.2.50", client.PiMAC)
	mac, _ := net.ParseMAC(client.PiMAC)

	// DISCOVER.
	disc, err := dhcpv4.NewDiscovery(mac, client.PiDHCPMods(t)...)
	if err != nil {
		t.Fatal(err)
	}
	var proxy, addr *dhcpv4.DHCPv4
	for _, p := range client.Exchange(t, c, disc, 3*time.Second) {
		t.Logf("answer to DISCOVER: %s", p.Summary())
		if p.MessageType() != dhcpv4.MessageTypeOffer {
			t.Errorf("answer to DISCOVER is a %s", p.MessageType())
			continue
		}
		switch sid := p.ServerIdentifier(); {
		case sid.Equal(net.ParseIP(lab.Addr)):
			if proxy != nil {
				t.Errorf("two offers from ramboot serve")
			}
			proxy = p
		case sid.Equal(net.ParseIP(router.Addr)):
			addr = p
		default:
			t.Errorf("offer from unknown server %v", sid)
		}
	}
	if proxy == nil || addr == nil {
		t.Fatalf("DISCOVER: proxy offer %v, address offer %v; want both", proxy != nil, addr != nil)
	}
	if !proxy.YourIPAddr.Equal(net.IPv4zero) || !proxy.ServerIPAddr.Equal(net.IPv4zero) {
		t.Errorf("proxy offer: yiaddr %v siaddr %v, want 0.0.0.0 and 0.0.0.0 as dnsmasq", proxy.YourIPAddr, proxy.ServerIPAddr)
	}
	for _, o := range []struct {
		code dhcpv4.OptionCode
		want []byte
	}{
		{dhcpv4.OptionVendorSpecificInformation, client.MustHex(t, client.DnsmasqPiOpt43)},
		{dhcpv4.OptionClassIdentifier, client.MustHex(t, client.DnsmasqPiOpt60)},
		{dhcpv4.OptionClientMachineIdentifier, client.MustHex(t, client.PiOpt97)},
		{dhcpv4.OptionServerIdentifier, net.ParseIP(lab.Addr).To4()},
		{dhcpv4.OptionDHCPMessageType, []byte{2}},
	} {
		if got := proxy.Options.Get(o.code); !bytes.Equal(got, o.want) {
			t.Errorf("proxy offer option %d = %x, want %x (dnsmasq's)", o.code.Code(), got, o.want)
		}
	}
	if got := optCodes(proxy); !equalInts(got, []int{43, 53, 54, 60, 97}) {
		t.Errorf("proxy offer options %v, dnsmasq's proxy reply has [43 53 54 60 97]", got)
	}
	if a := addr.YourIPAddr.To4(); a == nil || a[3] < 100 || a[3] > 150 {
		t.Fatalf("dnsmasq's offer has address %v", addr.YourIPAddr)
	}
	e, _ := lab.WaitLog(t, srv, 0, 5*time.Second, "dhcp offer", func(e lab.LogLine) bool { return e.Msg() == "dhcp" && e.Str("event") == "offer" })
	if e.Str("kind") != "pi-bootloader" || e.Str("serial") != client.PiSerial || e.Str("mac") != client.PiMAC {
		t.Errorf("serve's log for the DISCOVER: %v", e)
	}

	// REQUEST the router's address: dnsmasq ACKs, the proxy stays silent
	// (the client chose another server; dnsmasq's proxy answers no REQUEST
	// on port 67 either).
	req, err := dhcpv4.NewRequestFromOffer(addr, client.PiDHCPMods(t)...)
	if err != nil {
		t.Fatal(err)
	}
	var ack *dhcpv4.DHCPv4
	for _, p := range client.Exchange(t, c, req, 2*time.Second) {
		t.Logf("answer to REQUEST: %s", p.Summary())
		if !p.ServerIdentifier().Equal(net.ParseIP(router.Addr)) {
			t.Errorf("a REQUEST for %v from %v got an answer from %v (%s, yiaddr %v)", addr.YourIPAddr, router.Addr, p.ServerIdentifier(), p.MessageType(), p.YourIPAddr)
			continue
		}
		if p.MessageType() == dhcpv4.MessageTypeAck {
			ack = p
		}
	}
	if ack == nil || !ack.YourIPAddr.Equal(addr.YourIPAddr) {
		t.Fatalf("no ACK for %v from dnsmasq", addr.YourIPAddr)
	}
	dns.Expect(`DHCPACK\(eth0\) `+strings.ReplaceAll(ack.YourIPAddr.String(), ".", `\.`)+` `+client.PiMAC, 5*time.Second)
	piIP := ack.YourIPAddr.String()
	lab.Run(t, "ip", "-n", pi.NS, "addr", "add", piIP+"/24", "dev", pi.Iface)

	// TFTP, to the proxy's server identifier (no siaddr, no option 66).
	tftpServer := proxy.ServerIdentifier().String() + ":69"
	pc := client.TFTP{NS: pi.NS, Server: tftpServer, Blksize: 1024, Tsize: true}
	probe := pc
	probe.EarlyTerminate = true
	r, err := probe.Get(client.PiSerial + "/start4.elf")
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(filepath.Join(tree, "start4.elf")); r.Tsize() != st.Size() || r.OACK["blksize"] != "1024" || r.ErrCode != -1 {
		t.Errorf("size probe of %s/start4.elf: OACK %v, ERROR %d; want tsize %d, blksize 1024", client.PiSerial, r.OACK, r.ErrCode, st.Size())
	}
	e, _ = lab.TFTPLog(t, srv, 0, client.PiSerial+"/start4.elf")
	if e.Str("kind") != "early-terminate" || e.Str("level") != "INFO" || e["err"] != nil {
		t.Errorf("serve logged the Pi's size probe as %v, want kind early-terminate at INFO, no err", e)
	}

	fetch := func(name string, want []byte) {
		t.Helper()
		r, err := pc.Get(name)
		if err != nil {
			t.Errorf("tftp %s: %v", name, err)
			return
		}
		if r.ErrCode != -1 {
			t.Errorf("tftp %s: ERROR %d %q", name, r.ErrCode, r.ErrMsg)
			return
		}
		lab.SameBytes(t, "tftp "+name, r.Data, want)
		if r.Tsize() != int64(len(want)) {
			t.Errorf("tftp %s: OACK tsize %q, want %d", name, r.OACK["tsize"], len(want))
		}
		e, _ := lab.TFTPLog(t, srv, 0, name)
		if e.Str("kind") != "served" || e.Str("blksize") != "1024" || e.Str("remote") != piIP {
			t.Errorf("serve's log for %s: %v", name, e)
		}
	}
	t0 := time.Now()
	for _, f := range client.PiFetched(t, "rpi4") {
		fetch(client.PiSerial+"/"+f, lab.ReadFile(t, filepath.Join(src, f)))
	}
	t.Logf("Pi TFTP sequence (lock-step, blksize 1024): %v", time.Since(t0).Round(time.Millisecond))

	r, err = pc.Get(client.PiSerial + "/pieeprom.sig")
	if err != nil || r.ErrCode != 1 {
		t.Errorf("tftp %s/pieeprom.sig: %v, ERROR %d %q; want ERROR 1 (not found)", client.PiSerial, err, r.ErrCode, r.ErrMsg)
	}
	if e, _ := lab.TFTPLog(t, srv, 0, client.PiSerial+"/pieeprom.sig"); e.Str("kind") != "not-found" {
		t.Errorf("serve's log for pieeprom.sig: %v, want kind not-found", e)
	}

	// Per-node overrides over the shared tree: a file in <serial>/ or in
	// <mac with dashes>/ wins for that node only.
	shared := lab.ReadFile(t, filepath.Join(src, "cmdline.txt"))
	lab.WriteFile(t, filepath.Join(tree, client.PiSerial, "cmdline.txt"), "console=ttyS1,115200 per-serial\n")
	lab.WriteFile(t, filepath.Join(tree, "dc-a6-32-01-36-c2", "cmdline.txt"), "console=ttyS1,115200 per-mac\n")
	fetch("dc-a6-32-01-36-c2/cmdline.txt", []byte("console=ttyS1,115200 per-mac\n"))
	fetch("dc-a6-32-01-36-c2/start4cd.elf", lab.ReadFile(t, filepath.Join(src, "start4cd.elf")))
	fetch("0123abcd/cmdline.txt", shared) // another Pi
	fetch(client.PiSerial+"/config.txt", lab.ReadFile(t, filepath.Join(src, "config.txt")))
	fetch(client.PiSerial+"/cmdline.txt", []byte("console=ttyS1,115200 per-serial\n"))

	// The status board: one entry for this Pi, from DHCP to its last
	// TFTP request, known by MAC and serial. serve records a transfer
	// when the last ACK comes, which may be after the client is done:
	// the board is read until it has the last one (at most 5 s).
	var mine []lab.Node
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		mine = mine[:0]
		for _, n := range lab.Status(t, pi) {
			if n.MAC == client.PiMAC || n.Serial == client.PiSerial || (n.IP == piIP && n.Serial == "") {
				mine = append(mine, n)
			}
		}
		if (len(mine) == 1 && mine[0].Detail == client.PiSerial+"/cmdline.txt") || time.Now().After(deadline) {
			break
		}
	}
	if len(mine) != 1 {
		t.Fatalf("/status.json has %d entries for the Pi, want 1: %+v", len(mine), mine)
	}
	n := mine[0]
	if n.MAC != client.PiMAC || n.Serial != client.PiSerial || n.Kind != "pi-bootloader" || n.IP != piIP {
		t.Errorf("/status.json: %+v; want mac %s, serial %s, kind pi-bootloader, ip %s", n, client.PiMAC, client.PiSerial, piIP)
	}
	if n.Stage != "tftp served" || n.Detail != client.PiSerial+"/cmdline.txt" {
		t.Errorf("/status.json: last stage %q %q, want \"tftp served\" %q", n.Stage, n.Detail, client.PiSerial+"/cmdline.txt")
	}
	var stages []string
	for _, s := range n.Steps {
		stages = append(stages, s.Stage+" "+s.Detail)
	}
	all := strings.Join(stages, "\n")
	for _, want := range []string{"dhcp offer pi boot menu", "tftp early-terminate " + client.PiSerial + "/start4.elf (size probe)",
		"tftp not-found " + client.PiSerial + "/pieeprom.sig", "tftp served dc-a6-32-01-36-c2/cmdline.txt"} {
		if !strings.Contains(all, want) {
			t.Errorf("/status.json steps lack %q:\n%s", want, all)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
