package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// VM is a QEMU guest whose serial console is the process's stdio.
type VM struct {
	t     testing.TB
	cmd   *exec.Cmd
	stdin io.WriteCloser

	mu   sync.Mutex
	out  bytes.Buffer
	mark int // Expect searches from here
	done chan struct{}
	log  *os.File
}

// StartVM starts QEMU with args; it is killed (by its pid) when the test ends.
func StartVM(t testing.TB, bin string, args ...string) *VM {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	vm := &VM{t: t, cmd: cmd, stdin: stdin, done: make(chan struct{})}
	if d := os.Getenv("RAMBOOT_E2E_LOGDIR"); d != "" {
		vm.log, _ = os.Create(fmt.Sprintf("%s/%s.log", d, strings.ReplaceAll(t.Name(), "/", "_")))
	}
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = pw
	t.Logf("qemu: %s %s", bin, strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := pr.Read(buf)
			if n > 0 {
				vm.mu.Lock()
				vm.out.Write(buf[:n])
				if vm.log != nil {
					vm.log.Write(buf[:n])
				}
				vm.mu.Unlock()
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		cmd.Wait()
		pw.Close()
		close(vm.done)
	}()
	t.Cleanup(func() {
		if cmd.Process != nil {
			cmd.Process.Kill()
		}
		<-vm.done
		if vm.log != nil {
			vm.log.Close()
		}
		if t.Failed() {
			t.Logf("console:\n%s", vm.Output())
		}
	})
	return vm
}

// Output is everything the console printed so far.
func (vm *VM) Output() string {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.out.String()
}

// Expect waits until re matches console output printed after the last
// match, and returns the submatches.
func (vm *VM) Expect(re string, timeout time.Duration) []string {
	vm.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(timeout)
	for {
		vm.mu.Lock()
		s := vm.out.String()[vm.mark:]
		if loc := rx.FindStringSubmatchIndex(s); loc != nil {
			m := rx.FindStringSubmatch(s)
			vm.mark += loc[1]
			vm.mu.Unlock()
			return m
		}
		vm.mu.Unlock()
		select {
		case <-vm.done:
			// The console tail and QEMU's own exit status, in the
			// failure line itself: the full console printed at cleanup
			// may be cut in the middle by whoever shows the log.
			vm.t.Fatalf("QEMU exited (%v) before the console printed %q; the console's last lines:\n%s", vm.cmd.ProcessState, re, tailLines(vm.Output(), 25))
		default:
		}
		if time.Now().After(deadline) {
			vm.t.Fatalf("no %q on the console within %v", re, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tailLines is the last n lines of s.
func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Send types s on the console.
func (vm *VM) Send(s string) {
	vm.t.Helper()
	if _, err := io.WriteString(vm.stdin, s); err != nil {
		vm.t.Fatalf("console write: %v", err)
	}
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Stop ends QEMU now, by its process id, and waits for it (bounded), so
// that another guest can take the lab's tap device.
func (vm *VM) Stop() {
	if vm.cmd.Process != nil {
		vm.cmd.Process.Kill()
	}
	select {
	case <-vm.done:
	case <-time.After(30 * time.Second):
		vm.t.Errorf("QEMU (pid %d) did not exit within 30 s of SIGKILL", vm.cmd.Process.Pid)
	}
}
