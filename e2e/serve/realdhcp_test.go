package serve

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/ramboot/ramboot/e2e/cache"
	"github.com/ramboot/ramboot/e2e/client"
	"github.com/ramboot/ramboot/e2e/lab"
)

// Issue 13 point 2: the sites' own DHCP servers (Debian's kea-dhcp4,
// isc-dhcp-server's dhcpd, dnsmasq), each running the configuration
// `ramboot dhcp-config` prints, unedited, inside the lab; the tree served
// by tftpd-hpa and a plain HTTP server (python3 -m http.server), not by
// `ramboot serve`. Each server gets the Pi 4 bootloader's replayed
// exchange and a virt guest whose init must act on its option 224; Kea
// also boots an NFS root, ISC dhcpd a BIOS PC through QEMU's iPXE ROM.

// rdFormats are the servers, in the order the table prints them.
var rdFormats = []string{"kea", "isc", "dnsmasq"}

// rdTimes collects DISCOVER-to-224 times per server for the table.
var rdTimes = struct {
	sync.Mutex
	m map[string]time.Duration
}{m: map[string]time.Duration{}}

// rdDHCPConfig runs `ramboot dhcp-config` for the lab (server 192.0.2.1
// on br0, addresses 192.0.2.100-150) and returns the file it wrote.
func rdDHCPConfig(t testing.TB, l *lab.Lab, format, nodes string, extra ...string) string {
	t.Helper()
	args := append([]string{"dhcp-config", "--format", format, "--nodes", nodes,
		"--server", lab.Addr, "--interface", "br0", "--range", "192.0.2.100-192.0.2.150"}, extra...)
	out, err := exec.Command(cache.Ramboot(t), args...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("ramboot %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	cf := filepath.Join(l.Dir, "ramboot-"+format+".conf")
	if err := os.WriteFile(cf, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return cf
}

// rdPrivate runs argv in the lab's namespace and in a private mount
// namespace where the state directories the generated configs name
// (/var/lib/kea, /var/lib/misc) are on an empty tmpfs: the server
// runs its config as printed, and nothing lands on this machine.
func rdPrivate(l *lab.Lab, argv ...string) []string {
	script := `mount -t tmpfs rbt-state /var/lib && mkdir -p /var/lib/kea /var/lib/misc /var/lib/dhcp && exec "$@"`
	return append([]string{"netns", "exec", l.NS, "unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"}, argv...)
}

// rdStartDHCP runs the DHCP server of format on br0 with the config cf
// and returns once it serves.
func rdStartDHCP(t testing.TB, l *lab.Lab, format, cf string) *lab.Proc {
	t.Helper()
	var p *lab.Proc
	switch format {
	case "kea":
		kea := lab.Sbin(t, "kea-dhcp4", "kea-dhcp4-server")
		// Kea opens no socket on an interface that is not running, and
		// br0 runs only once a port has carrier: an idle host on the
		// bridge, as any real network has, before QEMU's tap comes up.
		l.Peer(t, "192.0.2.250")
		p = lab.Start(t, "kea-dhcp4", "ip", rdPrivate(l, "env", "KEA_LOCKFILE_DIR="+l.Dir, "KEA_PIDFILE_DIR="+l.Dir, kea, "-c", cf)...)
		p.Expect(`DHCP4_STARTED`, 20*time.Second)
	case "isc":
		dhcpd := lab.Sbin(t, "dhcpd", "isc-dhcp-server")
		leases := filepath.Join(l.Dir, "dhcpd.leases")
		lab.WriteFile(t, leases, "")
		p = lab.Start(t, "dhcpd", "ip", rdPrivate(l, dhcpd, "-4", "-f", "-d", "-cf", cf, "-lf", leases,
			"-pf", filepath.Join(l.Dir, "dhcpd.pid"), "br0")...)
		p.Expect(`Server starting service`, 20*time.Second)
	case "dnsmasq":
		lab.Need(t, "dnsmasq", "dnsmasq")
		p = lab.Start(t, "dnsmasq", "ip", rdPrivate(l, "dnsmasq", "--keep-in-foreground", "--conf-file="+cf,
			"--log-dhcp", "--log-facility=-", "--user=root", "--group=root",
			"--pid-file="+filepath.Join(l.Dir, "dnsmasq.pid"))...)
		p.Expect(`DHCP, IP range`, 20*time.Second)
	default:
		t.Fatalf("no DHCP server %q", format)
	}
	return p
}

// rdHTTPD serves root with Python's plain HTTP server on 192.0.2.1:8080.
func rdHTTPD(t testing.TB, l *lab.Lab, root string) *lab.Proc {
	t.Helper()
	lab.Need(t, "python3", "python3")
	p := lab.Start(t, "http.server", "ip", "netns", "exec", l.NS, "python3", "-m", "http.server", "8080",
		"--bind", lab.Addr, "--directory", root)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := lab.Get(l.NS, "http://"+lab.Addr+":8080/"); err == nil {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("python3 -m http.server did not answer within 20s:\n%s", p.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// rdDiscoverTo224 is, from the guest's own clock (the init's stage
// lines), the time from its first DHCP DISCOVER to the line saying what
// option 224 made it do.
func rdDiscoverTo224(t testing.TB, console string) time.Duration {
	t.Helper()
	stamp := func(re string) (float64, int) {
		m := regexp.MustCompile(`ramboot \[\s*(\d+)\.(\d{3})\] ` + re).FindStringSubmatchIndex(console)
		if m == nil {
			t.Fatalf("no %q line on the console", re)
		}
		s, _ := strconv.Atoi(console[m[2]:m[3]])
		ms, _ := strconv.Atoi(console[m[4]:m[5]])
		return float64(s) + float64(ms)/1000, m[1]
	}
	d, _ := stamp(`network: \S+: DHCP DISCOVER`)
	a, _ := stamp(`224: `)
	if a < d {
		t.Fatalf("the 224 line (%.3f) comes before the first DISCOVER (%.3f)", a, d)
	}
	return time.Duration((a - d) * float64(time.Second)).Round(time.Millisecond)
}

// rdNodes writes the lab's inventory: the virt guest with option 224
// value, and the replayed Pi 4 (by MAC and serial, no option 224).
func rdNodes(t testing.TB, l *lab.Lab, value string) string {
	t.Helper()
	nodes := filepath.Join(l.Dir, "nodes.yaml")
	lab.WriteFile(t, nodes, fmt.Sprintf("nodes:\n  - mac: 52:54:00:12:34:56\n    hostname: virt-1\n    option224: %q\n"+
		"  - mac: %s\n    serial: %s\n    hostname: pi4-1\n", value, client.PiMAC, client.PiSerial))
	return nodes
}

// TestRealDHCP: for each server, the Pi 4 replay and a virt guest whose
// option 224 says shell; then the same guest against `ramboot serve
// --dhcp full` for the timing table.
func TestRealDHCP(t *testing.T) {
	lab.Skip(t)
	virt, _ := cache.Image(t, "virt")
	rpi, _ := cache.Image(t, "rpi4")
	for _, format := range rdFormats {
		t.Run(format, func(t *testing.T) {
			l := lab.New(t)
			// The Pi 4 bootloader asks for <serial>/file: the classic
			// tftpd-hpa recipe links the serial's directory to the tree.
			tree := lab.CopyTree(t, rpi)
			if err := os.Symlink(".", filepath.Join(tree, client.PiSerial)); err != nil {
				t.Fatal(err)
			}
			l.TFTPDHPA(t, tree)
			rdHTTPD(t, l, tree)
			nodes := rdNodes(t, l, "shell")
			pi, c := client.DHCPPeer(t, l, "192.0.2.50", client.PiMAC)
			rdStartDHCP(t, l, format, rdDHCPConfig(t, l, format, nodes))

			vm := l.Boot(t, virt, "")
			rdPiReplay(t, format, rpi, pi, c)

			vm.Expect(`network: \S+: lease 192\.0\.2\.1[0-5]\d\S* from 192\.0\.2\.1 .*option 224 "shell"`, 120*time.Second)
			vm.Expect(`224: option 224 says shell`, 60*time.Second)
			vm.ShellRoundTrip()
			d := rdDiscoverTo224(t, vm.Output())
			rdTimes.Lock()
			rdTimes.m[format] = d
			rdTimes.Unlock()
			t.Logf("%s: DISCOVER to option 224 acted on: %v", format, d)
			vm.NoPanic()
		})
	}
	t.Run("ramboot-serve", func(t *testing.T) {
		l := lab.New(t)
		nodes := rdNodes(t, l, "shell")
		l.Serve(t, virt, "--dhcp", "full", "--range", "192.0.2.100-192.0.2.150", "--nodes", nodes)
		vm := l.Boot(t, virt, "")
		vm.Expect(`224: option 224 says shell`, 120*time.Second)
		vm.ShellRoundTrip()
		d := rdDiscoverTo224(t, vm.Output())
		rdTimes.Lock()
		rdTimes.m["ramboot serve"] = d
		rdTimes.Unlock()
		vm.NoPanic()
	})
	rdTimes.Lock()
	defer rdTimes.Unlock()
	base, ok := rdTimes.m["ramboot serve"]
	var b strings.Builder
	fmt.Fprintf(&b, "virt guest, first DHCP DISCOVER to option 224 acted on (guest clock), same run:\n")
	fmt.Fprintf(&b, "  %-14s %10s %s\n", "server", "time", "vs ramboot serve")
	for _, n := range append(append([]string{}, rdFormats...), "ramboot serve") {
		d, have := rdTimes.m[n]
		if !have {
			fmt.Fprintf(&b, "  %-14s %10s\n", n, "(failed)")
			continue
		}
		ratio := "-"
		if ok && base > 0 {
			ratio = fmt.Sprintf("%.2fx", float64(d)/float64(base))
		}
		fmt.Fprintf(&b, "  %-14s %10v %s\n", n, d, ratio)
	}
	t.Logf("%s", b.String())
}

// rdPiReplay replays the Pi 4 bootloader against the lab's DHCP server
// (full mode: one offer with the address and the boot menu): options 43
// and 60 must be dnsmasq's proxy bytes, next-server and option 66 the
// tree's server; then it fetches its files from tftpd-hpa under its
// serial, byte for byte.
func rdPiReplay(t *testing.T, format, src string, pi *lab.Peer, c *nclient4.Client) {
	t.Helper()
	mac, _ := net.ParseMAC(client.PiMAC)
	disc, err := dhcpv4.NewDiscovery(mac, client.PiDHCPMods(t)...)
	if err != nil {
		t.Fatal(err)
	}
	// The bootloader sends its DISCOVER again until an offer comes:
	// dnsmasq and dhcpd first ping the address they mean to offer
	// (dnsmasq waits up to 3 s, longer than the client listens).
	var offer *dhcpv4.DHCPv4
	for try := 1; try <= 3 && offer == nil; try++ {
		for _, p := range client.Exchange(t, c, disc, 3*time.Second) {
			t.Logf("%s: answer to the Pi's DISCOVER (try %d): %s", format, try, p.Summary())
			if p.MessageType() == dhcpv4.MessageTypeOffer && offer == nil {
				offer = p
			}
		}
	}
	if offer == nil {
		t.Fatalf("%s: no offer to the Pi 4's DISCOVER, sent three times", format)
	}
	for _, o := range []struct {
		code dhcpv4.OptionCode
		want []byte
	}{
		{dhcpv4.OptionVendorSpecificInformation, client.MustHex(t, client.DnsmasqPiOpt43)},
		{dhcpv4.OptionClassIdentifier, client.MustHex(t, client.DnsmasqPiOpt60)},
		{dhcpv4.OptionTFTPServerName, []byte(lab.Addr)},
	} {
		if got := bytes.TrimRight(offer.Options.Get(o.code), "\x00"); !bytes.Equal(got, o.want) {
			t.Errorf("%s: offer to the Pi: option %d = %x, want %x (dnsmasq's)", format, o.code.Code(), got, o.want)
		}
	}
	if !offer.ServerIPAddr.Equal(net.ParseIP(lab.Addr)) {
		t.Errorf("%s: offer to the Pi: next-server %v, want %s", format, offer.ServerIPAddr, lab.Addr)
	}
	if a := offer.YourIPAddr.To4(); a == nil || a[3] < 100 || a[3] > 150 {
		t.Fatalf("%s: offer to the Pi has address %v, want one of 192.0.2.100-150", format, offer.YourIPAddr)
	}
	if v := client.Opt224(offer); v != "" {
		t.Errorf("%s: the Pi bootloader got option 224 %q; its node has none", format, v)
	}
	req, err := dhcpv4.NewRequestFromOffer(offer, client.PiDHCPMods(t)...)
	if err != nil {
		t.Fatal(err)
	}
	var ack *dhcpv4.DHCPv4
	for _, p := range client.Exchange(t, c, req, 3*time.Second) {
		if p.MessageType() == dhcpv4.MessageTypeAck {
			ack = p
		}
	}
	if ack == nil || !ack.YourIPAddr.Equal(offer.YourIPAddr) {
		t.Fatalf("%s: no ACK for the Pi's %v", format, offer.YourIPAddr)
	}
	if got := ack.Options.Get(dhcpv4.OptionVendorSpecificInformation); !bytes.Equal(got, client.MustHex(t, client.DnsmasqPiOpt43)) {
		t.Errorf("%s: ACK to the Pi: option 43 = %x, want dnsmasq's %s", format, got, client.DnsmasqPiOpt43)
	}
	lab.Run(t, "ip", "-n", pi.NS, "addr", "add", ack.YourIPAddr.String()+"/24", "dev", pi.Iface)
	tc := client.TFTP{NS: pi.NS, Server: offer.ServerIPAddr.String() + ":69", Blksize: 1024, Tsize: true}
	probe := tc
	probe.EarlyTerminate = true
	if r, err := probe.Get(client.PiSerial + "/start4.elf"); err != nil || r.Tsize() != lab.FileSize(t, filepath.Join(src, "start4.elf")) {
		t.Errorf("%s: tftpd-hpa size probe of %s/start4.elf: %v, OACK %v", format, client.PiSerial, err, r.OACK)
	}
	t0 := time.Now()
	files := client.PiFetched(t, "rpi4")
	for _, f := range files {
		r, err := tc.Get(client.PiSerial + "/" + f)
		if err != nil || r.ErrCode != -1 {
			t.Errorf("%s: tftp %s/%s from tftpd-hpa: %v, ERROR %d %q", format, client.PiSerial, f, err, r.ErrCode, r.ErrMsg)
			continue
		}
		lab.SameBytes(t, "tftpd-hpa "+client.PiSerial+"/"+f, r.Data, lab.ReadFile(t, filepath.Join(src, f)))
	}
	t.Logf("%s: the Pi's TFTP sequence from tftpd-hpa: %v", format, time.Since(t0).Round(time.Millisecond))
}

// TestRealDHCPKeaNFSRoot: Kea's option 224 names the node's own NFS
// export (nfs-ganesha, the Gentoo diskless layout /srv/nodes/<name>); the
// virt init mounts it and switch_roots.
func TestRealDHCPKeaNFSRoot(t *testing.T) {
	lab.Skip(t)
	virt, _ := cache.Image(t, "virt")
	l := lab.New(t)
	root := cache.NFSRoot(t, "arm64")
	l.Ganesha(t, lab.Export{Path: root, Pseudo: "/srv/nodes/virt-1"})
	nodes := rdNodes(t, l, "nfs://{{.Server}}/srv/nodes/{{.Hostname}}?vers=3")
	rdStartDHCP(t, l, "kea", rdDHCPConfig(t, l, "kea", nodes))
	vm := l.Boot(t, virt, "")
	vm.Expect(`option 224 "nfs://192\.0\.2\.1/srv/nodes/virt-1\?vers=3"`, 120*time.Second)
	vm.Expect(`224: NFS root`, 60*time.Second)
	vm.Expect(`NFSROOT-OK`, 90*time.Second)
	vm.Expect(`RW-OK /ramboot-probe`, 30*time.Second)
	if b, err := os.ReadFile(filepath.Join(root, "ramboot-probe")); err != nil || !strings.HasPrefix(string(b), "written by nfsinit") {
		t.Errorf("the guest's probe file is not in its export: %q, %v", b, err)
	}
	t.Logf("kea: DISCOVER to NFS root acted on: %v", rdDiscoverTo224(t, vm.Output()))
	vm.NoPanic()
}

// TestRealDHCPISCPCBIOS: a BIOS PC through QEMU's iPXE ROM, with ISC
// dhcpd's generated config: iPXE gets the script URL
// /boot/<mac>.ipxe, which a plain HTTP server serves from the static
// scripts `ramboot pxelinux --ipxe` wrote, and boots to the shell.
func TestRealDHCPISCPCBIOS(t *testing.T) {
	lab.Skip(t)
	pc, _ := cache.Image(t, "pc")
	l := lab.New(t)
	tree := lab.CopyTree(t, pc)
	const mac = "52:54:00:12:34:70"
	nodes := filepath.Join(l.Dir, "nodes.yaml")
	lab.WriteFile(t, nodes, "nodes:\n  - mac: "+mac+"\n    hostname: pc-10\n    option224: shell\n")
	if out, err := exec.Command(cache.Ramboot(t), "pxelinux", "--root", tree, "--nodes", nodes, "--server", lab.Addr, "--ipxe").CombinedOutput(); err != nil {
		t.Fatalf("ramboot pxelinux --ipxe: %v\n%s", err, out)
	}
	l.TFTPDHPA(t, tree)
	httpd := rdHTTPD(t, l, tree)
	srv := rdStartDHCP(t, l, "isc", rdDHCPConfig(t, l, "isc", nodes))
	t0 := time.Now()
	vm := l.BootPC(t, mac, false)
	vm.Expect(`cmdline: .*ramboot\.224=shell ramboot\.hostname=pc-10 initrd=rootfs\.cpio\.gz`, 240*time.Second)
	vm.Expect(`224: option 224 says shell`, 60*time.Second)
	vm.ShellRoundTripOn("ttyS0")
	t.Logf("BIOS PC with ISC dhcpd, tftpd-hpa and http.server: power-on to shell in %v", time.Since(t0).Round(time.Millisecond))
	// The script came from the plain HTTP server, and the kernel and
	// initramfs after it.
	out := httpd.Output()
	for _, p := range []string{"/boot/52-54-00-12-34-70.ipxe", "/vmlinuz", "/rootfs.cpio.gz"} {
		if !regexp.MustCompile(`"GET ` + regexp.QuoteMeta(p) + `[ ?].* 200 `).MatchString(out) {
			t.Errorf("http.server did not serve %s:\n%s", p, out)
		}
	}
	if !strings.Contains(srv.Output(), "DHCPACK on") {
		t.Errorf("dhcpd logged no DHCPACK:\n%s", srv.Output())
	}
	vm.NoPanic()
}
