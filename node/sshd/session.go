//go:build linux

package sshd

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// After the session process exits, its output is still drained while it
// keeps coming (an idle gap of drainIdle ends it), but for no longer
// than drainMax: background children holding the terminal or pipe open
// must not keep the session open forever.
const (
	drainIdle = 200 * time.Millisecond
	drainMax  = 3 * time.Second
)

// Payloads of the session requests (RFC 4254 section 6).
type ptyRequest struct {
	Term    string
	Columns uint32
	Rows    uint32
	Width   uint32
	Height  uint32
	Modes   string
}

type windowChange struct {
	Columns uint32
	Rows    uint32
	Width   uint32
	Height  uint32
}

type envRequest struct {
	Name  string
	Value string
}

type execRequest struct {
	Command string
}

type signalRequest struct {
	Signal string
}

type exitStatus struct {
	Status uint32
}

// sessionEnv lists the env requests honoured.
var sessionEnv = map[string]bool{"TERM": true, "LANG": true}

var signals = map[string]syscall.Signal{
	"ABRT": syscall.SIGABRT, "ALRM": syscall.SIGALRM, "FPE": syscall.SIGFPE,
	"HUP": syscall.SIGHUP, "ILL": syscall.SIGILL, "INT": syscall.SIGINT,
	"KILL": syscall.SIGKILL, "PIPE": syscall.SIGPIPE, "QUIT": syscall.SIGQUIT,
	"SEGV": syscall.SIGSEGV, "TERM": syscall.SIGTERM, "USR1": syscall.SIGUSR1,
	"USR2": syscall.SIGUSR2,
}

// session is one session channel.
type session struct {
	srv    *Server
	ch     ssh.Channel
	remote string
	user   string

	env     []string    // TERM/LANG from requests
	pty     *ptyRequest // nil: no PTY requested
	size    *windowChange
	started bool
	// replied is closed once the request that started the process has
	// been answered: the channel must not close before that answer, or
	// the client sees EOF instead of its command's output and status.
	replied chan struct{}

	mu     sync.Mutex
	master *os.File    // PTY master, once running on a PTY
	proc   *os.Process // once started
	exited bool
}

// run handles the requests of the channel until the client closes it
// (or the connection goes away). The process, if any, is then hung up.
func (ss *session) run(reqs <-chan *ssh.Request) {
	for req := range reqs {
		ok := ss.handle(req)
		if req.WantReply {
			req.Reply(ok, nil)
		}
		if ss.replied != nil {
			close(ss.replied)
			ss.replied = nil
		}
	}
	if ss.replied != nil {
		close(ss.replied)
		ss.replied = nil
	}
	// The channel is gone. A process still running gets SIGHUP, as when
	// a terminal line drops; its exit is still collected by wait.
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.proc != nil && !ss.exited {
		if err := ss.proc.Signal(syscall.SIGHUP); err == nil {
			// Setsid made the process a group leader: hang up the group.
			syscall.Kill(-ss.proc.Pid, syscall.SIGHUP)
		}
	}
	ss.ch.Close()
}

func (ss *session) handle(req *ssh.Request) bool {
	switch req.Type {
	case "pty-req":
		var p ptyRequest
		if ss.started || ss.pty != nil || ssh.Unmarshal(req.Payload, &p) != nil {
			return false
		}
		ss.pty = &p
		ss.size = &windowChange{Columns: p.Columns, Rows: p.Rows, Width: p.Width, Height: p.Height}
		return true
	case "window-change":
		var w windowChange
		if ssh.Unmarshal(req.Payload, &w) != nil {
			return false
		}
		ss.size = &w
		ss.mu.Lock()
		defer ss.mu.Unlock()
		if ss.master != nil {
			return setWinsize(ss.master, w.Columns, w.Rows, w.Width, w.Height) == nil
		}
		return true
	case "env":
		var e envRequest
		if ss.started || ssh.Unmarshal(req.Payload, &e) != nil || !sessionEnv[e.Name] ||
			strings.ContainsAny(e.Value, "\x00") {
			return false
		}
		ss.env = append(ss.env, e.Name+"="+e.Value)
		return true
	case "shell":
		if ss.started || len(req.Payload) != 0 {
			return false
		}
		return ss.start("", false)
	case "exec":
		var e execRequest
		if ss.started || ssh.Unmarshal(req.Payload, &e) != nil {
			return false
		}
		return ss.start(e.Command, true)
	case "signal":
		var sr signalRequest
		if ssh.Unmarshal(req.Payload, &sr) != nil {
			return false
		}
		sig, ok := signals[sr.Signal]
		if !ok {
			return false
		}
		ss.mu.Lock()
		defer ss.mu.Unlock()
		if ss.proc == nil || ss.exited {
			return false
		}
		return ss.proc.Signal(sig) == nil
	default:
		// subsystem (sftp), x11-req, auth-agent-req@openssh.com, ...
		ss.srv.logf("ssh: %s: refused session request %q", ss.remote, req.Type)
		return false
	}
}

// start starts the shell (or shell -c command) and a goroutine that
// waits for it and ends the channel with its exit status.
func (ss *session) start(command string, isExec bool) bool {
	ss.started = true
	argv := append([]string(nil), ss.srv.shell()...)
	if isExec {
		argv = append(argv, "-c", command)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	env := ss.srv.Env
	if env == nil {
		env = os.Environ()
	}
	env = append([]string(nil), env...)
	if ss.pty != nil && ss.pty.Term != "" && !strings.ContainsAny(ss.pty.Term, "\x00") {
		env = append(env, "TERM="+ss.pty.Term)
	}
	// Later entries win (os/exec keeps the last of duplicates): explicit
	// env requests override the PTY's terminal type and the base.
	cmd.Env = append(env, ss.env...)
	cmd.Dir = "/"
	for _, kv := range slices.Backward(cmd.Env) {
		if home, ok := strings.CutPrefix(kv, "HOME="); ok {
			if fi, err := os.Stat(home); err == nil && fi.IsDir() {
				cmd.Dir = home
			}
			break
		}
	}

	var (
		outputs []drainTarget // what to copy to the client
		stdin   io.WriteCloser
		closers []io.Closer // the parent's copies of the child's ends
	)
	fail := func(err error) bool {
		for _, c := range closers {
			c.Close()
		}
		for _, o := range outputs {
			o.src.Close()
		}
		if stdin != nil {
			stdin.Close()
		}
		ss.srv.logf("ssh: %s: session start failed: %v", ss.remote, err)
		return false
	}

	if ss.pty != nil {
		master, slave, err := openPTY()
		if err != nil {
			return fail(err)
		}
		closers = append(closers, slave)
		outputs = append(outputs, drainTarget{src: master, dst: ss.ch})
		if ss.size != nil {
			setWinsize(master, ss.size.Columns, ss.size.Rows, ss.size.Width, ss.size.Height)
		}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
		// Ctty is a descriptor number in the child: 0 is the slave.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	} else {
		inR, inW, err := os.Pipe()
		if err != nil {
			return fail(err)
		}
		closers = append(closers, inR)
		stdin = inW
		outR, outW, err := os.Pipe()
		if err != nil {
			return fail(err)
		}
		closers = append(closers, outW)
		outputs = append(outputs, drainTarget{src: outR, dst: ss.ch})
		errR, errW, err := os.Pipe()
		if err != nil {
			return fail(err)
		}
		closers = append(closers, errW)
		outputs = append(outputs, drainTarget{src: errR, dst: ss.ch.Stderr()})
		cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	}

	// The lock keeps window-change and signal requests, and the hang-up
	// in run, from seeing a half-started session.
	ss.mu.Lock()
	err := cmd.Start()
	if err != nil {
		ss.mu.Unlock()
		return fail(err)
	}
	ss.proc = cmd.Process
	if ss.pty != nil {
		ss.master = outputs[0].src
	}
	ss.mu.Unlock()
	for _, c := range closers {
		c.Close()
	}

	what := "shell"
	if isExec {
		if len(command) > 200 {
			command = command[:200] + "..."
		}
		what = fmt.Sprintf("exec %q", command)
	}
	ss.srv.logf("ssh: %s: session start: %s as root (user %q), pty %v, pid %d", ss.remote, what, ss.user, ss.pty != nil, cmd.Process.Pid)

	// Client input. On a PTY, EOF from the client is not passed on (the
	// terminal cannot be half-closed); the shell ends on "exit" or ^D.
	if ss.pty != nil {
		go io.Copy(ss.master, ss.ch)
	} else {
		go func() {
			io.Copy(stdin, ss.ch)
			stdin.Close()
		}()
	}

	replied := make(chan struct{})
	ss.replied = replied
	exited := make(chan struct{})
	var wg sync.WaitGroup
	for _, o := range outputs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o.drain(exited)
		}()
	}

	go func() {
		defer func() {
			if r := recover(); r != nil {
				ss.srv.logf("ssh: %s: session BUG: %v", ss.remote, r)
			}
		}()
		code, err := ss.srv.waiter().Wait(cmd.Process)
		switch {
		case errors.Is(err, syscall.ECHILD):
			ss.srv.logf("ssh: %s: pid %d: exit status lost (reaped elsewhere); reporting 0", ss.remote, cmd.Process.Pid)
			code = 0
		case err != nil:
			ss.srv.logf("ssh: %s: pid %d: wait: %v; reporting 255", ss.remote, cmd.Process.Pid, err)
			code = 255
		}
		ss.mu.Lock()
		ss.exited = true
		ss.mu.Unlock()

		close(exited)
		deadline := time.Now().Add(drainIdle)
		for _, o := range outputs {
			o.src.SetReadDeadline(deadline)
		}
		wg.Wait()
		ss.mu.Lock()
		for _, o := range outputs {
			o.src.Close()
		}
		if stdin != nil {
			stdin.Close()
		}
		ss.master = nil
		ss.mu.Unlock()

		select {
		case <-replied:
		case <-time.After(10 * time.Second):
		}
		ss.ch.CloseWrite()
		ss.ch.SendRequest("exit-status", false, ssh.Marshal(exitStatus{Status: uint32(code)}))
		ss.ch.Close()
		ss.srv.logf("ssh: %s: session end: pid %d exit status %d", ss.remote, cmd.Process.Pid, code)
	}()
	return true
}

// drainTarget copies a child's output (pipe or PTY master) to the client.
type drainTarget struct {
	src *os.File
	dst io.Writer
}

// drain copies until EOF (EIO on a PTY master whose slave is closed).
// Once exited is closed, every read gets a deadline drainIdle ahead, but
// never past drainMax after the exit. If the client stops taking output,
// the output is discarded so the child never blocks on a full pipe.
func (d drainTarget) drain(exited <-chan struct{}) {
	buf := make([]byte, 32*1024)
	dst := d.dst
	var limit time.Time
	for {
		select {
		case <-exited:
			now := time.Now()
			if limit.IsZero() {
				limit = now.Add(drainMax)
			}
			dl := now.Add(drainIdle)
			if dl.After(limit) {
				dl = limit
			}
			d.src.SetReadDeadline(dl)
		default:
		}
		n, err := d.src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				dst = io.Discard
			}
		}
		if err != nil {
			// io.EOF, EIO from the master, the deadline, or Close.
			return
		}
	}
}
