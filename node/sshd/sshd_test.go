//go:build linux

package sshd

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
)

// logBuf collects the server's log lines.
type logBuf struct {
	mu    sync.Mutex
	lines []string
}

func (l *logBuf) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// has reports whether a log line contains sub, waiting a little for it:
// the server may log after the client has already seen the outcome.
func (l *logBuf) has(sub string) bool {
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if strings.Contains(l.String(), sub) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

func newSigner(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type fixture struct {
	addr   string
	client ssh.Signer
	log    *logBuf
	srv    *Server
}

// start runs a server on 127.0.0.1 whose authorized_keys holds a fresh
// client key, preceded by junk lines. The server stops at test end.
func start(t *testing.T, tweak func(*Server)) *fixture {
	t.Helper()
	dir := t.TempDir()
	client := newSigner(t)
	keys := "# comment\n\nnot a key at all\n" + string(ssh.MarshalAuthorizedKey(client.PublicKey()))
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), []byte(keys), 0o600); err != nil {
		t.Fatal(err)
	}
	lb := &logBuf{}
	srv := &Server{
		AuthorizedKeysFile: filepath.Join(dir, "authorized_keys"),
		HostKeyDir:         filepath.Join(dir, "hostkeys"),
		Shell:              []string{"/bin/sh"},
		Env:                []string{"PATH=/usr/bin:/bin", "HOME=" + dir},
		Log:                lb.logf,
	}
	if tweak != nil {
		tweak(srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return after cancel")
		}
		if t.Failed() {
			t.Logf("server log:\n%s", lb)
		}
	})
	return &fixture{addr: ln.Addr().String(), client: client, log: lb, srv: srv}
}

func dial(addr, user string, auth ...ssh.AuthMethod) (*ssh.Client, error) {
	return ssh.Dial("tcp", addr, &ssh.ClientConfig{
		User:            user,
		Auth:            auth,
		HostKeyCallback: ssh.InsecureIgnoreHostKey(),
		Timeout:         10 * time.Second,
	})
}

func (f *fixture) connect(t *testing.T) *ssh.Client {
	t.Helper()
	c, err := dial(f.addr, "provision", ssh.PublicKeys(f.client))
	if err != nil {
		t.Fatalf("dial with authorized key: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// run execs cmd and returns stdout, stderr and the exit status.
func run(t *testing.T, c *ssh.Client, cmd string) (string, string, int) {
	t.Helper()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	var stdout, stderr bytes.Buffer
	sess.Stdout, sess.Stderr = &stdout, &stderr
	errc := make(chan error, 1)
	go func() { errc <- sess.Run(cmd) }()
	select {
	case err = <-errc:
	case <-time.After(15 * time.Second):
		t.Fatalf("exec %q: timeout; stdout %q", cmd, stdout.String())
	}
	code := 0
	var ee *ssh.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitStatus()
	case err != nil:
		t.Fatalf("exec %q: %v", cmd, err)
	}
	return stdout.String(), stderr.String(), code
}

func TestExecEcho(t *testing.T) {
	f := start(t, nil)
	c := f.connect(t)
	out, errOut, code := run(t, c, "echo hi")
	if out != "hi\n" || errOut != "" || code != 0 {
		t.Errorf("echo hi: stdout %q stderr %q status %d; want \"hi\\n\", \"\", 0", out, errOut, code)
	}
	if !f.log.has("auth ok") || !f.log.has(ssh.FingerprintSHA256(f.client.PublicKey())) {
		t.Errorf("log lacks auth ok with the key fingerprint:\n%s", f.log)
	}
	if !f.log.has(":3: skipping bad line") {
		t.Errorf("log lacks the bad authorized_keys line number:\n%s", f.log)
	}
}

func TestExecExitStatusAndStderr(t *testing.T) {
	f := start(t, nil)
	c := f.connect(t)
	out, errOut, code := run(t, c, "echo out; echo err >&2; exit 3")
	if out != "out\n" || errOut != "err\n" || code != 3 {
		t.Errorf("got stdout %q stderr %q status %d; want \"out\\n\", \"err\\n\", 3", out, errOut, code)
	}
	// Several sessions on one connection, one after the other.
	if _, _, code := run(t, c, "exit 0"); code != 0 {
		t.Errorf("exit 0: status %d", code)
	}
	if _, _, code := run(t, c, "kill -TERM $$"); code != 128+int(syscall.SIGTERM) {
		t.Errorf("killed by SIGTERM: status %d, want %d", code, 128+int(syscall.SIGTERM))
	}
}

func TestExecStdin(t *testing.T) {
	f := start(t, nil)
	c := f.connect(t)
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	sess.Stdin = strings.NewReader("one\ntwo\n")
	out, err := sess.Output("wc -l")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(out)) != "2" {
		t.Errorf("wc -l of stdin: %q, want 2", out)
	}
}

func TestEnvRequests(t *testing.T) {
	f := start(t, nil)
	c := f.connect(t)
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if err := sess.Setenv("LANG", "C.UTF-8"); err != nil {
		t.Errorf("Setenv LANG: %v", err)
	}
	if err := sess.Setenv("LD_PRELOAD", "/evil.so"); err == nil {
		t.Errorf("Setenv LD_PRELOAD accepted")
	}
	out, err := sess.Output(`echo "$LANG|$LD_PRELOAD"`)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "C.UTF-8|\n" {
		t.Errorf("env: %q, want \"C.UTF-8|\\n\"", out)
	}
}

func TestWrongKey(t *testing.T) {
	f := start(t, nil)
	other := newSigner(t)
	c, err := dial(f.addr, "root", ssh.PublicKeys(other))
	if err == nil {
		c.Close()
		t.Fatal("dial with an unknown key succeeded")
	}
	if !f.log.has("auth fail") || !f.log.has(ssh.FingerprintSHA256(other.PublicKey())) {
		t.Errorf("log lacks auth fail with the key fingerprint:\n%s", f.log)
	}
}

func TestPasswordRefused(t *testing.T) {
	f := start(t, nil)
	c, err := dial(f.addr, "root",
		ssh.Password("root"),
		ssh.KeyboardInteractive(func(name, instruction string, questions []string, echos []bool) ([]string, error) {
			ans := make([]string, len(questions))
			for i := range ans {
				ans[i] = "root"
			}
			return ans, nil
		}))
	if err == nil {
		c.Close()
		t.Fatal("dial with password succeeded")
	}
	// The server offers only publickey, so the client gives up without
	// even sending the password.
	if !f.log.has("auth fail") {
		t.Errorf("log lacks the failed authentication:\n%s", f.log)
	}
}

func TestNoKeys(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("# nothing here\n\ngarbage line\n"), 0o600)
	for name, path := range map[string]string{
		"missing": filepath.Join(dir, "missing"),
		"empty":   empty,
	} {
		t.Run(name, func(t *testing.T) {
			srv := &Server{AuthorizedKeysFile: path, HostKeyDir: filepath.Join(dir, "hk")}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			errc := make(chan error, 1)
			go func() { errc <- srv.Serve(context.Background(), ln) }()
			select {
			case err := <-errc:
				if !errors.Is(err, ErrNoKeys) {
					t.Errorf("Serve: %v, want ErrNoKeys", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Serve did not return ErrNoKeys")
			}
			// ListenAndServe must fail before listening: take a free
			// port, release it, and check nobody listens there after.
			probe, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := probe.Addr().String()
			probe.Close()
			srv.Addr = addr
			if err := srv.ListenAndServe(context.Background()); !errors.Is(err, ErrNoKeys) {
				t.Errorf("ListenAndServe: %v, want ErrNoKeys", err)
			}
			if c, err := net.Dial("tcp", addr); err == nil {
				c.Close()
				t.Errorf("something listens on %s", addr)
			}
		})
	}
}

func TestPTYShell(t *testing.T) {
	f := start(t, nil)
	c := f.connect(t)
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if err := sess.RequestPty("xterm", 40, 100, ssh.TerminalModes{ssh.ECHO: 0}); err != nil {
		t.Fatalf("pty-req: %v", err)
	}
	var out bytes.Buffer
	sess.Stdout = &safeWriter{w: &out}
	stdin, err := sess.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Shell(); err != nil {
		t.Fatal(err)
	}
	// A window-change, then the size the shell sees, then the sum.
	if err := sess.WindowChange(50, 132); err != nil {
		t.Fatal(err)
	}
	// window-change wants no reply; a request that does (refused: env
	// after start) is a barrier, as the server handles requests in order.
	sess.Setenv("LANG", "C")
	io.WriteString(stdin, "tty >/dev/null && echo is-a-tty; stty size; echo \"term=$TERM\"; echo $((6*7))\nexit 5\n")
	errc := make(chan error, 1)
	go func() { errc <- sess.Wait() }()
	select {
	case err = <-errc:
	case <-time.After(15 * time.Second):
		t.Fatalf("shell did not exit; output so far %q", out.String())
	}
	var ee *ssh.ExitError
	if !errors.As(err, &ee) || ee.ExitStatus() != 5 {
		t.Errorf("shell exit: %v, want status 5", err)
	}
	got := out.String()
	for _, want := range []string{"42", "is-a-tty", "50 132", "term=xterm"} {
		if !strings.Contains(got, want) {
			t.Errorf("PTY output lacks %q:\n%q", want, got)
		}
	}
}

type safeWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *safeWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func TestRefusals(t *testing.T) {
	f := start(t, nil)
	c := f.connect(t)
	if _, err := c.Dial("tcp", "127.0.0.1:1"); err == nil {
		t.Error("direct-tcpip accepted")
	}
	if ln, err := c.Listen("tcp", "127.0.0.1:0"); err == nil {
		ln.Close()
		t.Error("tcpip-forward accepted")
	}
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if err := sess.RequestSubsystem("sftp"); err == nil {
		t.Error("sftp subsystem accepted")
	}
	// The connection is still usable.
	if out, _, code := run(t, c, "echo still"); out != "still\n" || code != 0 {
		t.Errorf("after refusals: %q %d", out, code)
	}
}

func TestBadConnectionsDoNotStopServer(t *testing.T) {
	f := start(t, nil)
	for _, junk := range []string{"", "GET / HTTP/1.0\r\n\r\n", "SSH-2.0-x\r\n\x00\x00\x00\xff\xff\xff"} {
		nc, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(nc, junk)
		nc.(*net.TCPConn).CloseWrite()
		nc.SetReadDeadline(time.Now().Add(2 * time.Second))
		io.Copy(io.Discard, nc)
		nc.Close()
	}
	c := f.connect(t)
	if out, _, _ := run(t, c, "echo alive"); out != "alive\n" {
		t.Errorf("after junk: %q", out)
	}
}

func TestHostKeyPersists(t *testing.T) {
	dir := t.TempDir()
	srv := &Server{HostKeyDir: filepath.Join(dir, "ssh")}
	k1, err := srv.hostKey()
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "ssh", HostKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("host key mode %v, want 0600", fi.Mode().Perm())
	}
	k2, err := srv.hostKey()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k1.PublicKey().Marshal(), k2.PublicKey().Marshal()) {
		t.Error("host key changed between starts")
	}
	if k1.PublicKey().Type() != ssh.KeyAlgoED25519 {
		t.Errorf("host key type %s", k1.PublicKey().Type())
	}
}

// TestReaperStealsExit simulates PID 1's reaper: a Wait4(-1) loop that
// collects the child before the server's Waiter gets to it. The session
// must still end, with its output, and report status 0.
func TestReaperStealsExit(t *testing.T) {
	stop := make(chan struct{})
	reaped := make(chan int, 16)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if err == nil && pid > 0 {
				reaped <- pid
				continue
			}
			time.Sleep(time.Millisecond)
		}
	}()
	defer func() {
		close(stop)
		wg.Wait()
	}()

	f := start(t, func(s *Server) {
		s.Waiter = WaiterFunc(func(p *os.Process) (int, error) {
			// Let the reaper win.
			select {
			case <-reaped:
			case <-time.After(10 * time.Second):
			}
			return ProcessWaiter{}.Wait(p)
		})
	})
	c := f.connect(t)
	out, _, code := run(t, c, "echo hi; exit 3")
	if out != "hi\n" || code != 0 {
		t.Errorf("got %q status %d; want \"hi\\n\" and 0 (status lost to the reaper)", out, code)
	}
	if !f.log.has("exit status lost") {
		t.Errorf("log does not mention the lost exit status:\n%s", f.log)
	}
}

// TestKeyOptionsRefused: a key with options (from=, command=) is refused,
// not accepted without its restrictions; the plain key beside it works.
func TestKeyOptionsRefused(t *testing.T) {
	dir := t.TempDir()
	_, a, _ := ed25519.GenerateKey(rand.Reader)
	_, b, _ := ed25519.GenerateKey(rand.Reader)
	sa, _ := ssh.NewSignerFromKey(a)
	sb, _ := ssh.NewSignerFromKey(b)
	line := func(s ssh.Signer) string { return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey()))) }
	keys := filepath.Join(dir, "authorized_keys")
	os.WriteFile(keys, []byte(`from="192.0.2.9",command="/bin/true" `+line(sa)+"\n"+line(sb)+"\n"), 0o644)
	var logs []string
	srv := &Server{AuthorizedKeysFile: keys, Log: func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }}
	got, err := srv.loadAuthorizedKeys()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got[string(sa.PublicKey().Marshal())]; ok {
		t.Errorf("the key with options was accepted without them")
	}
	if _, ok := got[string(sb.PublicKey().Marshal())]; !ok {
		t.Errorf("the plain key was not accepted")
	}
	if !strings.Contains(strings.Join(logs, "\n"), "refused: this server does not honour key options") {
		t.Errorf("no log line for the refused key: %q", logs)
	}
}
