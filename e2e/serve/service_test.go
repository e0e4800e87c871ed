package serve

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ramboot/ramboot/e2e/cache"
	"github.com/ramboot/ramboot/e2e/lab"
	"github.com/ramboot/ramboot/internal/netnstest"
	"github.com/ramboot/ramboot/internal/testenv"
)

// The systemd units shipped in dist/systemd, checked as far as this
// machine allows without systemd as PID 1: systemd-analyze verify accepts
// them, and `ramboot serve` started the way the template unit starts it
// (its ExecStart, as an unprivileged user, with exactly the unit's
// capabilities) binds its privileged ports and serves, two instances side
// by side on two segments from one tree and one inventory.

// unitFile is a unit's settings: key -> values in order (ExecReload and
// SystemCallFilter may repeat).
type unitFile map[string][]string

func readUnit(t testing.TB, p string) unitFile {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unitFile{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, "[") {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			t.Fatalf("%s: not key=value: %q", p, l)
		}
		u[k] = append(u[k], v)
	}
	return u
}

func (u unitFile) one(t testing.TB, k string) string {
	t.Helper()
	if len(u[k]) != 1 {
		t.Fatalf("unit has %d %s= lines, want 1", len(u[k]), k)
	}
	return u[k][0]
}

// caps is a unit's capability list as setpriv takes it: "-all,+net_bind_service".
func (u unitFile) caps(t testing.TB, k string) (string, uint64) {
	t.Helper()
	arg, mask := "-all", uint64(0)
	known := map[string]uint{"CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11, "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_SYS_ADMIN": 21}
	for _, c := range strings.Fields(u.one(t, k)) {
		bit, ok := known[c]
		if !ok {
			t.Fatalf("%s=%s: unknown or unexpected capability %s", k, u.one(t, k), c)
		}
		arg += ",+" + strings.ToLower(strings.TrimPrefix(c, "CAP_"))
		mask |= 1 << bit
	}
	return arg, mask
}

// unitDir copies dist/systemd's units into a directory, with ExecStart's
// binary the one this run built (systemd-analyze verify checks that it is
// executable) and /etc/ramboot replaced by confDir.
func unitDir(t testing.TB, bin, confDir string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range []string{"ramboot.service", "ramboot@.service"} {
		b, err := os.ReadFile(filepath.Join(cache.SrcDir(), "dist", "systemd", n))
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ReplaceAll(string(b), "/usr/local/bin/ramboot", bin)
		s = strings.ReplaceAll(s, "/etc/ramboot/", confDir+"/")
		if err := os.WriteFile(filepath.Join(dir, n), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestServiceUnits: systemd-analyze verify has nothing to say about
// either unit (an unknown key, a bad value, a missing binary are all
// reported), and the units hold what the README promises.
func TestServiceUnits(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ramboot: not in -short")
	}
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		testenv.Skip(t, "systemd-analyze not found: run e2e/deps.sh (package systemd)")
	}
	bin := cache.Ramboot(t)
	dir := unitDir(t, bin, "/etc/ramboot")
	// An instance of the template is verified by its instance's name.
	if err := os.Rename(filepath.Join(dir, "ramboot@.service"), filepath.Join(dir, "ramboot@rack1.service")); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"ramboot.service", "ramboot@rack1.service"} {
		cmd := exec.Command(sa, "verify", "--man=no", filepath.Join(dir, n))
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "" {
			t.Errorf("systemd-analyze verify %s: %v\n%s", n, err, out)
		}
	}
	// A unit with a typo is reported: the check can fail.
	bad := filepath.Join(t.TempDir(), "typo.service")
	b, _ := os.ReadFile(filepath.Join(dir, "ramboot.service"))
	os.WriteFile(bad, []byte(strings.Replace(string(b), "ProtectSystem=", "ProtectSystm=", 1)), 0o644)
	if out, _ := exec.Command(sa, "verify", "--man=no", bad).CombinedOutput(); !strings.Contains(string(out), "ProtectSystm") {
		t.Errorf("systemd-analyze verify did not report an unknown key:\n%s", out)
	}

	single := readUnit(t, filepath.Join(cache.SrcDir(), "dist", "systemd", "ramboot.service"))
	tmpl := readUnit(t, filepath.Join(cache.SrcDir(), "dist", "systemd", "ramboot@.service"))
	for k, want := range map[string]string{
		"ExecStart": "/usr/local/bin/ramboot serve --config /etc/ramboot/serve.yaml", "Restart": "on-failure",
		"DynamicUser": "yes", "StateDirectory": "ramboot", "ProtectSystem": "strict", "ProtectHome": "yes",
		"PrivateTmp": "yes", "NoNewPrivileges": "yes", "CapabilityBoundingSet": "CAP_NET_BIND_SERVICE",
		"AmbientCapabilities": "CAP_NET_BIND_SERVICE", "RestrictAddressFamilies": "AF_INET AF_INET6 AF_NETLINK AF_UNIX",
	} {
		if got := single.one(t, k); got != want {
			t.Errorf("ramboot.service: %s=%s, want %s", k, got, want)
		}
	}
	if !slices.Contains(single["ExecReload"], "/bin/kill -HUP $MAINPID") {
		t.Errorf("ramboot.service: ExecReload %q does not send SIGHUP", single["ExecReload"])
	}
	// The template is the same unit with per-instance paths.
	for k, v := range single {
		tv := strings.Join(tmpl[k], "\n")
		want := strings.Join(v, "\n")
		want = strings.ReplaceAll(want, "/etc/ramboot/serve.yaml", "/etc/ramboot/%i.yaml")
		if k == "StateDirectory" {
			want = "ramboot/%i"
		}
		if k == "Description" || k == "Documentation" {
			continue
		}
		if tv != want {
			t.Errorf("ramboot@.service: %s=%q, ramboot.service has %q (the template should differ only in its paths)", k, tv, want)
		}
	}
	if len(tmpl) != len(single) {
		t.Errorf("ramboot@.service has %d keys, ramboot.service %d", len(tmpl), len(single))
	}
}

// TestServiceInstances runs two `ramboot serve` instances as the template
// unit would (ramboot@rack1 on br0, ramboot@rack2 on a second segment):
// proxy mode, the same built tree and nodes.yaml, each as an unprivileged
// user with only the unit's capabilities (setpriv, as systemd's
// AmbientCapabilities= and CapabilityBoundingSet= do). Each binds 67,
// 4011 and 69 on its own interface and serves a TFTP read to its segment;
// the unit's ExecReload (--check, then SIGHUP) reloads each inventory.
// Without the capability the same start fails: the test can fail.
func TestServiceInstances(t *testing.T) {
	lab.Skip(t)
	lab.Need(t, "setpriv", "util-linux")
	lab.Need(t, "curl", "curl")
	lab.Need(t, "ss", "iproute2")
	tree, _ := cache.Image(t, "virt")
	bin := cache.Ramboot(t)
	l := lab.New(t)
	c1 := l.Peer(t, "192.0.2.2")

	// A second segment: seg2 (198.51.100.1/24) in the server's namespace,
	// its other end eth0 (198.51.100.2/24) in a client namespace.
	c2 := &lab.Peer{NS: netnstest.New(t), Iface: "eth0", Addr: "198.51.100.2"}
	lab.Run(t, "ip", "-n", l.NS, "link", "add", "seg2", "type", "veth", "peer", "name", "eth0", "netns", c2.NS)
	lab.Run(t, "ip", "-n", l.NS, "addr", "add", "198.51.100.1/24", "dev", "seg2")
	lab.Run(t, "ip", "-n", l.NS, "link", "set", "seg2", "up")
	lab.Run(t, "ip", "-n", c2.NS, "addr", "add", "198.51.100.2/24", "dev", "eth0")
	lab.Run(t, "ip", "-n", c2.NS, "link", "set", "eth0", "up")

	// /etc/ramboot and /var/lib/ramboot stand-ins the service user can
	// read (t.TempDir is private to root).
	base, err := os.MkdirTemp("", "rb-service-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	conf, state := filepath.Join(base, "etc"), filepath.Join(base, "state")
	const nobody = 65534
	for _, d := range []string{base, conf, state, filepath.Join(state, "rack1"), filepath.Join(state, "rack2")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chmod(d, 0o755)
	}
	for _, d := range []string{"rack1", "rack2"} {
		if err := os.Chown(filepath.Join(state, d), nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	nodes := filepath.Join(conf, "nodes.yaml")
	lab.WriteFile(t, nodes, "defaults:\n  option224: shell\nnodes:\n  - mac: 52:54:00:12:34:56\n    hostname: rack1-n1\n")
	lab.WriteFile(t, filepath.Join(conf, "rack1.yaml"), fmt.Sprintf("root: %s\nnodes: %s\ninterface: br0\ndhcp: proxy\nlog-format: json\n", tree, nodes))
	lab.WriteFile(t, filepath.Join(conf, "rack2.yaml"), fmt.Sprintf("root: %s\nnodes: %s\ninterface: seg2\ndhcp: proxy\nlog-format: json\n", tree, nodes))

	units := unitDir(t, bin, conf)
	u := readUnit(t, filepath.Join(units, "ramboot@.service"))
	ambient, mask := u.caps(t, "AmbientCapabilities")
	bounding, bmask := u.caps(t, "CapabilityBoundingSet")
	if bmask&(1<<21) != 0 || mask&(1<<21) != 0 {
		t.Fatalf("the unit grants CAP_SYS_ADMIN")
	}
	// The unit's command lines for an instance (%i), as the service user,
	// in the lab's namespace.
	asService := func(instance string, caps, bcaps string, cmdline string) []string {
		args := strings.Fields(strings.ReplaceAll(cmdline, "%i", instance))
		return append([]string{"env", "STATE_DIRECTORY=" + filepath.Join(state, instance),
			"setpriv", "--reuid=" + strconv.Itoa(nobody), "--regid=" + strconv.Itoa(nobody), "--clear-groups",
			"--inh-caps=" + caps, "--ambient-caps=" + caps, "--bounding-set=" + bcaps, "--no-new-privs"}, args...)
	}
	execStart := u.one(t, "ExecStart")

	// Without the capability, the start fails on a privileged port.
	inLab := func(timeout time.Duration, args []string) (string, error) {
		return netnstest.Exec(l.NS, timeout, args[0], args[1:]...)
	}
	out, err := inLab(20*time.Second, asService("rack1", "-all", "-all", execStart))
	if err == nil || !strings.Contains(out, "permission denied") {
		t.Fatalf("ramboot serve without CAP_NET_BIND_SERVICE: %v, want a refused bind:\n%s", err, out)
	}

	procs := map[string]*lab.Proc{}
	for _, inst := range []string{"rack1", "rack2"} {
		// ExecStartPre: --check against the real built tree, as the service.
		out, err := inLab(30*time.Second, asService(inst, ambient, bounding, u["ExecStartPre"][0]))
		if err != nil || !strings.Contains(out, "ok: ramboot serve would start") || strings.Contains(out, "warning") {
			t.Fatalf("ramboot@%s ExecStartPre (--check): %v\n%s", inst, err, out)
		}
		t.Logf("ramboot@%s --check:\n%s", inst, out)
		p := lab.Start(t, "ramboot@"+inst, "ip", append([]string{"netns", "exec", l.NS}, asService(inst, ambient, bounding, execStart)...)...)
		lab.WaitLog(t, p, 0, 15*time.Second, "http listening", func(e lab.LogLine) bool { return e.Msg() == "http listening" })
		procs[inst] = p
	}

	sockets := func(proto string) string {
		out, err := netnstest.Exec(l.NS, 10*time.Second, "ss", "-Hlnp", proto)
		if err != nil {
			t.Fatalf("ss: %v\n%s", err, out)
		}
		return out
	}
	udp, tcp := sockets("-u"), sockets("-t")
	for inst, ifname := range map[string]string{"rack1": "br0", "rack2": "seg2"} {
		p := procs[inst]
		pid := p.Pid()
		// setpriv and env exec: the pid is ramboot's, as the service user
		// with the unit's capabilities and no others.
		st := lab.ReadFile(t, fmt.Sprintf("/proc/%d/status", pid))
		for _, want := range []string{
			fmt.Sprintf("Uid:\t%d\t%d\t%d\t%d", nobody, nobody, nobody, nobody),
			fmt.Sprintf("CapEff:\t%016x", mask), fmt.Sprintf("CapAmb:\t%016x", mask), fmt.Sprintf("CapBnd:\t%016x", bmask),
			"NoNewPrivs:\t1"} {
			if !strings.Contains(string(st), want) {
				t.Errorf("ramboot@%s (pid %d): /proc status lacks %q:\n%s", inst, pid, want, st)
			}
		}
		owner := fmt.Sprintf("pid=%d,", pid)
		for _, want := range []struct{ text, port string }{{udp, "67"}, {udp, "4011"}, {udp, "69"}, {tcp, "8080"}} {
			re := regexp.MustCompile(`(?m)^.*%` + ifname + `:` + want.port + `\s.*` + regexp.QuoteMeta(owner) + `.*$`)
			if !re.MatchString(want.text) {
				t.Errorf("ramboot@%s: no socket on port %s bound to %s:\n%s%s", inst, want.port, ifname, udp, tcp)
			}
		}
	}

	// One TFTP read per segment, each from its own instance.
	want := lab.ReadFile(t, filepath.Join(tree, "cmdline.txt"))
	for inst, c := range map[string]struct {
		peer   *lab.Peer
		server string
	}{"rack1": {c1, lab.Addr}, "rack2": {c2, "198.51.100.1"}} {
		dest := filepath.Join(t.TempDir(), inst+"-cmdline.txt")
		out, err := c.peer.Exec(t, 30*time.Second, "curl", "-sS", "--max-time", "20", "-o", dest, "tftp://"+c.server+"/cmdline.txt")
		if err != nil {
			t.Fatalf("%s: curl tftp://%s/cmdline.txt: %v\n%s", inst, c.server, err, out)
		}
		lab.SameBytes(t, inst+" TFTP cmdline.txt", lab.ReadFile(t, dest), want)
		lab.TFTPLog(t, procs[inst], 0, "cmdline.txt")
	}

	// systemctl reload: ExecReload's --check, then SIGHUP to $MAINPID.
	// Both instances load the changed inventory.
	marks := map[string]int{}
	for inst, p := range procs {
		marks[inst] = len(lab.Log(p))
	}
	// The file keeps its modification time, so that the server's own
	// watch for a changed file does not reload it: SIGHUP must.
	old, err := os.Stat(nodes)
	if err != nil {
		t.Fatal(err)
	}
	lab.WriteFile(t, nodes, "defaults:\n  option224: shell\nnodes:\n  - mac: 52:54:00:12:34:56\n    hostname: rack1-n1\n  - mac: 52:54:00:12:34:57\n    hostname: rack2-n1\n")
	if err := os.Chtimes(nodes, old.ModTime(), old.ModTime()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // longer than the watch's 2 s period
	for inst, p := range procs {
		for _, e := range lab.Log(p)[marks[inst]:] {
			if e.Msg() == "inventory loaded" {
				t.Fatalf("ramboot@%s reloaded before SIGHUP: the test cannot tell SIGHUP's reload", inst)
			}
		}
	}
	for inst, p := range procs {
		reload := u["ExecReload"]
		if len(reload) != 2 || !strings.HasPrefix(reload[1], "/bin/kill -HUP $MAINPID") {
			t.Fatalf("ExecReload = %q", reload)
		}
		if out, err := inLab(30*time.Second, asService(inst, ambient, bounding, reload[0])); err != nil {
			t.Fatalf("ramboot@%s ExecReload --check: %v\n%s", inst, err, out)
		}
		if err := syscall.Kill(p.Pid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		lab.WaitLog(t, p, marks[inst], 15*time.Second, "inventory loaded (2 nodes)", func(e lab.LogLine) bool {
			return e.Msg() == "inventory loaded" && fmt.Sprint(e["nodes"]) == "2"
		})
	}
	for inst, p := range procs {
		select {
		case <-p.Done():
			t.Errorf("ramboot@%s exited: %v\n%s", inst, p.Err(), p.Output())
		default:
		}
	}

	// Full DHCP under the unit: leases go to the instance's state
	// directory, which the service user can write.
	out, err = inLab(30*time.Second, asService("rack2", ambient, bounding, u["ExecStartPre"][0]+" --dhcp full --range 198.51.100.100-198.51.100.150"))
	if err != nil || !strings.Contains(out, "leases in "+filepath.Join(state, "rack2", "leases.json")) {
		t.Errorf("--check in full mode as the service user: %v\n%s", err, out)
	}
}
