package lab

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ramboot/ramboot/e2e/testlog"
	"github.com/ramboot/ramboot/internal/netnstest"
)

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
	stop sync.Once
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
		if err := p.Stop(); err != nil {
			t.Errorf("%v", err)
		}
		if t.Failed() {
			testlog.Output(t, name, p.Output())
		}
	})
	return p
}

// StartIn starts bin in namespace ns (ip netns exec, which execs bin in
// place: Pid is then bin's own process id); see Start.
func StartIn(t testing.TB, ns, name, bin string, args ...string) *Proc {
	t.Helper()
	return Start(t, name, "ip", append([]string{"netns", "exec", ns, bin}, args...)...)
}

// Pid is the process's id (and its process group's).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited; Err is then its exit error.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the process's exit error, once Done is closed.
func (p *Proc) Err() error {
	<-p.done
	return p.err
}

// MustBe checks that the pid is the server itself (ip netns exec execs
// it), so that its memory and CPU are the server's and not ip's.
func (p *Proc) MustBe(t testing.TB, comm string) {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p.Pid()))
	if got := strings.TrimSpace(string(data)); err != nil || got != comm {
		t.Fatalf("%s: pid %d is %q (%v), want %q", p.Name, p.Pid(), got, err, comm)
	}
}

// ServerPid is the pid of the process named comm that p started: p's own
// when `ip netns exec` exec'd it, else its only child's (followed down a
// few levels).
func (p *Proc) ServerPid(t testing.TB, comm string) int {
	t.Helper()
	pid := p.Pid()
	for range 4 {
		c, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil {
			t.Fatalf("%s: /proc/%d: %v", p.Name, pid, err)
		}
		if strings.TrimSpace(string(c)) == comm {
			return pid
		}
		kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		f := strings.Fields(string(kids))
		if len(f) != 1 {
			t.Fatalf("%s: pid %d is %q with children %v; looking for %q", p.Name, pid, strings.TrimSpace(string(c)), f, comm)
		}
		pid, _ = strconv.Atoi(f[0])
	}
	t.Fatalf("%s: no process %q under pid %d", p.Name, comm, p.Pid())
	return 0
}

// Stop sends SIGTERM to the process; after 15 s SIGKILL goes to the
// process group this test created for it. It returns once the process
// has exited (an error if it has not 10 s after SIGKILL); a second Stop
// returns at once.
func (p *Proc) Stop() error {
	var err error
	p.stop.Do(func() {
		select {
		case <-p.done:
			return
		default:
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
			return
		case <-time.After(15 * time.Second):
		}
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			err = fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.Name, p.cmd.Process.Pid)
		}
	})
	return err
}

// Signal sends sig to the process group now and fails t unless the
// process exits within 10 s (then SIGKILL, 10 s more).
func (p *Proc) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	syscall.Kill(-p.cmd.Process.Pid, sig)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s (pid %d) does not exit", p.Name, p.cmd.Process.Pid)
		}
	}
}

// WaitFor waits until re matches anywhere in the output (Expect matches
// only after its last match, and moves on).
func (p *Proc) WaitFor(t testing.TB, re string, timeout time.Duration) {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(timeout)
	for {
		if rx.MatchString(p.Output()) {
			return
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited (%v) before printing %q:\n%s", p.Name, p.err, re, p.Output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q within %v:\n%s", p.Name, re, timeout, p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitUDPPort waits until something in namespace ns listens on UDP port,
// failing t if p exits first or after 10 s.
func (p *Proc) WaitUDPPort(t testing.TB, ns string, port int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := netnstest.Exec(ns, 5*time.Second, "ss", "-Huln", fmt.Sprintf("sport = :%d", port))
		if strings.TrimSpace(out) != "" {
			return
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited (%v):\n%s", p.Name, p.err, p.Output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: nothing on UDP port %d in %s after 10s:\n%s", p.Name, port, ns, p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
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

// Run runs a command on this host (bounded: 30 s) and fails t if it
// fails; it returns the combined output.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	return netnstest.Run(t, name, args...)
}

// Need skips t when a tool is missing (fails it under RAMBOOT_STRICT=1);
// `make test` runs e2e/deps.sh, which installs pkg.
func Need(t testing.TB, tool, pkg string) {
	t.Helper()
	netnstest.Need(t, tool, pkg)
}
