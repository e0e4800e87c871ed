//go:build linux

package sshd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// Defaults for the zero fields of Server.
const (
	DefaultAuthorizedKeysFile = "/etc/ramboot/authorized_keys"
	DefaultHostKeyDir         = "/run/ramboot/ssh"
	DefaultAddr               = ":22"
)

// DefaultShell is the shell run when Server.Shell is empty.
var DefaultShell = []string{"/bin/sh"}

// ErrNoKeys is returned by ListenAndServe and Serve, before anything
// listens or is accepted, when the authorized keys file is missing,
// unreadable or holds no valid key.
var ErrNoKeys = errors.New("no SSH: no authorized keys")

// handshakeTimeout bounds how long a connection may take to get through
// key exchange and authentication.
const handshakeTimeout = 30 * time.Second

// Server is an SSH server for the provisioning shell. The zero value is
// usable; fields must not change once serving has started.
type Server struct {
	// AuthorizedKeysFile lists the public keys allowed in, in OpenSSH
	// authorized_keys format. Default DefaultAuthorizedKeysFile. It is
	// read once, when Serve or ListenAndServe starts. Key options
	// (command=, from=, ...) are not honoured; such keys are logged.
	AuthorizedKeysFile string

	// HostKeyDir holds ssh_host_ed25519_key. If that file is missing an
	// ed25519 key is generated and written there (0600), so the host key
	// stays the same for the whole boot. Default DefaultHostKeyDir.
	HostKeyDir string

	// Addr is the TCP address ListenAndServe listens on. Default ":22".
	Addr string

	// Shell is the command line of the shell: interactive sessions run
	// it as is, exec requests run Shell + "-c" + command. Default
	// DefaultShell.
	Shell []string

	// Env is the environment of session processes; nil means the
	// server's own environment (os.Environ()). TERM (from pty-req or an
	// env request) and LANG (env request) are added per session.
	Env []string

	// Log, if not nil, gets one line per event: connections, auth
	// success and failure (with user and key fingerprint), sessions.
	Log func(format string, args ...any)

	// Waiter collects the exit code of session processes. Default
	// ProcessWaiter (os.Process.Wait). Under a PID-1 reaper that calls
	// Wait4(-1), Wait may fail with ECHILD; the server then reports exit
	// status 0 and logs that the real status was lost. A reaper that
	// records statuses can supply a Waiter that asks it instead.
	Waiter Waiter
}

// Waiter waits for a session process to exit and returns its exit code.
type Waiter interface {
	Wait(p *os.Process) (exitCode int, err error)
}

// WaiterFunc adapts a function to Waiter.
type WaiterFunc func(p *os.Process) (int, error)

// Wait calls f(p).
func (f WaiterFunc) Wait(p *os.Process) (int, error) { return f(p) }

// ProcessWaiter waits with os.Process.Wait. A process killed by a signal
// gets exit code 128+signal, as shells report it.
type ProcessWaiter struct{}

// Wait implements Waiter.
func (ProcessWaiter) Wait(p *os.Process) (int, error) {
	st, err := p.Wait()
	if err != nil {
		return 0, err
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return st.ExitCode(), nil
}

func (s *Server) logf(format string, args ...any) {
	if s.Log != nil {
		s.Log(format, args...)
	}
}

func (s *Server) keysFile() string {
	if s.AuthorizedKeysFile != "" {
		return s.AuthorizedKeysFile
	}
	return DefaultAuthorizedKeysFile
}

func (s *Server) shell() []string {
	if len(s.Shell) > 0 {
		return s.Shell
	}
	return DefaultShell
}

func (s *Server) waiter() Waiter {
	if s.Waiter != nil {
		return s.Waiter
	}
	return ProcessWaiter{}
}

// authorizedKey is one accepted key.
type authorizedKey struct {
	fingerprint string
	comment     string
}

// loadAuthorizedKeys parses the authorized keys file. Bad lines are
// logged with their line number and skipped. It returns an error wrapping
// ErrNoKeys if no valid key is left.
func (s *Server) loadAuthorizedKeys() (map[string]authorizedKey, error) {
	path := s.keysFile()
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w in %s (%v); add an overlay with your public key", ErrNoKeys, path, err)
	}
	keys := map[string]authorizedKey{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		pub, comment, options, _, err := ssh.ParseAuthorizedKey(line)
		if err != nil {
			s.logf("ssh: %s:%d: skipping bad line: %v", path, n, err)
			continue
		}
		fp := ssh.FingerprintSHA256(pub)
		if len(options) > 0 {
			// from=, command= and the rest restrict a key; a server that
			// ignored them would give the key more than its owner meant.
			s.logf("ssh: %s:%d: key %s refused: this server does not honour key options (%q); remove them to use the key",
				path, n, fp, strings.Join(options, ","))
			continue
		}
		keys[string(pub.Marshal())] = authorizedKey{fingerprint: fp, comment: comment}
	}
	if err := sc.Err(); err != nil {
		s.logf("ssh: %s: %v", path, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w in %s; add an overlay with your public key", ErrNoKeys, path)
	}
	s.logf("ssh: %d authorized key(s) from %s", len(keys), path)
	return keys, nil
}

// config builds the server configuration: keys only, everything else
// refused and logged.
func (s *Server) config(keys map[string]authorizedKey, hostKey ssh.Signer) *ssh.ServerConfig {
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(c ssh.ConnMetadata, pub ssh.PublicKey) (*ssh.Permissions, error) {
			k, ok := keys[string(pub.Marshal())]
			if !ok {
				s.logf("ssh: %s: auth fail: user %q key %s %s not authorized", c.RemoteAddr(), c.User(), pub.Type(), ssh.FingerprintSHA256(pub))
				return nil, errors.New("key not authorized")
			}
			return &ssh.Permissions{Extensions: map[string]string{
				"fingerprint": k.fingerprint,
				"comment":     k.comment,
			}}, nil
		},
		VerifiedPublicKeyCallback: func(c ssh.ConnMetadata, pub ssh.PublicKey, perms *ssh.Permissions, algo string) (*ssh.Permissions, error) {
			comment := ""
			if perms != nil && perms.Extensions["comment"] != "" {
				comment = " (" + perms.Extensions["comment"] + ")"
			}
			s.logf("ssh: %s: auth ok: user %q as root, key %s %s%s", c.RemoteAddr(), c.User(), pub.Type(), ssh.FingerprintSHA256(pub), comment)
			return perms, nil
		},
		AuthLogCallback: func(c ssh.ConnMetadata, method string, err error) {
			switch {
			case method == "none" || method == "publickey":
				// "none" is every client's opening probe; keys are
				// logged by the callbacks above.
			case err != nil:
				s.logf("ssh: %s: auth fail: user %q method %s refused (keys only)", c.RemoteAddr(), c.User(), method)
			}
		},
		ServerVersion: "SSH-2.0-ramboot",
	}
	cfg.AddHostKey(hostKey)
	return cfg
}

// ListenAndServe listens on s.Addr and serves until ctx is done. It
// returns ErrNoKeys (wrapped, with the file name) without listening if
// there is no authorized key.
func (s *Server) ListenAndServe(ctx context.Context) error {
	keys, err := s.loadAuthorizedKeys()
	if err != nil {
		return err
	}
	hostKey, err := s.hostKey()
	if err != nil {
		return err
	}
	addr := s.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return s.serve(ctx, ln, keys, hostKey)
}

// Serve accepts connections on ln until ctx is done, then closes ln and
// every open connection and returns nil. It returns ErrNoKeys (wrapped)
// without accepting if there is no authorized key. ln is closed in all
// cases.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	keys, err := s.loadAuthorizedKeys()
	if err != nil {
		ln.Close()
		return err
	}
	hostKey, err := s.hostKey()
	if err != nil {
		ln.Close()
		return err
	}
	return s.serve(ctx, ln, keys, hostKey)
}

func (s *Server) serve(ctx context.Context, ln net.Listener, keys map[string]authorizedKey, hostKey ssh.Signer) error {
	cfg := s.config(keys, hostKey)
	s.logf("ssh: listening on %s, host key %s", ln.Addr(), ssh.FingerprintSHA256(hostKey.PublicKey()))

	var (
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
		wg    sync.WaitGroup
	)
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	defer stop()
	defer ln.Close()

	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				wg.Wait()
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
				errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.logf("ssh: accept: %v; retrying in %v", err, delay)
				time.Sleep(delay)
				continue
			}
			wg.Wait()
			return err
		}
		delay = 0
		mu.Lock()
		if ctx.Err() != nil {
			mu.Unlock()
			nc.Close()
			continue
		}
		conns[nc] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				mu.Lock()
				delete(conns, nc)
				mu.Unlock()
			}()
			s.handleConn(nc, cfg)
		}()
	}
}

// handleConn runs one connection. It never panics.
func (s *Server) handleConn(nc net.Conn, cfg *ssh.ServerConfig) {
	remote := nc.RemoteAddr()
	defer nc.Close()
	defer func() {
		if r := recover(); r != nil {
			s.logf("ssh: %s: BUG: %v\n%s", remote, r, debug.Stack())
		}
	}()
	s.logf("ssh: %s: connection", remote)
	nc.SetDeadline(time.Now().Add(handshakeTimeout))
	conn, chans, reqs, err := ssh.NewServerConn(nc, cfg)
	if err != nil {
		if _, ok := errors.AsType[*ssh.ServerAuthError](err); ok {
			s.logf("ssh: %s: auth fail: no authorized key (%v)", remote, err)
		} else {
			s.logf("ssh: %s: handshake failed: %v", remote, err)
		}
		return
	}
	nc.SetDeadline(time.Time{})
	defer conn.Close()

	go func() {
		for req := range reqs {
			// tcpip-forward, keepalives and the like: all refused.
			if req.WantReply {
				req.Reply(false, nil)
			}
		}
	}()

	var wg sync.WaitGroup
	for nch := range chans {
		if nch.ChannelType() != "session" {
			s.logf("ssh: %s: refused %s channel", remote, nch.ChannelType())
			nch.Reject(ssh.Prohibited, "only session channels are allowed")
			continue
		}
		ch, creqs, err := nch.Accept()
		if err != nil {
			s.logf("ssh: %s: session: %v", remote, err)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if r := recover(); r != nil {
					s.logf("ssh: %s: session BUG: %v\n%s", remote, r, debug.Stack())
					ch.Close()
				}
			}()
			ss := &session{srv: s, ch: ch, remote: remote.String(), user: conn.User()}
			ss.run(creqs)
		}()
	}
	wg.Wait()
	s.logf("ssh: %s: disconnected", remote)
}
