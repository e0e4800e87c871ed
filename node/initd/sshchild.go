//go:build linux

package initd

// The SSH server runs in a child process of PID 1, not in PID 1: the SSH
// and crypto libraries parse what any host on the network sends, in their
// own goroutines, where a panic (as past x/crypto/ssh CVEs caused) cannot
// be recovered and would take PID 1, and so the kernel, down. PID 1 keeps
// the listening socket, hands it to the child, and starts a new child
// when one dies.

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ramboot/ramboot/node/sshd"
)

// sshChildEnv marks the init binary started as the SSH server.
const sshChildEnv = "RAMBOOT_SSHD"

// overlayHostKey is where an overlay puts a host key to pin.
const overlayHostKey = "/etc/ramboot/" + sshd.HostKeyFile

// sshHostKeyDir is the overlay's key when there is one, else a key made
// once per boot (kept across restarts of the child).
func sshHostKeyDir() (dir, from string) {
	if st, err := os.Stat(overlayHostKey); err == nil && st.Mode().IsRegular() {
		return filepath.Dir(overlayHostKey), "from the overlay (" + overlayHostKey + ")"
	}
	return sshd.DefaultHostKeyDir, "made for this boot (pin one: an overlay's " + overlayHostKey + ")"
}

// startSSH starts the keys-only SSH server if an overlay laid in keys.
func (in *Init) startSSH() {
	if st, err := os.Stat(sshd.DefaultAuthorizedKeysFile); err != nil || st.Size() == 0 {
		in.stage("ssh: off: no keys in %s (add an overlay with your public key)", sshd.DefaultAuthorizedKeysFile)
		return
	}
	ln, err := net.Listen("tcp", sshd.DefaultAddr)
	if err != nil {
		in.stage("ssh: %v", err)
		return
	}
	f, err := ln.(*net.TCPListener).File()
	ln.Close()
	if err != nil {
		in.stage("ssh: %v", err)
		return
	}
	in.stage("ssh: listening on port 22, keys from %s", sshd.DefaultAuthorizedKeysFile)
	go in.superviseSSH(f)
}

// superviseSSH runs the SSH server child and starts another when it
// exits, backing off while it keeps failing.
func (in *Init) superviseSSH(ln *os.File) {
	defer func() {
		if r := recover(); r != nil {
			in.stage("ssh: supervisor BUG: %v", r)
		}
	}()
	self := "/bbin/init"
	if _, err := os.Stat(self); err != nil {
		self = "/init"
	}
	backoff := time.Second
	for {
		t0 := time.Now()
		pid, err := syscall.ForkExec(self, []string{"init"}, &syscall.ProcAttr{
			Dir:   "/",
			Env:   append(os.Environ(), sshChildEnv+"=1"),
			Files: []uintptr{os.Stdin.Fd(), os.Stdout.Fd(), os.Stderr.Fd(), ln.Fd()},
			Sys:   &syscall.SysProcAttr{Setsid: true},
		})
		if err != nil {
			in.stage("ssh: starting the server process: %v", err)
		} else {
			st := <-in.children().wait(pid)
			in.stage("ssh: server process %d exited (status %d); starting another", pid, st)
		}
		if time.Since(t0) > time.Minute {
			backoff = time.Second
		}
		time.Sleep(backoff)
		backoff = min(backoff*2, 30*time.Second)
	}
}

// SSHChild is the init binary run as the SSH server (fd 3 is the socket
// PID 1 listens on). It returns the exit status.
func SSHChild() int {
	in := &Init{Out: os.Stdout}
	ln, err := net.FileListener(os.NewFile(3, "ssh-listener"))
	if err != nil {
		in.stage("ssh: %v", err)
		return 1
	}
	dir, from := sshHostKeyDir()
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, sshChildEnv+"=") {
			env = append(env, e)
		}
	}
	srv := &sshd.Server{
		Log:        func(f string, a ...any) { in.stage(f, a...) },
		Env:        env,
		HostKeyDir: dir,
	}
	in.stage("ssh: server process %d, host key %s", os.Getpid(), from)
	if err := srv.Serve(context.Background(), ln); err != nil {
		in.stage("ssh: %v", err)
		return 1
	}
	return 0
}
