package e2e

// Servers for the benchmarks, in lab_test.go's lab. Same rules: every
// namespace is rbt-<pid>-<n> on 192.0.2.0/24 with no route out, every
// process is started here in its own process group, inside a namespace,
// and stopped by its pid (its group only if it ignores SIGTERM), and the
// namespaces are deleted when the benchmark ends.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ramboot/ramboot/internal/testenv"
)

// sbLab is lab_test.go's Lab, for a benchmark (no guest is booted).
type sbLab struct {
	*Lab
	tb testing.TB
}

func newSBLab(tb testing.TB) *sbLab {
	tb.Helper()
	return &sbLab{Lab: NewLab(tb), tb: tb}
}

func (l *sbLab) peer(addr string) *Peer { return l.Lab.Peer(l.tb, addr) }

// sbProc is a server a benchmark started. Stop ends it early (the
// benchmarks run one server at a time); cleanup stops it if still running.
type sbProc struct {
	Name string
	cmd  *exec.Cmd

	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
	err  error
	once sync.Once
}

func (p *sbProc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

// sbStartIn runs bin in namespace ns (ip netns exec: ip execs bin, so
// the pid is the server's own).
func sbStartIn(tb testing.TB, ns, name, bin string, args ...string) *sbProc {
	tb.Helper()
	p := &sbProc{Name: name, done: make(chan struct{})}
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", ns, bin}, args...)...)
	p.cmd.Stdout = p
	p.cmd.Stderr = p
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	tb.Logf("%s: ip netns exec %s %s %s", name, ns, bin, strings.Join(args, " "))
	if err := p.cmd.Start(); err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		if err := p.Stop(); err != nil {
			tb.Errorf("%v", err)
		}
		if tb.Failed() {
			tb.Logf("%s output:\n%s", name, p.Output())
		}
	})
	return p
}

// Pid is the server's process id (and its process group's).
func (p *sbProc) Pid() int { return p.cmd.Process.Pid }

// mustBe checks that the pid is the server itself (ip netns exec execs
// it), so that its memory and CPU are the server's and not ip's.
func (p *sbProc) mustBe(tb testing.TB, comm string) {
	tb.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p.Pid()))
	if got := strings.TrimSpace(string(data)); err != nil || got != comm {
		tb.Fatalf("%s: pid %d is %q (%v), want %q", p.Name, p.Pid(), got, err, comm)
	}
}

// Stop sends SIGTERM to the server's pid; after 10s SIGKILL goes to the
// process group this benchmark created for it.
func (p *sbProc) Stop() error {
	var err error
	p.once.Do(func() {
		select {
		case <-p.done:
			return
		default:
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
			return
		case <-time.After(10 * time.Second):
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

// Output is what the process printed so far.
func (p *sbProc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// WaitFor waits until re matches the output.
func (p *sbProc) WaitFor(tb testing.TB, re string, timeout time.Duration) {
	tb.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(timeout)
	for {
		if rx.MatchString(p.Output()) {
			return
		}
		select {
		case <-p.done:
			tb.Fatalf("%s exited (%v) before printing %q:\n%s", p.Name, p.err, re, p.Output())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: no %q within %v:\n%s", p.Name, re, timeout, p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sbWaitUDPPort waits until something in ns listens on UDP port.
func sbWaitUDPPort(tb testing.TB, ns string, port int, p *sbProc) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := execIn(ns, 5*time.Second, "ss", "-Huln", fmt.Sprintf("sport = :%d", port))
		if strings.TrimSpace(out) != "" {
			return
		}
		select {
		case <-p.done:
			tb.Fatalf("%s exited (%v):\n%s", p.Name, p.err, p.Output())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: nothing on UDP port %d in %s after 10s:\n%s", p.Name, port, ns, p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Memory of a server.

// sbStatusKB reads a "VmHWM:"-style field (kB) of /proc/PID/status.
func sbStatusKB(pid int, field string) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == field+":" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return -1
}

// sbGroupSampler samples, every interval, the summed RSS and PSS of all
// processes of one process group (tftpd-hpa forks a child per transfer:
// its parent's VmHWM alone says little).
type sbGroupSampler struct {
	pgid               int
	stop, done         chan struct{}
	peakRSS, peakPSS   int64 // kB
	peakProcs, samples int
	cpu                map[int]float64 // pid -> CPU s last seen
}

func sbSampleGroup(pgid int, interval time.Duration) *sbGroupSampler {
	s := &sbGroupSampler{pgid: pgid, stop: make(chan struct{}), done: make(chan struct{}), cpu: map[int]float64{}}
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			s.sample()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *sbGroupSampler) Stop() {
	close(s.stop)
	<-s.done
	s.sample()
}

// CPU is the CPU time of the group's processes while sampled: each one's
// last reading summed (a process that lived less than one interval is
// missed; one's last interval before it exited is).
func (s *sbGroupSampler) CPU() float64 {
	var t float64
	for _, c := range s.cpu {
		t += c
	}
	return t
}

func (s *sbGroupSampler) sample() {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	var rss, pss int64
	procs := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...: comm may hold spaces.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 3 {
			continue
		}
		if pg, _ := strconv.Atoi(f[2]); pg != s.pgid {
			continue
		}
		procs++
		if c := sbTaskCPU(pid); c >= 0 {
			s.cpu[pid] = c
		}
		roll, err := os.ReadFile(filepath.Join("/proc", e.Name(), "smaps_rollup"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(roll), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			n, _ := strconv.ParseInt(f[1], 10, 64)
			switch f[0] {
			case "Rss:":
				rss += n
			case "Pss:":
				pss += n
			}
		}
	}
	s.samples++
	s.peakRSS = max(s.peakRSS, rss)
	s.peakPSS = max(s.peakPSS, pss)
	s.peakProcs = max(s.peakProcs, procs)
}

// sbRambootBinary builds cmd/ramboot once per run, into the run's scratch
// directory that TestMain removes.
var sbRambootBin struct {
	once sync.Once
	path string
	err  error
}

func sbRambootBinary(tb testing.TB) string {
	tb.Helper()
	sbRambootBin.once.Do(func() {
		dir := filepath.Join(os.TempDir(), "ramboot-e2e-"+strconv.Itoa(os.Getpid()), "sb-bin")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			sbRambootBin.err = err
			return
		}
		sbRambootBin.path = filepath.Join(dir, "ramboot")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", sbRambootBin.path, "./cmd/ramboot")
		cmd.Dir = srcDir(tb)
		if out, err := cmd.CombinedOutput(); err != nil {
			sbRambootBin.err = fmt.Errorf("go build ./cmd/ramboot: %v\n%s", err, out)
		}
	})
	if sbRambootBin.err != nil {
		tb.Fatal(sbRambootBin.err)
	}
	return sbRambootBin.path
}

// The servers, in the lab's own namespace on br0 (192.0.2.1).

// startRamboot runs `ramboot serve` on br0 with --dhcp mode (off, proxy).
func (l *sbLab) startRamboot(root, mode string) *sbProc {
	tb := l.tb
	tb.Helper()
	p := sbStartIn(tb, l.NS, "ramboot-serve", sbRambootBinary(tb),
		"serve", "--root", root, "--interface", "br0", "--dhcp", mode)
	p.WaitFor(tb, `msg="http listening"`, 15*time.Second)
	p.mustBe(tb, filepath.Base(sbRambootBinary(tb)))
	return p
}

// startTftpdHPA runs tftpd-hpa in the foreground on 192.0.2.1:69,
// chrooted (-s) to root. It forks a child per transfer. Its -B (largest
// blksize granted) defaults to 65464, so the clients' 1024 and 1468 are
// granted as asked; tftp-hpa 5.2 has no windowsize (RFC 7440).
func (l *sbLab) startTftpdHPA(root string) *sbProc {
	tb := l.tb
	tb.Helper()
	bin := sbInTftpd(tb)
	p := sbStartIn(tb, l.NS, "tftpd-hpa", bin, "-L", "-s", root, "-a", LabAddr+":69")
	sbWaitUDPPort(tb, l.NS, 69, p)
	p.mustBe(tb, "in.tftpd")
	return p
}

// startDnsmasqTFTP runs dnsmasq as a TFTP server only (no DNS, no DHCP)
// on br0; tftpMax > 0 sets --tftp-max (dnsmasq's default is 50).
func (l *sbLab) startDnsmasqTFTP(root string, tftpMax int) *sbProc {
	tb := l.tb
	tb.Helper()
	need(tb, "dnsmasq", "dnsmasq")
	args := []string{"--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
		"--enable-tftp", "--tftp-root=" + root,
		"--interface=br0", "--bind-interfaces", "--except-interface=lo",
		"--log-facility=-", "--user=root", "--group=root",
		"--pid-file=" + filepath.Join(l.Dir, fmt.Sprintf("dnsmasq-tftp-%d.pid", tftpMax)),
	}
	if tftpMax > 0 {
		args = append(args, fmt.Sprintf("--tftp-max=%d", tftpMax))
	}
	p := sbStartIn(tb, l.NS, "dnsmasq-tftp", "dnsmasq", args...)
	p.WaitFor(tb, `TFTP root is`, 15*time.Second)
	p.mustBe(tb, "dnsmasq")
	return p
}

// startDnsmasqProxy runs dnsmasq as the Raspberry Pi tutorial's proxyDHCP
// on br0: --dhcp-range=192.0.2.0,proxy --pxe-service=0,"Raspberry Pi
// Boot" (from a config file: dnsmasq strips the quotes only there). It
// logs each transaction, as ramboot serve does.
func (l *sbLab) startDnsmasqProxy() *sbProc {
	tb := l.tb
	tb.Helper()
	need(tb, "dnsmasq", "dnsmasq")
	cf := filepath.Join(l.Dir, "dnsmasq-proxy.conf")
	if err := os.WriteFile(cf, []byte("dhcp-range=192.0.2.0,proxy\npxe-service=0,\"Raspberry Pi Boot\"\n"), 0o644); err != nil {
		tb.Fatal(err)
	}
	p := sbStartIn(tb, l.NS, "dnsmasq-proxy", "dnsmasq", "--keep-in-foreground",
		"--conf-file="+cf, "--port=0", "--interface=br0", "--bind-interfaces", "--except-interface=lo",
		"--dhcp-leasefile="+filepath.Join(l.Dir, "dnsmasq-proxy.leases"),
		"--log-facility=-", "--user=root", "--group=root",
		"--pid-file="+filepath.Join(l.Dir, "dnsmasq-proxy.pid"))
	p.WaitFor(tb, `DHCP, proxy on subnet`, 15*time.Second)
	p.mustBe(tb, "dnsmasq")
	return p
}

// sbTaskCPU is the CPU time of all threads of pid so far, in seconds, from
// /proc/PID/task/*/schedstat (nanoseconds; threads that already exited are
// not counted: Go's rarely exit, dnsmasq and in.tftpd have one).
func sbTaskCPU(pid int) float64 {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return -1
	}
	var ns int64
	for _, t := range tasks {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			continue
		}
		if f := strings.Fields(string(data)); len(f) > 0 {
			n, _ := strconv.ParseInt(f[0], 10, 64)
			ns += n
		}
	}
	return float64(ns) / 1e9
}

// sbInTftpd finds tftpd-hpa's daemon, in /usr/sbin when PATH has no sbin.
func sbInTftpd(tb testing.TB) string {
	tb.Helper()
	if p, err := exec.LookPath("in.tftpd"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/in.tftpd"); err == nil {
		return "/usr/sbin/in.tftpd"
	}
	testenv.Skip(tb, "in.tftpd not found: `make bench` installs it (e2e/deps.sh: tftpd-hpa)")
	return ""
}
