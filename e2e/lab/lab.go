// Package lab is the e2e tests' network lab: a private network namespace
// with a bridge and a tap for a QEMU guest (Lab), peer hosts on it (Peer),
// the real servers tests run there (dnsmasq, nfs-ganesha, an HTTP
// handler), the processes they start (Proc: output, Expect, Stop, by pid)
// and samplers of a server's memory, threads and CPU. Namespaces come from
// internal/netnstest; nothing here runs on this machine's own interfaces.
//
//	l := lab.New(t)                 // rbt-<pid>-<n>: br0 192.0.2.1/24, tap0
//	p := l.Peer(t, "192.0.2.9")     // another host on br0: the router
//	l.DnsmasqOn(t, p, "--dhcp-range=192.0.2.100,192.0.2.150,12h")
//	srv := l.Serve(t, tree, "--dhcp", "proxy") // ramboot serve on br0
//	vm := l.Boot(t, tree, "")       // a virt guest on tap0
//	out, err := lab.Get(p.NS, "http://192.0.2.1:8080/status.json")
package lab

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ramboot/ramboot/e2e/qemu"
	"github.com/ramboot/ramboot/internal/netnstest"
	"github.com/ramboot/ramboot/internal/testenv"
)

// A Lab is a private network for a QEMU guest: a network namespace
// (rbt-<pid>-<n>) holding a bridge br0 with 192.0.2.1/24 (RFC 5737) and a
// tap device tap0 on it for QEMU, with no route out. Servers (dnsmasq,
// HTTP, nfs-ganesha) run inside it, so nothing here ever answers or sends
// DHCP on this machine's own interfaces. Everything the lab starts is
// stopped, by process id, and the namespaces are deleted when the test
// ends.
//
// Peer namespaces joined to br0 by a veth pair stand for other hosts on
// the guest's network (a second DHCP server, a probing client).
type Lab struct {
	NS  string // the namespace with br0 and tap0
	Dir string // scratch space for configs, leases, logs

	peers int
}

// Addr is the lab host's address on br0.
const Addr = "192.0.2.1"

// GuestMAC is the MAC of the guest Boot starts.
const GuestMAC = "52:54:00:12:34:56"

// bridgeMAC is br0's own MAC (locally administered).
const bridgeMAC = "02:72:62:00:00:01"

// New creates the namespace, br0 and tap0. It needs root and iproute2.
func New(t testing.TB) *Lab {
	t.Helper()
	Skip(t)
	l := &Lab{NS: netnstest.New(t), Dir: t.TempDir()}
	for _, args := range [][]string{
		// A bridge takes the lowest MAC of its ports unless it has its
		// own: a peer added later (a random veth MAC) would change it
		// under the neighbour caches of the hosts already there, whose
		// frames then go to a port that is down until their entry
		// expires (seen: a host's report timed out after attackers
		// joined). So br0's MAC is set, and never changes.
		{"link", "add", "br0", "address", bridgeMAC, "type", "bridge"},
		{"addr", "add", Addr + "/24", "dev", "br0"},
		{"link", "set", "br0", "up"},
		{"tuntap", "add", "dev", "tap0", "mode", "tap"},
		{"link", "set", "tap0", "master", "br0"},
		{"link", "set", "tap0", "up"},
	} {
		Run(t, "ip", append([]string{"-n", l.NS}, args...)...)
	}
	return l
}

// Skip skips where the lab cannot run: in -short runs, and without root
// or iproute2. Tests call it before they build anything.
func Skip(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("lab scenarios are end-to-end tests: not in -short")
	}
	netnstest.Skip(t)
}

// Peer is another host on the lab's bridge, in a namespace of its own.
type Peer struct {
	NS, Iface, Addr string
	Outer           string // its veth's end on br0 ("" for Main)
}

// Peer creates a namespace joined to br0 by a veth pair whose inner end,
// eth0, has addr/24.
func (l *Lab) Peer(t testing.TB, addr string) *Peer {
	t.Helper()
	l.peers++
	outer := fmt.Sprintf("vp%d", l.peers)
	p := &Peer{NS: netnstest.New(t), Iface: "eth0", Addr: addr, Outer: outer}
	netnstest.Veth(t, l.NS, outer, p.NS, p.Iface)
	Run(t, "ip", "-n", l.NS, "link", "set", outer, "master", "br0")
	Run(t, "ip", "-n", l.NS, "link", "set", outer, "up")
	Run(t, "ip", "-n", p.NS, "addr", "add", addr+"/24", "dev", p.Iface)
	Run(t, "ip", "-n", p.NS, "link", "set", p.Iface, "up")
	// Wait until both ends are up and the bridge port forwards.
	deadline := time.Now().Add(10 * time.Second)
	for {
		in, _ := netnstest.Exec(p.NS, 5*time.Second, "ip", "-o", "link", "show", p.Iface)
		br, _ := netnstest.Exec(l.NS, 5*time.Second, "bridge", "link", "show", "dev", outer)
		if strings.Contains(in, "state UP") && strings.Contains(br, "state forwarding") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("peer %s: link not up after 10s:\n%s\n%s", p.NS, in, br)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return p
}

// Main is the lab host itself as a Peer (br0, 192.0.2.1).
func (l *Lab) Main() *Peer { return &Peer{NS: l.NS, Iface: "br0", Addr: Addr} }

// Boot starts the virt image in QEMU inside the lab, on tap0, with the MAC
// 52:54:00:12:34:56.
func (l *Lab) Boot(t testing.TB, dir, extra string) *qemu.VM {
	t.Helper()
	return qemu.Boot(t, l.Guest(dir, extra))
}

// Guest is the virt guest Boot starts: the tree in dir, extra on the
// kernel command line, on tap0 with the MAC 52:54:00:12:34:56. A test
// changes it (memory, a disk, reboots) and boots it with qemu.Boot.
func (l *Lab) Guest(dir, extra string) qemu.Options {
	return qemu.Options{Board: "virt", NetNS: l.NS, Netdev: qemu.TapNetdev, MAC: GuestMAC,
		Kernel: filepath.Join(dir, "Image"), Initrd: filepath.Join(dir, "rootfs.cpio.gz"), Append: extra}
}

// Dnsmasq runs dnsmasq on the lab's br0 with args added to a DNS-less,
// config-less base; see DnsmasqOn.
func (l *Lab) Dnsmasq(t testing.TB, args ...string) *Proc {
	t.Helper()
	return l.DnsmasqOn(t, l.Main(), args...)
}

// DnsmasqOn runs dnsmasq in p's namespace, bound to p's interface only,
// logging DHCP to its output. args are long options as on the command
// line ("--dhcp-option=224,\"shell\""). It returns once dnsmasq says its DHCP is
// up.
func (l *Lab) DnsmasqOn(t testing.TB, p *Peer, args ...string) *Proc {
	t.Helper()
	Need(t, "dnsmasq", "dnsmasq")
	leases := filepath.Join(l.Dir, fmt.Sprintf("dnsmasq-%s.leases", p.NS))
	// args go into a config file, one per line without the "--": dnsmasq
	// strips the quotes of --dhcp-option=224,"a,b" only there (on the
	// command line they would be sent as part of the value).
	var conf strings.Builder
	for _, a := range args {
		fmt.Fprintln(&conf, strings.TrimPrefix(a, "--"))
	}
	cf := filepath.Join(l.Dir, fmt.Sprintf("dnsmasq-%s.conf", p.NS))
	if err := os.WriteFile(cf, []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"netns", "exec", p.NS, "dnsmasq",
		"--no-daemon", "--conf-file=" + cf, "--port=0",
		"--interface=" + p.Iface, "--bind-interfaces", "--except-interface=lo",
		"--dhcp-leasefile=" + leases, "--log-dhcp", "--log-facility=-",
		"--pid-file=" + filepath.Join(l.Dir, fmt.Sprintf("dnsmasq-%s.pid", p.NS)),
		"--user=root", "--group=root",
	}
	t.Logf("dnsmasq@%s config:\n%s", p.NS, conf.String())
	pr := Start(t, "dnsmasq@"+p.NS, "ip", base...)
	pr.Expect(`(?m)dnsmasq-dhcp.*: DHCP, (proxy on subnet|IP range)`, 15*time.Second)
	return pr
}

// HTTP serves h on 192.0.2.1:8080 inside the lab and returns the base URL.
func (l *Lab) HTTP(t testing.TB, h http.Handler) string {
	t.Helper()
	ln, err := netnstest.Listen(l.NS, "tcp", Addr+":8080")
	if err != nil {
		t.Fatalf("listen in %s: %v", l.NS, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + Addr + ":8080"
}

// Export is a directory that Ganesha serves.
type Export struct {
	Path   string // directory on this machine
	Pseudo string // path clients mount, for NFSv3 and v4 ("/export")
	RO     bool   // read-only export
}

// Ganesha serves exports over NFSv3 and NFSv4 on 192.0.2.1 from inside
// the  NFSv3 needs a portmapper (the client asks it for MOUNT's port),
// so rpcbind runs beside it; both run in a private mount namespace with
// a tmpfs on /run, so that rpcbind's socket (/run/rpcbind.sock), lock and
// warm-start files and Ganesha's registrations are this lab's alone.
// Ganesha has no NLM (clients mount with nolock, as ramboot's init does
// for v3), no grace period and no root squash.
func (l *Lab) Ganesha(t testing.TB, exports ...Export) *Proc {
	t.Helper()
	Need(t, "ganesha.nfsd", "nfs-ganesha and nfs-ganesha-vfs")
	Need(t, "rpcbind", "rpcbind")
	Need(t, "unshare", "util-linux")
	plugins := ganeshaPlugins(t)
	dir := filepath.Join(l.Dir, "ganesha")
	if err := os.MkdirAll(filepath.Join(dir, "recovery"), 0o755); err != nil {
		t.Fatal(err)
	}
	var conf strings.Builder
	fmt.Fprintf(&conf, `NFS_CORE_PARAM {
	Bind_addr = %s;
	Protocols = 3, 4;
	mount_path_pseudo = true;
	Enable_NLM = false;
	Enable_RQUOTA = false;
	Plugins_Dir = "%s";
}
NFSv4 {
	Graceless = true;
	RecoveryRoot = "%s";
}
LOG {
	Default_Log_Level = EVENT;
}
`, Addr, plugins, filepath.Join(dir, "recovery"))
	for i, e := range exports {
		access := "RW"
		if e.RO {
			access = "RO"
		}
		fmt.Fprintf(&conf, `EXPORT {
	Export_Id = %d;
	Path = "%s";
	Pseudo = "%s";
	Protocols = 3, 4;
	Transports = TCP, UDP;
	Access_Type = %s;
	Squash = No_Root_Squash;
	SecType = sys;
	FSAL { Name = VFS; }
}
`, i+1, e.Path, e.Pseudo, access)
	}
	cf := filepath.Join(dir, "ganesha.conf")
	if err := os.WriteFile(cf, []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	// sh stays the parent of both daemons: on TERM it stops them by
	// their pids and waits for them.
	script := `set -e
mount -t tmpfs rbt-run /run
mkdir -p /run/rpcbind /run/ganesha
rpcbind -f -w & r=$!
trap 'kill $r $g 2>/dev/null; wait' TERM INT
i=0; while [ ! -S /run/rpcbind.sock ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
ganesha.nfsd -F -L /dev/stdout -f "$1" -p "$2" & g=$!
wait $g
echo "ganesha.nfsd exited: $?"
kill $r 2>/dev/null; wait`
	pr := Start(t, "ganesha@"+l.NS, "ip", "netns", "exec", l.NS,
		"unshare", "--mount", "--propagation", "private",
		"sh", "-c", script, "sh", cf, filepath.Join(dir, "ganesha.pid"))
	pr.Expect(`NFS SERVER INITIALIZED`, 30*time.Second)
	// Ready means MOUNT is registered with the portmapper.
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := l.Exec(t, 10*time.Second, "rpcinfo", "-p", Addr)
		if err == nil && strings.Contains(out, "mountd") && strings.Contains(out, "nfs") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ganesha: MOUNT not registered with rpcbind within 20s: %v\n%s", err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return pr
}

// ganeshaPlugins finds the directory of the FSAL plugins (libfsalvfs.so).
func ganeshaPlugins(t testing.TB) string {
	t.Helper()
	m, _ := filepath.Glob("/usr/lib/*/ganesha/libfsalvfs.so")
	m2, _ := filepath.Glob("/usr/lib*/ganesha/libfsalvfs.so")
	m = append(m, m2...)
	if len(m) == 0 {
		testenv.Skip(t, "libfsalvfs.so not found: `make test` installs nfs-ganesha-vfs (e2e/deps.sh)")
	}
	return filepath.Dir(m[0])
}

// Exec runs a command inside the lab namespace, bounded by timeout, and
// returns its combined output.
func (l *Lab) Exec(t testing.TB, timeout time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	return netnstest.Exec(l.NS, timeout, name, args...)
}

// Sbin finds a daemon Debian puts in /usr/sbin, also when PATH has no
// sbin; missing, it skips t (fails it under RAMBOOT_STRICT=1): pkg
// installs it.
func Sbin(t testing.TB, name, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		if _, err := os.Stat(filepath.Join(d, name)); err == nil {
			return filepath.Join(d, name)
		}
	}
	Need(t, name, pkg)
	return ""
}

// TFTPDHPA runs tftpd-hpa in the foreground on 192.0.2.1:69, chrooted
// (-s) to root, and returns once it listens. It forks a child per
// transfer. Its -B (largest blksize granted) defaults to 65464, so the
// clients' 1024 and 1468 are granted as asked; tftp-hpa 5.2 has no
// windowsize (RFC 7440).
func (l *Lab) TFTPDHPA(t testing.TB, root string) *Proc {
	t.Helper()
	p := StartIn(t, l.NS, "tftpd-hpa", Sbin(t, "in.tftpd", "tftpd-hpa"), "-L", "-s", root, "-a", Addr+":69")
	p.WaitUDPPort(t, l.NS, 69)
	p.MustBe(t, "in.tftpd")
	return p
}
