// Package netnstest gives tests private network namespaces: named
// rbt-<pid>-<n>, holding only what the test puts there (lo is up, nothing
// routes out), deleted when the test ends. Servers that bind wildcards or
// port 69, DHCP servers and clients run only inside one, never on this
// machine's own interfaces (notes: test-lab.md, rule zero).
//
// A unit test that needs one:
//
//	netnstest.Skip(t) // not in -short; root (RAMBOOT_STRICT=1 fails instead)
//	ns := netnstest.New(t)
//	netnstest.Run(t, "ip", "-n", ns, "addr", "add", "10.99.0.1/24", "dev", "lo")
//	var conn net.PacketConn
//	err := netnstest.Do(ns, func() (err error) {
//		conn, err = net.ListenPacket("udp4", ":69") // the socket stays in ns
//		return err
//	})
//
// Two namespaces joined by a veth pair: Veth(t, nsA, "va", nsB, "vb").
// A process inside one: Exec(ns, timeout, name, args...) for its output,
// Command(ns, name, args...) to start it (ip execs the command in place,
// so its pid is the command's). A helper process that runs a DHCP server
// calls MustBeInside(t) first. A test that must run whole inside a
// namespace (every goroutine's sockets there): RunIn and Inside.
package netnstest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ramboot/ramboot/internal/testenv"
)

// Prefix starts every namespace name this package makes; the pid that
// follows it says which test process made it.
const Prefix = "rbt-"

var seq atomic.Int32 // namespace names in this process: a test cache, not state

// Skip skips t where namespaces cannot be made: in -short runs, without
// root, without iproute2 (under RAMBOOT_STRICT=1 the last two fail).
func Skip(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs network namespaces: not in -short")
	}
	if os.Geteuid() != 0 {
		testenv.Skip(t, "needs root (network namespaces): run `make test` as root")
	}
	Need(t, "ip", "iproute2")
}

// Need skips t (fails it under RAMBOOT_STRICT=1) when tool is not on
// PATH; pkg is the Debian package `make test` installs it from.
func Need(t testing.TB, tool, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		testenv.Skipf(t, "%s not found: `make test` installs it (e2e/deps.sh: %s)", tool, pkg)
	}
}

// Name is a fresh namespace name, rbt-<pid>-<n>; New makes one.
func Name() string {
	return fmt.Sprintf("%s%d-%d", Prefix, os.Getpid(), seq.Add(1))
}

// New makes a namespace with lo up and returns its name; it is deleted
// when t ends. Call Skip first.
func New(t testing.TB) string {
	t.Helper()
	ns := Name()
	Run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { Delete(t, ns) })
	Run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	return ns
}

// Delete deletes namespace ns (bounded: 20 s), reporting a failure on t.
func Delete(t testing.TB, ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", "netns", "del", ns).CombinedOutput(); err != nil {
		t.Errorf("ip netns del %s: %v: %s", ns, err, out)
	}
}

// Veth joins namespaces a and b with a veth pair, ifA in a and ifB in b,
// both left down (the caller adds addresses, a bridge, then sets them up).
func Veth(t testing.TB, a, ifA, b, ifB string) {
	t.Helper()
	Run(t, "ip", "-n", a, "link", "add", ifA, "type", "veth", "peer", "name", ifB, "netns", b)
}

// Run runs a command on this host (bounded: 30 s) and fails t if it
// fails; it returns the combined output.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Exec runs a command inside namespace ns, bounded by timeout, and
// returns its combined output.
func Exec(ns string, timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Do runs f on an OS thread switched into namespace ns. The sockets f
// creates stay in that namespace. If the thread cannot switch back, it is
// not reused: the goroutine ends with the thread locked, and the Go
// runtime then ends the thread.
func Do(ns string, f func() error) error {
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

// Listen is net.Listen inside namespace ns.
func Listen(ns, network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := Do(ns, func() (err error) {
		ln, err = net.Listen(network, addr)
		return err
	})
	if err != nil && ln != nil {
		ln.Close()
		ln = nil
	}
	return ln, err
}

// ListenPacket is net.ListenPacket inside namespace ns.
func ListenPacket(ns, network, addr string) (net.PacketConn, error) {
	var c net.PacketConn
	err := Do(ns, func() (err error) {
		c, err = net.ListenPacket(network, addr)
		return err
	})
	if err != nil && c != nil {
		c.Close()
		c = nil
	}
	return c, err
}

// Dial is a net.Dialer's Dial inside namespace ns; the connection stays
// there.
func Dial(ns string, d *net.Dialer, network, addr string) (net.Conn, error) {
	var conn net.Conn
	err := Do(ns, func() (err error) {
		conn, err = d.Dial(network, addr)
		return err
	})
	return conn, err
}

// EnvInside names the variable RunIn sets for the copy of the test binary
// it starts inside a namespace; its value is the namespace's name.
const EnvInside = "RAMBOOT_NETNS_TEST"

// Inside reports whether this test binary is the copy RunIn started in a
// namespace, and which namespace that is.
func Inside() (ns string, ok bool) {
	ns = os.Getenv(EnvInside)
	return ns, ns != ""
}

// RunIn runs test t again, in a copy of this test binary inside namespace
// ns (ip netns exec), bounded by timeout, and fails t unless the copy
// passes. Every socket of that copy, and of every goroutine it starts, is
// in ns: a server whose transfers open sockets of their own needs that,
// where Do covers only f's own thread. The test reads Inside to tell
// which side it is on:
//
//	if _, in := netnstest.Inside(); !in {
//		netnstest.Skip(t)
//		ns := netnstest.New(t)
//		// addresses, links...
//		netnstest.RunIn(t, ns, time.Minute)
//		return
//	}
//	// inside ns
func RunIn(t testing.TB, ns string, timeout time.Duration) {
	t.Helper()
	parts := strings.Split(t.Name(), "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, os.Args[0],
		"-test.run", strings.Join(parts, "/"), "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), EnvInside+"="+ns)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	t.Logf("in namespace %s:\n%s", ns, bytes.TrimSpace(out))
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("%s in namespace %s failed: %v", t.Name(), ns, err)
	}
}

// Command is exec.Command for name inside namespace ns (ip netns exec
// execs name in place, so the process's pid is name's own).
func Command(ns, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// Identify is the name of the namespace process pid is in ("" if it is
// not in a named one).
func Identify(pid int) (string, error) {
	out, err := exec.Command("ip", "netns", "identify", strconv.Itoa(pid)).Output()
	return strings.TrimSpace(string(out)), err
}

// MustBeInside fails t unless this process runs in a namespace this
// package made (rbt-…): a helper process that runs a DHCP server checks
// it first.
func MustBeInside(t testing.TB) {
	t.Helper()
	ns, err := Identify(os.Getpid())
	if err != nil || !strings.HasPrefix(ns, Prefix) {
		t.Fatalf("not in an %s network namespace (%q, %v): refusing to run", Prefix, ns, err)
	}
}
