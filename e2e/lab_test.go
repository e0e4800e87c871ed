package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/sys/unix"

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

	t     testing.TB
	peers int
}

// LabAddr is the lab host's address on br0.
const LabAddr = "192.0.2.1"

var labSeq atomic.Int32

// labBridgeMAC is br0's own MAC (locally administered).
const labBridgeMAC = "02:72:62:00:00:01"

// NewLab creates the namespace, br0 and tap0. It needs root and iproute2.
func NewLab(t testing.TB) *Lab {
	t.Helper()
	labSkip(t)
	need(t, "ip", "iproute2")
	l := &Lab{NS: labName(), Dir: t.TempDir(), t: t}
	run(t, "ip", "netns", "add", l.NS)
	t.Cleanup(func() { deleteNetns(t, l.NS) })
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		// A bridge takes the lowest MAC of its ports unless it has its
		// own: a peer added later (a random veth MAC) would change it
		// under the neighbour caches of the hosts already there, whose
		// frames then go to a port that is down until their entry
		// expires (seen: a host's report timed out after attackers
		// joined). So br0's MAC is set, and never changes.
		{"link", "add", "br0", "address", labBridgeMAC, "type", "bridge"},
		{"addr", "add", LabAddr + "/24", "dev", "br0"},
		{"link", "set", "br0", "up"},
		{"tuntap", "add", "dev", "tap0", "mode", "tap"},
		{"link", "set", "tap0", "master", "br0"},
		{"link", "set", "tap0", "up"},
	} {
		run(t, "ip", append([]string{"-n", l.NS}, args...)...)
	}
	return l
}

// labSkip skips where the lab cannot run: in -short runs, and without
// root. Tests call it before they build anything.
func labSkip(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("lab scenarios are end-to-end tests: not in -short")
	}
	if os.Geteuid() != 0 {
		testenv.Skip(t, "the lab needs root (network namespaces, tap devices): run `make test` as root")
	}
}

func labName() string {
	return fmt.Sprintf("rbt-%d-%d", os.Getpid(), labSeq.Add(1))
}

func deleteNetns(t testing.TB, ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", "netns", "del", ns).CombinedOutput(); err != nil {
		t.Errorf("ip netns del %s: %v: %s", ns, err, out)
	}
}

// Peer is another host on the lab's bridge, in a namespace of its own.
type Peer struct {
	NS, Iface, Addr string
}

// Peer creates a namespace joined to br0 by a veth pair whose inner end,
// eth0, has addr/24.
func (l *Lab) Peer(t testing.TB, addr string) *Peer {
	t.Helper()
	l.peers++
	p := &Peer{NS: labName(), Iface: "eth0", Addr: addr}
	outer := fmt.Sprintf("vp%d", l.peers)
	run(t, "ip", "netns", "add", p.NS)
	t.Cleanup(func() { deleteNetns(t, p.NS) })
	run(t, "ip", "-n", l.NS, "link", "add", outer, "type", "veth", "peer", "name", p.Iface, "netns", p.NS)
	run(t, "ip", "-n", l.NS, "link", "set", outer, "master", "br0")
	run(t, "ip", "-n", l.NS, "link", "set", outer, "up")
	run(t, "ip", "-n", p.NS, "link", "set", "lo", "up")
	run(t, "ip", "-n", p.NS, "addr", "add", addr+"/24", "dev", p.Iface)
	run(t, "ip", "-n", p.NS, "link", "set", p.Iface, "up")
	// Wait until both ends are up and the bridge port forwards.
	deadline := time.Now().Add(10 * time.Second)
	for {
		in, _ := execIn(p.NS, 5*time.Second, "ip", "-o", "link", "show", p.Iface)
		br, _ := execIn(l.NS, 5*time.Second, "bridge", "link", "show", "dev", outer)
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
func (l *Lab) Main() *Peer { return &Peer{NS: l.NS, Iface: "br0", Addr: LabAddr} }

// Boot starts the virt image in QEMU inside the lab, on tap0, with the MAC
// 52:54:00:12:34:56.
func (l *Lab) Boot(t testing.TB, dir, extra string) *VM {
	t.Helper()
	return StartVM(t, "ip", "netns", "exec", l.NS, qemu(t),
		"-M", "virt", "-cpu", "cortex-a72", "-m", "1024", "-smp", "2",
		"-nographic", "-no-reboot",
		"-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no",
		"-device", "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56",
		"-kernel", filepath.Join(dir, "Image"),
		"-initrd", filepath.Join(dir, "rootfs.cpio.gz"),
		"-append", strings.TrimSpace("console=ttyAMA0 panic=-1 "+extra))
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
	need(t, "dnsmasq", "dnsmasq")
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
	ln, err := listenIn(l.NS, "tcp", LabAddr+":8080")
	if err != nil {
		t.Fatalf("listen in %s: %v", l.NS, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + LabAddr + ":8080"
}

// inNetns runs f on an OS thread switched into the named namespace. The
// sockets f creates stay in that namespace. If the thread cannot switch
// back, it is not reused: the goroutine ends with the thread locked, and
// the Go runtime then ends the thread.
func inNetns(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		ferr := f()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns back from %s: %w (thread discarded)", ns, err)
			return // thread stays locked and dies with this goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

func listenIn(ns, network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := inNetns(ns, func() (err error) {
		ln, err = net.Listen(network, addr)
		return err
	})
	if err != nil && ln != nil {
		ln.Close()
		ln = nil
	}
	return ln, err
}

// Export is a directory that Ganesha serves.
type Export struct {
	Path   string // directory on this machine
	Pseudo string // path clients mount, for NFSv3 and v4 ("/export")
	RO     bool   // read-only export
}

// Ganesha serves exports over NFSv3 and NFSv4 on 192.0.2.1 from inside
// the lab. NFSv3 needs a portmapper (the client asks it for MOUNT's port),
// so rpcbind runs beside it; both run in a private mount namespace with
// a tmpfs on /run, so that rpcbind's socket (/run/rpcbind.sock), lock and
// warm-start files and Ganesha's registrations are this lab's alone.
// Ganesha has no NLM (clients mount with nolock, as ramboot's init does
// for v3), no grace period and no root squash.
func (l *Lab) Ganesha(t testing.TB, exports ...Export) *Proc {
	t.Helper()
	need(t, "ganesha.nfsd", "nfs-ganesha and nfs-ganesha-vfs")
	need(t, "rpcbind", "rpcbind")
	need(t, "unshare", "util-linux")
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
`, LabAddr, plugins, filepath.Join(dir, "recovery"))
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
		out, err := l.Exec(t, 10*time.Second, "rpcinfo", "-p", LabAddr)
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
	return execIn(l.NS, timeout, name, args...)
}

func execIn(ns string, timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Proc is a server process a test started; its stdout and stderr are
// kept, and it is stopped (by pid) when the test ends.
type Proc struct {
	Name string
	t    testing.TB
	cmd  *exec.Cmd

	mu   sync.Mutex
	out  bytes.Buffer
	mark int
	done chan struct{}
	err  error
}

type procWriter struct{ p *Proc }

func (w procWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.out.Write(b)
}

// Start starts bin with args. At cleanup it gets SIGTERM, then its
// process group gets SIGKILL after 15s; its output is logged if the test
// failed.
func Start(t testing.TB, name, bin string, args ...string) *Proc {
	t.Helper()
	p := &Proc{Name: name, t: t, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout = procWriter{p}
	p.cmd.Stderr = procWriter{p}
	// Its own process group: if it ignores SIGTERM, SIGKILL goes to the
	// group this test created (e.g. Ganesha's sh and its two daemons).
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	t.Logf("%s: %s %s", name, bin, strings.Join(args, " "))
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(15 * time.Second):
				syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
				select {
				case <-p.done:
				case <-time.After(10 * time.Second):
					t.Errorf("%s (pid %d) did not exit after SIGKILL", name, p.cmd.Process.Pid)
				}
			}
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.Output())
		}
	})
	return p
}

// Output is everything the process printed so far.
func (p *Proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// Expect waits until re matches output printed after the last match.
func (p *Proc) Expect(re string, timeout time.Duration) []string {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(timeout)
	for {
		p.mu.Lock()
		s := p.out.String()[p.mark:]
		if loc := rx.FindStringSubmatchIndex(s); loc != nil {
			m := rx.FindStringSubmatch(s)
			p.mark += loc[1]
			p.mu.Unlock()
			return m
		}
		p.mu.Unlock()
		select {
		case <-p.done:
			p.t.Fatalf("%s exited (%v) before printing %q:\n%s", p.Name, p.err, re, p.Output())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: no %q within %v:\n%s", p.Name, re, timeout, p.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// need skips the test when a tool is missing; `make test` runs
// e2e/deps.sh, which installs pkg.
func need(t testing.TB, tool, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		testenv.Skipf(t, "%s not found: `make test` installs it (e2e/deps.sh: %s)", tool, pkg)
	}
}

// nfsRootDir makes a root file system for the guest: /sbin/init is
// testdata/nfsinit built for arm64, plus the mount points switch_root
// moves /dev, /proc, /sys and /run to.
func nfsRootDir(t testing.TB) string { return nfsRootDirFor(t, "arm64") }

// nfsRootDirFor is nfsRootDir for a guest of architecture goarch.
func nfsRootDirFor(t testing.TB, goarch string) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	for _, d := range []string{"sbin", "dev", "proc", "sys", "run", "tmp", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "motd"), []byte("an NFS root served by the ramboot e2e lab\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := nfsInitFor(t, goarch)
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "sbin", "init"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

// nfsInitBinary builds testdata/nfsinit for linux/arm64, once per run.
func nfsInitBinary(t testing.TB) string { return nfsInitFor(t, "arm64") }

var nfsInits sync.Map // GOARCH -> *nfsInitBuild

type nfsInitBuild struct {
	once sync.Once
	path string
	err  error
}

// nfsInitFor builds testdata/nfsinit for linux/goarch, once per run.
func nfsInitFor(t testing.TB, goarch string) string {
	t.Helper()
	v, _ := nfsInits.LoadOrStore(goarch, &nfsInitBuild{})
	nfsInit := v.(*nfsInitBuild)
	nfsInit.once.Do(func() {
		dir, err := os.MkdirTemp("", "ramboot-nfsinit-")
		if err != nil {
			nfsInit.err = err
			return
		}
		nfsInit.path = filepath.Join(dir, "init")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", nfsInit.path, "./testdata/nfsinit")
		cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+goarch, "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			nfsInit.err = fmt.Errorf("go build ./testdata/nfsinit: %v\n%s", err, out)
		}
	})
	if nfsInit.err != nil {
		t.Fatal(nfsInit.err)
	}
	return nfsInit.path
}

// TestLab checks the harness without a guest: the namespace has no route
// out, dnsmasq starts on br0, the HTTP server answers inside the
// namespace and not outside it, and Ganesha's NFSv3 MOUNT service lists
// its export.
func TestLab(t *testing.T) {
	l := NewLab(t)
	if out, _ := l.Exec(t, 10*time.Second, "ip", "route", "show", "default"); strings.TrimSpace(out) != "" {
		t.Fatalf("the lab has a default route: %s", out)
	}
	d := l.Dnsmasq(t, "--dhcp-range=192.0.2.100,192.0.2.150,12h", `--dhcp-option=224,"shell"`)

	base := l.HTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "lab-http-ok") }))
	peer := l.Peer(t, "192.0.2.9")
	if out, err := inNetnsGet(peer.NS, base+"/"); err != nil || out != "lab-http-ok" {
		t.Fatalf("GET %s from a peer: %q, %v", base, out, err)
	}
	// Outside the namespace 192.0.2.1 is not there.
	c := http.Client{Timeout: 2 * time.Second}
	if resp, err := c.Get(base + "/"); err == nil {
		resp.Body.Close()
		t.Fatalf("the lab's HTTP server answered outside the lab namespace")
	}

	// dnsmasq answers a DHCP client on the bridge with option 224.
	offer := dhcpProbe(t, peer, "")
	if got := string(bytes.TrimRight(offer.Options.Get(dhcpv4.GenericOptionCode(224)), "\x00")); got != "shell" {
		t.Errorf("dnsmasq's offer has option 224 %q, want shell\n%s", got, offer.Summary())
	}
	d.Expect(`DHCPOFFER\(br0\)`, 10*time.Second)

	root := nfsRootDir(t)
	l.Ganesha(t, Export{Path: root, Pseudo: "/export"}, Export{Path: root, Pseudo: "/ro", RO: true})
	need(t, "showmount", "nfs-common")
	out, err := l.Exec(t, 20*time.Second, "showmount", "-e", LabAddr)
	if err != nil {
		t.Fatalf("showmount: %v\n%s", err, out)
	}
	for _, want := range []string{"/export", "/ro"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(want) + `\s`).MatchString(out) {
			t.Errorf("showmount -e has no %s:\n%s", want, out)
		}
	}
	out, _ = l.Exec(t, 10*time.Second, "rpcinfo", "-p", LabAddr)
	for _, want := range []string{`100003\s+3\s+tcp\s+2049\s+nfs`, `100003\s+4\s+tcp\s+2049\s+nfs`, `100005\s+3\s+tcp\s+\d+\s+mountd`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("rpcinfo -p has no %s:\n%s", want, out)
		}
	}
}

// netnsClient is an HTTP client whose connections start inside namespace
// ns (5 s to connect, 10 s a request); close frees its connections.
func netnsClient(ns string) (c *http.Client, close func()) {
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		err := inNetns(ns, func() (err error) {
			conn, err = (&net.Dialer{Timeout: 5 * time.Second}).Dial(network, addr)
			return err
		})
		return conn, err
	}}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, tr.CloseIdleConnections
}

// inNetnsGet fetches u from inside namespace ns.
func inNetnsGet(ns, u string) (string, error) {
	c, done := netnsClient(ns)
	defer done()
	resp, err := c.Get(u)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(resp.Body)
	return b.String(), err
}
