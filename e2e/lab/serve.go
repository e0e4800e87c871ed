package lab

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ramboot/ramboot/builder"
	"github.com/ramboot/ramboot/e2e/cache"
	"github.com/ramboot/ramboot/internal/netnstest"
	"github.com/ramboot/ramboot/tree"
)

// `ramboot serve` in a lab: the run's binary (e2e/cache) on br0
// (192.0.2.1), logging JSON lines that the tests parse (Log, WaitLog).

// ServeArgs is the command line of `ramboot serve` (the run's binary,
// e2e/cache) on the lab's br0, for `ip`: JSON logs, the lab's own lease
// file unless args name one.
func (l *Lab) ServeArgs(t testing.TB, root string, args ...string) []string {
	base := []string{"netns", "exec", l.NS, cache.Ramboot(t), "serve",
		"--root", root, "--interface", "br0", "--log-format", "json"}
	if !slices.Contains(args, "--lease-file") {
		// Each lab its own leases: the default, next to the tree, is
		// shared by every test that serves that tree.
		base = append(base, "--lease-file", filepath.Join(l.Dir, "leases.json"))
	}
	return append(base, args...)
}

// Serve runs `ramboot serve` in the lab on root and returns once its
// HTTP listener is up (the last one it starts).
func (l *Lab) Serve(t testing.TB, root string, args ...string) *Proc {
	t.Helper()
	p := Start(t, "ramboot-serve", "ip", l.ServeArgs(t, root, args...)...)
	WaitLog(t, p, 0, 15*time.Second, "http listening", func(e LogLine) bool { return e.Msg() == "http listening" })
	return p
}

// LogLine is one JSON log line of `ramboot serve --log-format json`.
type LogLine map[string]any

// Msg is the line's msg.
func (e LogLine) Msg() string { return e.Str("msg") }

// Str is field k as a string ("" if absent).
func (e LogLine) Str(k string) string {
	switch v := e[k].(type) {
	case string:
		return v
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}

func (e LogLine) String() string {
	b, _ := json.Marshal(map[string]any(e))
	return string(b)
}

// Log parses the JSON lines p printed so far; other lines are skipped.
func Log(p *Proc) []LogLine {
	var out []LogLine
	sc := bufio.NewScanner(strings.NewReader(p.Output()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var e LogLine
		if json.Unmarshal(line, &e) == nil {
			out = append(out, e)
		}
	}
	return out
}

// WaitLog waits for a log line at index >= from matching pred and
// returns it and its index.
func WaitLog(t testing.TB, p *Proc, from int, timeout time.Duration, what string, pred func(LogLine) bool) (LogLine, int) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		lines := Log(p)
		for i := from; i < len(lines); i++ {
			if pred(lines[i]) {
				return lines[i], i
			}
		}
		select {
		case <-p.Done():
			t.Fatalf("%s exited (%v) before logging %s:\n%s", p.Name, p.Err(), what, p.Output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no log line %s within %v:\n%s", p.Name, what, timeout, p.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TFTPLog waits for serve's tftp line for path (requested name).
func TFTPLog(t testing.TB, p *Proc, from int, path string) (LogLine, int) {
	t.Helper()
	return WaitLog(t, p, from, 10*time.Second, "tftp "+path, func(e LogLine) bool {
		return e.Msg() == "tftp" && e.Str("path") == path
	})
}

// CopyTree copies the regular files of src (one level, as the built trees
// are) into a new directory: the server confines symlinks, so a test
// that changes its tree gets real copies.
func CopyTree(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "tree")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		in, err := os.Open(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(filepath.Join(dst, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			t.Fatal(err)
		}
		in.Close()
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// ReadFile is os.ReadFile, failing t on an error.
func ReadFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// WriteFile writes s to p (and its directory), failing t on an error.
func WriteFile(t testing.TB, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// SameBytes fails the test unless got is want, saying where they differ.
func SameBytes(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	t.Errorf("%s: %d bytes (sha256 %.12s), want %d bytes (sha256 %.12s); first difference at byte %d",
		what, len(got), SHA256Hex(got), len(want), SHA256Hex(want), i)
}

// Exec runs a command inside the peer's namespace, bounded, logging it.
func (p *Peer) Exec(t testing.TB, timeout time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	t.Logf("%s$ %s %s", p.NS, name, strings.Join(args, " "))
	return netnstest.Exec(p.NS, timeout, name, args...)
}

// SetMAC gives the peer's interface a fixed MAC.
func (p *Peer) SetMAC(t testing.TB, mac string) {
	t.Helper()
	Run(t, "ip", "-n", p.NS, "link", "set", p.Iface, "address", mac)
}

// Status fetches /status.json from inside a peer.
func Status(t testing.TB, p *Peer) []Node {
	t.Helper()
	body, err := Get(p.NS, "http://"+Addr+":8080/status.json")
	if err != nil {
		t.Fatalf("GET /status.json: %v", err)
	}
	var st struct {
		Nodes []Node `json:"nodes"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/status.json: %v\n%s", err, body)
	}
	return st.Nodes
}

// Node is a node of /status.json.
type Node struct {
	MAC, Serial, Hostname, IP, Kind, Stage, Detail, Hardware, Generation string
	Steps                                                                []struct{ Stage, Detail string }
}

// ServeNode runs `ramboot serve` on root with a nodes.yaml of one node
// (mac, hostname, option224) and args.
func (l *Lab) ServeNode(t testing.TB, root, mac, hostname, option224 string, args ...string) *Proc {
	t.Helper()
	nodes := filepath.Join(l.Dir, "nodes.yaml")
	WriteFile(t, nodes, "nodes:\n  - mac: "+mac+"\n    hostname: "+hostname+"\n    option224: \""+option224+"\"\n")
	return l.Serve(t, root, append([]string{"--nodes", nodes}, args...)...)
}

// NodeReports waits until serve's /status.json (at base, inside the
// lab's namespace) has every stage in want reported by the node mac
// (step "by": "node"), and returns the node's reported stages in order.
func (l *Lab) NodeReports(t testing.TB, base, mac string, timeout time.Duration, want ...string) []string {
	t.Helper()
	var got []string
	var body string
	for deadline := time.Now().Add(timeout); ; time.Sleep(500 * time.Millisecond) {
		var err error
		body, err = Get(l.NS, base+"/status.json")
		var st struct {
			Nodes []struct {
				MAC   string
				Steps []struct{ Stage, Detail, By string }
			}
		}
		if err == nil && json.Unmarshal([]byte(body), &st) == nil {
			got = nil
			for _, n := range st.Nodes {
				for _, s := range n.Steps {
					if n.MAC == mac && s.By == "node" {
						got = append(got, s.Stage)
					}
				}
			}
			missing := false
			for _, w := range want {
				missing = missing || !slices.Contains(got, w)
			}
			if !missing {
				return got
			}
		}
		if time.Now().After(deadline) {
			t.Errorf("node %s reported %q to serve, want %q among them; status.json:\n%s", mac, got, want, body)
			return got
		}
	}
}

// MetricsHave checks serve's /metrics for series matching each regexp.
func (l *Lab) MetricsHave(t testing.TB, base string, want ...string) {
	t.Helper()
	body, err := Get(l.NS, base+"/metrics")
	if err != nil {
		t.Errorf("GET /metrics: %v", err)
		return
	}
	for _, w := range want {
		if !regexp.MustCompile(`(?m)^` + w).MatchString(body) {
			var lines []string
			for _, line := range strings.Split(body, "\n") {
				if strings.HasPrefix(line, "ramboot_") {
					lines = append(lines, line)
				}
			}
			t.Errorf("/metrics has no %s:\n%s", w, strings.Join(lines, "\n"))
		}
	}
}

// SSH runs cmd on the node at addr as root with the run's key.
func (l *Lab) SSH(t testing.TB, addr, cmd string) (string, error) {
	t.Helper()
	key, _ := cache.SSHKeys(t)
	return l.Exec(t, 240*time.Second, "ssh", "-i", key,
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "PasswordAuthentication=no", "-o", "LogLevel=ERROR",
		"root@"+addr, cmd)
}

// SSHUntil retries SSH until it succeeds (sshd is one of the last
// units up), for at most timeout.
func (l *Lab) SSHUntil(t testing.TB, addr, cmd string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out, err := l.SSH(t, addr, cmd)
		if err == nil {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("ssh root@%s %q: %v\n%s", addr, cmd, err, out)
		}
		time.Sleep(3 * time.Second)
	}
}

// Metric is one series' value on serve's /metrics at base (fetched from
// inside the lab); ok is false when /metrics has no such series.
func (l *Lab) Metric(base, series string) (v float64, ok bool, err error) {
	body, err := Get(l.NS, base+"/metrics")
	if err != nil {
		return 0, false, fmt.Errorf("GET %s/metrics: %w", base, err)
	}
	for _, line := range strings.Split(body, "\n") {
		if s, found := strings.CutPrefix(line, series+" "); found {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return 0, false, fmt.Errorf("%s/metrics: %s: %w", base, line, err)
			}
			return v, true, nil
		}
	}
	return 0, false, nil
}

// Hardware waits until serve's /status.json (from the lab's namespace)
// has the hardware line of node mac (its init's facts) and returns it.
func (l *Lab) Hardware(t testing.TB, mac string, timeout time.Duration) string {
	t.Helper()
	var last string
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		body, err := Get(l.NS, "http://"+Addr+":8080/status.json")
		if err != nil {
			last = err.Error()
			continue
		}
		var st struct {
			Nodes []Node `json:"nodes"`
		}
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			last = err.Error()
			continue
		}
		for _, n := range st.Nodes {
			if n.MAC == mac && n.Hardware != "" {
				return n.Hardware
			}
		}
		last = "no hardware line for " + mac
	}
	t.Fatalf("node %s's facts did not reach serve within %v: %s", mac, timeout, last)
	return ""
}

// HTTPBootTree is a copy of board's tree (cache.Image, CopyTree) with the
// boot.img and boot.sig `ramboot build --http-boot --sign-key` writes,
// signed by a fresh RSA-2048 key: the tree, the key and what was built.
func HTTPBootTree(t testing.TB, board string) (string, *rsa.PrivateKey, *builder.BootImage) {
	t.Helper()
	src, _ := cache.Image(t, board)
	dir := CopyTree(t, src)
	tr, err := tree.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	b := tr.Boards[0]
	bi, err := builder.MakeBootImage(dir, b, nil, b.Manifest.SourceDate, key)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{bi.Info.Name: bi.Img, bi.Info.Sig.Name: bi.Sig} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, key, bi
}
