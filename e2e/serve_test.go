package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ramboot/ramboot/e2e/cache"
	"github.com/ramboot/ramboot/e2e/lab"
	"github.com/ramboot/ramboot/internal/netnstest"
)

// Helpers for the `ramboot serve` scenarios (serve_*_test.go): the
// binary is built once per test run and runs inside a Lab's namespace on
// br0 (192.0.2.1), logging JSON lines that the tests parse.

// serveArgs is the command line of `ramboot serve` on the lab's br0.
func svArgs(t testing.TB, l *lab.Lab, root string, args ...string) []string {
	base := []string{"netns", "exec", l.NS, cache.Ramboot(t), "serve",
		"--root", root, "--interface", "br0", "--log-format", "json"}
	if !slices.Contains(args, "--lease-file") {
		// Each lab its own leases: the default, next to the tree, is
		// shared by every test that serves that tree.
		base = append(base, "--lease-file", filepath.Join(l.Dir, "leases.json"))
	}
	return append(base, args...)
}

// startServe runs `ramboot serve` in the lab and returns once its HTTP
// listener is up (the last one it starts).
func svStart(t testing.TB, l *lab.Lab, root string, args ...string) *lab.Proc {
	t.Helper()
	p := lab.Start(t, "ramboot-serve", "ip", svArgs(t, l, root, args...)...)
	svWaitLog(t, p, 0, 15*time.Second, "http listening", func(e svLogLine) bool { return e.msg() == "http listening" })
	return p
}

// svLogLine is one JSON log line of `ramboot serve --log-format json`.
type svLogLine map[string]any

func (e svLogLine) msg() string { return e.str("msg") }
func (e svLogLine) str(k string) string {
	switch v := e[k].(type) {
	case string:
		return v
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}
func (e svLogLine) String() string {
	b, _ := json.Marshal(map[string]any(e))
	return string(b)
}

// serveLog parses the JSON lines p printed so far; other lines are skipped.
func svLog(p *lab.Proc) []svLogLine {
	var out []svLogLine
	sc := bufio.NewScanner(strings.NewReader(p.Output()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var e svLogLine
		if json.Unmarshal(line, &e) == nil {
			out = append(out, e)
		}
	}
	return out
}

// waitLog waits for a log line at index >= from matching pred and
// returns it and its index.
func svWaitLog(t testing.TB, p *lab.Proc, from int, timeout time.Duration, what string, pred func(svLogLine) bool) (svLogLine, int) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		lines := svLog(p)
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

// tftpLogFor waits for serve's tftp line for path (requested name).
func svTFTPLog(t testing.TB, p *lab.Proc, from int, path string) (svLogLine, int) {
	t.Helper()
	return svWaitLog(t, p, from, 10*time.Second, "tftp "+path, func(e svLogLine) bool {
		return e.msg() == "tftp" && e.str("path") == path
	})
}

// copyTree copies the regular files of src (one level, as the built trees
// are) into a new directory: the server confines symlinks, so a test
// that changes its tree gets real copies.
func svCopyTree(t testing.TB, src string) string {
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

func svRead(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func svWrite(t testing.TB, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// sameBytes fails the test unless got is want, saying where they differ.
func svSameBytes(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	t.Errorf("%s: %d bytes (sha256 %.12s), want %d bytes (sha256 %.12s); first difference at byte %d",
		what, len(got), sha256hex(got), len(want), sha256hex(want), i)
}

// peerExec runs a command inside a peer's namespace, bounded.
func svPeerExec(t testing.TB, p *lab.Peer, timeout time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	t.Logf("%s$ %s %s", p.NS, name, strings.Join(args, " "))
	return netnstest.Exec(p.NS, timeout, name, args...)
}

// setMAC gives a peer's interface a fixed MAC.
func svSetMAC(t testing.TB, p *lab.Peer, mac string) {
	t.Helper()
	lab.Run(t, "ip", "-n", p.NS, "link", "set", p.Iface, "address", mac)
}

// statusNodes fetches /status.json from inside a peer.
func svStatus(t testing.TB, p *lab.Peer) []svNode {
	t.Helper()
	body, err := lab.Get(p.NS, "http://"+lab.Addr+":8080/status.json")
	if err != nil {
		t.Fatalf("GET /status.json: %v", err)
	}
	var st struct {
		Nodes []svNode `json:"nodes"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/status.json: %v\n%s", err, body)
	}
	return st.Nodes
}

type svNode struct {
	MAC, Serial, Hostname, IP, Kind, Stage, Detail string
	Steps                                          []struct{ Stage, Detail string }
}
