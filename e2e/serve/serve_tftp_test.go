package serve

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ramboot/ramboot/e2e/cache"
	"github.com/ramboot/ramboot/e2e/client"
	"github.com/ramboot/ramboot/e2e/lab"
	"github.com/ramboot/ramboot/internal/netnstest"
	"github.com/ramboot/ramboot/internal/testenv"
)

// TestServeRealTFTPClients: tftp-hpa, atftp (windowsize) and curl fetch
// files byte-exact from `ramboot serve`; path escapes are refused; over a
// lossy link (netem, 5% each way) atftp and curl still get exact copies.
func TestServeRealTFTPClients(t *testing.T) {
	lab.Need(t, "tftp", "tftp-hpa")
	lab.Need(t, "atftp", "atftp")
	lab.Need(t, "curl", "curl")
	lab.Need(t, "tc", "iproute2")
	l := lab.New(t)
	src, _ := cache.Image(t, "rpi4")
	tree := lab.CopyTree(t, src)
	if err := os.Symlink("/etc/passwd", filepath.Join(tree, "evil")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../../../../../../etc/passwd", filepath.Join(tree, "evil-rel")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("config.txt", filepath.Join(tree, "good-link")); err != nil {
		t.Fatal(err)
	}
	srv := l.Serve(t, tree, "--dhcp", "off")
	c := l.Peer(t, "192.0.2.20")
	outer := c.Outer // c's end on br0
	dest := t.TempDir()

	get := func(name string, timeout time.Duration, args ...string) []byte {
		t.Helper()
		t0 := time.Now()
		out, err := c.Exec(t, timeout, args[0], args[1:]...)
		if err != nil {
			t.Fatalf("%s: %v\n%s", args[0], err, out)
		}
		got, err := os.ReadFile(filepath.Join(dest, name))
		if err != nil {
			t.Fatalf("%s: %v\n%s", args[0], err, out)
		}
		t.Logf("%s: %d bytes in %v", args[0], len(got), time.Since(t0).Round(time.Millisecond))
		return got
	}

	// tftp-hpa: no options, blksize 512.
	got := get("rootfs.cpio.gz", 60*time.Second, "tftp", "-m", "binary", lab.Addr, "-c", "get", "rootfs.cpio.gz", filepath.Join(dest, "rootfs.cpio.gz"))
	lab.SameBytes(t, "tftp-hpa rootfs.cpio.gz", got, lab.ReadFile(t, filepath.Join(src, "rootfs.cpio.gz")))
	e, _ := lab.TFTPLog(t, srv, 0, "rootfs.cpio.gz")
	if e.Str("kind") != "served" || e.Str("blksize") != "512" {
		t.Errorf("serve's log for tftp-hpa: %v, want kind served, blksize 512", e)
	}

	// atftp with RFC 7440 windowsize.
	got = get("Image", 90*time.Second, "atftp", "--get", "-r", "Image", "-l", filepath.Join(dest, "Image"),
		"--option", "blksize 1468", "--option", "windowsize 16", lab.Addr)
	lab.SameBytes(t, "atftp Image", got, lab.ReadFile(t, filepath.Join(src, "Image")))
	e, _ = lab.TFTPLog(t, srv, 0, "Image")
	if e.Str("kind") != "served" || e.Str("blksize") != "1468" || e.Str("windowsize") != "16" {
		t.Errorf("serve's log for atftp: %v, want kind served, blksize 1468, windowsize 16", e)
	}

	// curl, as the Pi asks: blksize 1024 (curl adds tsize).
	dtb := lab.ReadFile(t, filepath.Join(src, "bcm2711-rpi-4-b.dtb"))
	got = get("curl.dtb", 60*time.Second, "curl", "-sS", "--max-time", "50", "--tftp-blksize", "1024",
		"tftp://"+lab.Addr+"/bcm2711-rpi-4-b.dtb", "-o", filepath.Join(dest, "curl.dtb"))
	lab.SameBytes(t, "curl bcm2711-rpi-4-b.dtb", got, dtb)

	// A relative symlink that stays inside the tree is followed.
	got = get("good-link", 30*time.Second, "curl", "-sS", "--max-time", "20", "tftp://"+lab.Addr+"/good-link", "-o", filepath.Join(dest, "good-link"))
	lab.SameBytes(t, "curl good-link (-> config.txt)", got, lab.ReadFile(t, filepath.Join(src, "config.txt")))

	// Path escapes: refused, whoever asks. Our client sees the error code.
	passwd := lab.ReadFile(t, "/etc/passwd")
	pc := client.TFTP{NS: c.NS, Server: lab.Addr + ":69", Blksize: 1024, Tsize: true}
	for _, tc := range []struct {
		name  string
		codes []int // acceptable ERROR codes
	}{
		{"../etc/passwd", []int{2}},
		{"/etc/passwd", []int{1, 2}}, // "/" dropped: etc/passwd is not in the tree
		{"config.txt/../../etc/passwd", []int{2}},
		{"evil", []int{2}},     // absolute symlink out of the tree
		{"evil-rel", []int{2}}, // relative symlink climbing out
		{"//etc/passwd", []int{2}},
	} {
		r, err := pc.Get(tc.name)
		if err != nil {
			t.Errorf("tftp %q: %v", tc.name, err)
			continue
		}
		ok := false
		for _, c := range tc.codes {
			ok = ok || r.ErrCode == c
		}
		if !ok || len(r.Data) > 0 || r.OACK != nil {
			t.Errorf("tftp %q: ERROR %d %q, OACK %v, %d bytes; want ERROR %v and nothing else", tc.name, r.ErrCode, r.ErrMsg, r.OACK, len(r.Data), tc.codes)
		}
		if strings.Contains(r.ErrMsg, tree) || strings.Contains(r.ErrMsg, "/etc") {
			t.Errorf("tftp %q: the error message %q names a server path", tc.name, r.ErrMsg)
		}
		e, _ := lab.TFTPLog(t, srv, 0, tc.name)
		if k := e.Str("kind"); k != "error" && k != "not-found" {
			t.Errorf("serve's log for %q: %v", tc.name, e)
		}
	}
	// And with the real clients: no data, a failure reported.
	for _, name := range []string{"../etc/passwd", "evil"} {
		d := filepath.Join(dest, "escape-"+strings.ReplaceAll(name, "/", "_"))
		out, _ := c.Exec(t, 20*time.Second, "tftp", "-m", "binary", lab.Addr, "-c", "get", name, d+".hpa")
		if !regexp.MustCompile(`(?i)error code 2`).MatchString(out) {
			t.Errorf("tftp-hpa get %s: %q, want Error code 2", name, out)
		}
		out, err := c.Exec(t, 20*time.Second, "curl", "-sS", "--max-time", "10", "tftp://"+lab.Addr+"/"+name, "-o", d+".curl")
		if err == nil {
			t.Errorf("curl tftp://%s/%s succeeded: %s", lab.Addr, name, out)
		}
		for _, f := range []string{d + ".hpa", d + ".curl"} {
			if b, err := os.ReadFile(f); err == nil && (bytes.Contains(b, passwd[:min(len(passwd), 32)]) || len(b) > 0) {
				t.Errorf("%s: %d bytes came through for %s", f, len(b), name)
			}
		}
	}
	// HTTP confines the same way.
	for _, u := range []string{"/evil", "/evil-rel", "/../etc/passwd", "/%2e%2e/etc/passwd"} {
		out, err := c.Exec(t, 15*time.Second, "curl", "-s", "-L", "--path-as-is", "--max-time", "10",
			"-o", "/dev/null", "-w", "%{http_code}", "http://"+lab.Addr+":8080"+u)
		if err != nil || (out != "404" && out != "400") {
			t.Errorf("GET %s: status %q (%v), want 404", u, out, err)
		}
	}

	// A lossy link, both ways: 5% of the client's packets (requests,
	// ACKs) and 5% of the server's (DATA, OACK) are dropped.
	svLossyLink(t, l, c, outer)
	elf := lab.ReadFile(t, filepath.Join(src, "start4cd.elf"))
	mark := len(lab.Log(srv))
	t0 := time.Now()
	// atftp gives up in two ways of its own on a lossy link, and an
	// operator runs it again; so does this test, at most three times, and
	// only for those:
	//   - its request was answered twice (it resent the RRQ after the
	//     first OACK was lost, and both transfers answer): "unexpected
	//     OACK". RFC 1350 has a client ignore a second transfer ID; atftp
	//     aborts instead.
	//   - its windowed receive moves past blocks it has not got when one
	//     of its "extra ACK"s is lost, then ignores the window the server
	//     sends again from the last ACK it saw ("got wrong block ...,
	//     ignoring") without ACKing, until the server gives up.
	for attempt := 1; ; attempt++ {
		args := []string{"atftp", "--get", "-r", "start4cd.elf", "-l", filepath.Join(dest, "lossy-atftp.elf"),
			"--option", "blksize 1468", "--option", "windowsize 16", "--tftp-timeout", "1", lab.Addr}
		out, err := c.Exec(t, 60*time.Second, args[0], args[1:]...)
		if err != nil && attempt < 3 && (strings.Contains(out, "unexpected OACK") || strings.Contains(out, "ignoring\ntimeout: retrying ...\ntftp: unknown error")) {
			t.Logf("atftp attempt %d: gave up in its own way on a lossy link (%s); again", attempt, lastLine(out))
			continue
		}
		if err != nil {
			t.Fatalf("atftp over a lossy link: %v\n%s", err, out)
		}
		got = lab.ReadFile(t, filepath.Join(dest, "lossy-atftp.elf"))
		break
	}
	lab.SameBytes(t, "atftp start4cd.elf over a lossy link", got, elf)
	// curl asks the server for a retransmission timeout derived from its
	// own time limit (5 s with --max-time 50); the connect timeout, which
	// bounds only the wait for the first answer, brings it to 1 s.
	got = get("lossy-curl.dtb", 60*time.Second, "curl", "-sS", "--connect-timeout", "3", "--max-time", "50", "--tftp-blksize", "1024",
		"tftp://"+lab.Addr+"/bcm2711-rpi-4-b.dtb", "-o", filepath.Join(dest, "lossy-curl.dtb"))
	lab.SameBytes(t, "curl bcm2711-rpi-4-b.dtb over a lossy link", got, dtb)
	t.Logf("lossy transfers: %v", time.Since(t0).Round(time.Millisecond))
	for _, e := range lab.Log(srv)[mark:] {
		if e.Msg() == "tftp" {
			t.Logf("lossy: %s", e)
		}
	}
}

// lossyLink drops 5% of the packets each way between the lab host and
// peer c: netem on both ends of c's veth where the kernel has sch_netem;
// else (kernels without it) iptables statistic rules on the receiving
// side, in each namespace's INPUT chain: a DROP in OUTPUT would not be a
// lost packet but a send error (EPERM) for the sender.
func svLossyLink(t testing.TB, l *lab.Lab, c *lab.Peer, outer string) {
	t.Helper()
	out, err := netnstest.Exec(c.NS, 10*time.Second, "tc", "qdisc", "add", "dev", c.Iface, "root", "netem", "loss", "5%")
	if err == nil {
		lab.Run(t, "ip", "netns", "exec", l.NS, "tc", "qdisc", "add", "dev", outer, "root", "netem", "loss", "5%")
		t.Logf("netem loss 5%% on %s (%s) and %s (%s)", c.Iface, c.NS, outer, l.NS)
		return
	}
	ipt, lerr := exec.LookPath("iptables-legacy")
	if lerr != nil {
		if ipt, lerr = exec.LookPath("iptables"); lerr != nil {
			testenv.Skipf(t, "no netem here (%s) and no iptables: `make test` installs iptables (e2e/deps.sh)", strings.TrimSpace(out))
		}
	}
	for _, x := range []struct{ ns, dev string }{{c.NS, c.Iface}, {l.NS, "br0"}} {
		if out2, err := netnstest.Exec(x.ns, 10*time.Second, ipt, "-A", "INPUT", "-i", x.dev, "-p", "udp",
			"-m", "statistic", "--mode", "random", "--probability", "0.05", "-j", "DROP"); err != nil {
			testenv.Skipf(t, "no netem here (%s) and %s cannot drop at random either: %v: %s", strings.TrimSpace(out), ipt, err, out2)
		}
	}
	t.Logf("no netem in this kernel (%s): %s drops 5%% of the UDP packets arriving on %s and on br0", strings.TrimSpace(out), filepath.Base(ipt), c.Iface)
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
