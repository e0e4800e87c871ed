package boot

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ramboot/ramboot/builder"
	"github.com/ramboot/ramboot/e2e/cache"
	"github.com/ramboot/ramboot/e2e/lab"
	"github.com/ramboot/ramboot/internal/netnstest"
)

// TestLabSSH: an image with a public key laid in by an overlay; the real
// OpenSSH client logs in with the key and runs a command, and a client
// without the key is refused.
func TestLabSSH(t *testing.T) {
	if testing.Short() {
		t.Skip("lab tests run in `make test`")
	}
	lab.Need(t, "ssh", "openssh-client")
	lab.Need(t, "ssh-keygen", "openssh-client")
	keys := t.TempDir()
	for _, k := range []string{"good", "bad"} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(keys, k)).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
	}
	pub, err := os.ReadFile(filepath.Join(keys, "good.pub"))
	if err != nil {
		t.Fatal(err)
	}
	overlay := t.TempDir()
	os.MkdirAll(filepath.Join(overlay, "etc", "ramboot"), 0o755)
	os.WriteFile(filepath.Join(overlay, "etc", "ramboot", "authorized_keys"), pub, 0o644)
	dir := t.TempDir()
	b := &builder.Build{Options: builder.Options{Board: "virt", Out: dir, SrcDir: cache.SrcDir(), Version: "e2e", Overlays: []string{overlay}}}
	if err := b.Run(context.Background()); err != nil {
		t.Fatal(err)
	}

	l := lab.New(t)
	// No option 224 at all: the provisioning shell, on the console and
	// over SSH.
	l.Dnsmasq(t, "--dhcp-range=192.0.2.100,192.0.2.150,12h", "--dhcp-host=52:54:00:12:34:56,192.0.2.120")
	vm := l.Boot(t, dir, "")
	vm.Expect(`ssh: listening on port 22`, 120*time.Second)
	vm.Expect(`224: no option 224: provisioning shell`, 30*time.Second)
	ssh := func(key string, cmd string) (string, error) {
		return l.Exec(t, 60*time.Second, "ssh", "-i", filepath.Join(keys, key),
			"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
			"-o", "BatchMode=yes", "-o", "ConnectTimeout=20", "-o", "PasswordAuthentication=no",
			"root@192.0.2.120", cmd)
	}
	out, err := ssh("good", "echo ssh-$((6*7)); cat /proc/sys/kernel/hostname")
	if err != nil || !strings.Contains(out, "ssh-42") {
		t.Fatalf("ssh with the authorized key: %v\n%s", err, out)
	}
	// The server is a child process of PID 1, not PID 1 itself.
	m := vm.Expect(`ssh: server process (\d+), host key made for this boot`, 10*time.Second)
	if m[1] == "1" {
		t.Errorf("the SSH server runs in PID 1")
	}
	// Malformed handshakes, as a hostile host sends them: the server (and
	// PID 1) stay up.
	for i, junk := range []string{"SSH-2.0-x\r\n" + strings.Repeat("\xff", 4096), "\x00\x00\xff\xff\x14" + strings.Repeat("A", 70000), "GET / HTTP/1.0\r\n\r\n"} {
		err := netnstest.Do(l.NS, func() error {
			c, err := net.DialTimeout("tcp", "192.0.2.120:22", 10*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Write([]byte(junk))
			io.Copy(io.Discard, c)
			return nil
		})
		if err != nil {
			t.Errorf("malformed handshake %d: %v", i, err)
		}
	}
	out, err = ssh("good", "echo still-$((6*7))")
	if err != nil || !strings.Contains(out, "still-42") {
		t.Fatalf("ssh after malformed handshakes: %v\n%s", err, out)
	}
	out, err = ssh("bad", "echo no")
	if err == nil || strings.Contains(out, "\nno") || !strings.Contains(out, "Permission denied") {
		t.Fatalf("ssh with another key was not refused: %v\n%s", err, out)
	}
	vm.Expect(`ssh: .*(auth|fail|denied|reject)`, 10*time.Second)
	// The console shell still answers.
	vm.ShellRoundTrip()
	vm.NoPanic()
}
