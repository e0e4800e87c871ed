package tftp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ramboot/ramboot/internal/testenv"
)

// Interop with real clients: tftp-hpa's tftp, atftp and curl, all
// installed by `make test` (e2e/deps.sh). The server listens on 127.0.0.1
// on a free high port only.

func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		testenv.Skipf(t, "%s not installed (Debian package %s; `make test` installs it via e2e/deps.sh)", name, pkg)
	}
	return p
}

func runClient(t *testing.T, timeout time.Duration, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	if len(out) > 0 {
		t.Logf("%s: %s", name, bytes.TrimSpace(out))
	}
}

func sameFile(t *testing.T, got string, want []byte) {
	t.Helper()
	b, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("%s: %d bytes, want %d (content differs)", got, len(b), len(want))
	}
}

func TestInterop(t *testing.T) {
	root := t.TempDir()
	data := randomBytes(3<<20+777, 10) // a few MB, not a multiple of any blksize
	writeFile(t, root, "boot/kernel.img", data)
	exact := data[:1024*1000]
	writeFile(t, root, "exact", exact)

	type client struct {
		name, tool, pkg string
		args            func(port, file, dest string) []string
		blk, win        int
	}
	clients := []client{
		{"tftp-hpa", "tftp", "tftp-hpa", func(port, file, dest string) []string {
			return []string{"-m", "binary", "127.0.0.1", port, "-c", "get", file, dest}
		}, 512, 1},
		{"tftp-hpa verbose", "tftp", "tftp-hpa", func(port, file, dest string) []string {
			return []string{"-v", "-m", "binary", "127.0.0.1", port, "-c", "get", file, dest}
		}, 512, 1},
		{"atftp", "atftp", "atftp", func(port, file, dest string) []string {
			return []string{"--get", "-r", file, "-l", dest, "127.0.0.1", port}
		}, 512, 1},
		{"atftp blksize 1428 tsize", "atftp", "atftp", func(port, file, dest string) []string {
			return []string{"--get", "-r", file, "-l", dest, "--option", "blksize 1428", "--option", "tsize 0", "127.0.0.1", port}
		}, 1428, 1},
		{"atftp blksize 1428 windowsize 16", "atftp", "atftp", func(port, file, dest string) []string {
			return []string{"--get", "-r", file, "-l", dest, "--option", "blksize 1428", "--option", "windowsize 16", "127.0.0.1", port}
		}, 1428, 16},
		{"curl blksize 1024", "curl", "curl", func(port, file, dest string) []string {
			return []string{"-sS", "--tftp-blksize", "1024", "tftp://127.0.0.1:" + port + "/" + file, "-o", dest}
		}, 1024, 1},
		{"curl no options", "curl", "curl", func(port, file, dest string) []string {
			return []string{"-sS", "--tftp-no-options", "tftp://127.0.0.1:" + port + "/" + file, "-o", dest}
		}, 512, 1},
	}
	for _, c := range clients {
		for _, f := range []struct {
			name string
			want []byte
		}{{"boot/kernel.img", data}, {"exact", exact}} {
			t.Run(c.name+"/"+f.name, func(t *testing.T) {
				tool := needTool(t, c.tool, c.pkg)
				ts := startServer(t, &Server{Root: root})
				_, port, _ := net.SplitHostPort(ts.Addr)
				dest := filepath.Join(t.TempDir(), "out")
				runClient(t, 60*time.Second, tool, c.args(port, f.name, dest)...)
				sameFile(t, dest, f.want)
				e := ts.waitEvent(t, f.name)
				if e.Kind != KindServed || e.Bytes != int64(len(f.want)) || e.BlockSize != c.blk || e.WindowSize != c.win {
					t.Errorf("event %+v, want served blksize %d windowsize %d", e, c.blk, c.win)
				}
				t.Log(e)
			})
		}
	}

	t.Run("not found", func(t *testing.T) {
		tool := needTool(t, "curl", "curl")
		ts := startServer(t, &Server{Root: root})
		_, port, _ := net.SplitHostPort(ts.Addr)
		out, err := exec.CommandContext(t.Context(), tool, "-sS", "tftp://127.0.0.1:"+port+"/nope", "-o", filepath.Join(t.TempDir(), "x")).CombinedOutput()
		// Exit status 68 is CURLE_TFTP_NOTFOUND: curl got ERROR 1. (curl
		// 7.88 prints a spurious getpeername() message with it.)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 68 {
			t.Errorf("curl on a missing file: %v %s; want exit status 68", err, out)
		}
		if e := ts.waitEvent(t, "nope"); e.Kind != KindNotFound {
			t.Errorf("event %+v", e)
		}
	})
}

// Real clients across the block number rollover (> 32 MB at blksize 512).
func TestInteropRollover(t *testing.T) {
	if testing.Short() {
		t.Skip("33 MB lock-step transfers; skipped with -short")
	}
	root := t.TempDir()
	const size = 65536*512 + 5000 // past the wrap
	data := patternFile(t, filepath.Join(root, "big"), size)
	want := sha256.Sum256(data)
	for _, c := range []struct {
		name, tool, pkg string
		args            func(port, dest string) []string
	}{
		{"tftp-hpa", "tftp", "tftp-hpa", func(port, dest string) []string {
			return []string{"-m", "binary", "127.0.0.1", port, "-c", "get", "big", dest}
		}},
		{"atftp", "atftp", "atftp", func(port, dest string) []string {
			return []string{"--get", "-r", "big", "-l", dest, "127.0.0.1", port}
		}},
		{"curl", "curl", "curl", func(port, dest string) []string {
			return []string{"-sS", "--tftp-blksize", "512", "tftp://127.0.0.1:" + port + "/big", "-o", dest}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tool := needTool(t, c.tool, c.pkg)
			ts := startServer(t, &Server{Root: root})
			_, port, _ := net.SplitHostPort(ts.Addr)
			dest := filepath.Join(t.TempDir(), "out")
			runClient(t, 120*time.Second, tool, c.args(port, dest)...)
			b, err := os.ReadFile(dest)
			if err != nil {
				t.Fatal(err)
			}
			if got := sha256.Sum256(b); got != want {
				t.Fatalf("%d bytes, want %d (content differs)", len(b), size)
			}
			e := ts.waitEvent(t, "big")
			if e.Kind != KindServed || e.Bytes != size {
				t.Errorf("event %+v", e)
			}
			t.Log(e)
		})
	}
}
