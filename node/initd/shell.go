//go:build linux

package initd

import (
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ramboot/ramboot/bootspec"
)

// procTable is PID 1's table of children: the reaper collects every
// exit, orphans included, and hands the status to whoever waits for that
// pid.
type procTable struct {
	mu      sync.Mutex
	waiters map[int]chan int
	done    map[int]int // exits nobody waited for yet (bounded)
}

func newProcTable() *procTable {
	return &procTable{waiters: map[int]chan int{}, done: map[int]int{}}
}

// children is PID 1's table of children, made on first use.
func (in *Init) children() *procTable {
	in.procsOnce.Do(func() { in.procs = newProcTable() })
	return in.procs
}

func (pt *procTable) exited(pid, status int) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if ch, ok := pt.waiters[pid]; ok {
		ch <- status
		delete(pt.waiters, pid)
		return
	}
	if len(pt.done) > 4096 {
		for k := range pt.done {
			delete(pt.done, k)
			break
		}
	}
	pt.done[pid] = status
}

// wait returns a channel that gets pid's exit status.
func (pt *procTable) wait(pid int) <-chan int {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	ch := make(chan int, 1)
	if st, ok := pt.done[pid]; ok {
		delete(pt.done, pid)
		ch <- st
		return ch
	}
	pt.waiters[pid] = ch
	return ch
}

// Wait implements sshd.Waiter for processes started by the SSH server.
func (pt *procTable) Wait(p *os.Process) (int, error) {
	return <-pt.wait(p.Pid), nil
}

// reap collects every child that exits.
func (in *Init) reap() {
	defer func() {
		if r := recover(); r != nil {
			in.stage("reaper: %v", r)
			go in.reap()
		}
	}()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		status := ws.ExitStatus()
		if ws.Signaled() {
			status = 128 + int(ws.Signal())
		}
		in.children().exited(pid, status)
	}
}

// spawn starts argv on tty as a session leader with tty as its
// controlling terminal, and returns a channel that gets its exit status.
func (in *Init) spawn(tty string, argv []string) (<-chan int, error) {
	f, err := os.OpenFile(tty, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pid, err := syscall.ForkExec(argv[0], argv, &syscall.ProcAttr{
		Dir:   "/",
		Env:   os.Environ(),
		Files: []uintptr{f.Fd(), f.Fd(), f.Fd()},
		Sys:   &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0},
	})
	if err != nil {
		return nil, err
	}
	return in.children().wait(pid), nil
}

// consoles lists the terminals to keep a shell on: every console= of
// the kernel command line and tty1 (the screen), or /dev/console.
func consoles(cmdline string) []string {
	var out []string
	seen := map[string]bool{}
	add := func(dev string) {
		if seen[dev] {
			return
		}
		if _, err := os.Stat("/dev/" + dev); err != nil {
			return
		}
		seen[dev] = true
		out = append(out, dev)
	}
	for _, v := range bootspec.CmdlineParams(cmdline, "console") {
		dev, _, _ := strings.Cut(v, ",")
		if dev == "tty0" {
			dev = "tty1"
		}
		add(dev)
	}
	add("tty1")
	if len(out) == 0 {
		out = []string{"console"}
	}
	return out
}

// superviseShells keeps a shell on every console forever.
func (in *Init) superviseShells() {
	ttys := consoles(in.cmdline)
	for _, tty := range ttys[1:] {
		go in.superviseShell(tty)
	}
	in.superviseShell(ttys[0])
}

func (in *Init) superviseShell(tty string) {
	defer func() {
		if r := recover(); r != nil {
			in.stage("shell on %s: BUG: %v", tty, r)
		}
	}()
	failures := 0
	for {
		done, err := in.spawn("/dev/"+tty, []string{"/bin/sh"})
		if err != nil {
			failures++
			if failures == 1 || failures%30 == 0 {
				in.stage("shell on %s: %v; retrying", tty, err)
			}
			time.Sleep(2 * time.Second)
			continue
		}
		in.stage("shell: started on %s (type commands; exit restarts it)", tty)
		<-done
		in.stage("shell on %s: exited; restarting", tty)
		time.Sleep(500 * time.Millisecond)
	}
}

// setupSignals turns the usual init signals into reboot or power-off:
// SIGTERM and SIGINT (Ctrl-Alt-Del) reboot, SIGUSR2 powers off, SIGUSR1 halts.
func (in *Init) setupSignals() {
	unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF)
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, unix.SIGTERM, unix.SIGINT, unix.SIGUSR1, unix.SIGUSR2)
	go func() {
		for s := range ch {
			cmd, what := unix.LINUX_REBOOT_CMD_RESTART, "reboot"
			switch s {
			case unix.SIGUSR1:
				cmd, what = unix.LINUX_REBOOT_CMD_HALT, "halt"
			case unix.SIGUSR2:
				cmd, what = unix.LINUX_REBOOT_CMD_POWER_OFF, "power off"
			}
			in.stage("signal %v: %s", s, what)
			unix.Sync()
			if err := unix.Reboot(cmd); err != nil {
				in.stage("%s: %v", what, err)
			}
		}
	}()
}
