//go:build linux

package action

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ramboot/ramboot/bootspec"
	"github.com/ramboot/ramboot/internal/report"
	"github.com/ramboot/ramboot/kernel/kimage"
	"github.com/ramboot/ramboot/node/kexec"
)

// fakeEnv is PID 1 as a test sees it: it records what an action asked
// for and boots nothing. Its points of no return pass the gate (when
// one is set) and then fail with bootErr.
type fakeEnv struct {
	gate    *Gate
	bootErr error
	noAck   bool // Deliver: the server never acknowledges
	// onKexec, if set, runs when Kexec is called, before the gate.
	onKexec func()

	mu          sync.Mutex
	stages      []string
	reports     []string // "stage: detail"
	delivered   []string // "stage: detail"
	kexecs      []*kexec.Image
	switchRoots []string
	reboots     int
}

func (f *fakeEnv) Stage(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stages = append(f.stages, fmt.Sprintf(format, args...))
}

func (f *fakeEnv) Report(stage, detail string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reports = append(f.reports, stage+": "+detail)
}

func (f *fakeEnv) Progress(stage string, n, total int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reports = append(f.reports, fmt.Sprintf("%s: %d/%d", stage, n, total))
}

func (f *fakeEnv) Deliver(stage, detail string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delivered = append(f.delivered, stage+": "+detail)
	return !f.noAck
}

func (f *fakeEnv) pass() error {
	if f.gate != nil {
		if err := f.gate.Commit(); err != nil {
			return err
		}
	}
	if f.bootErr != nil {
		return f.bootErr
	}
	return errors.New("fake env: nothing is booted")
}

func (f *fakeEnv) Kexec(img *kexec.Image) error {
	f.mu.Lock()
	f.kexecs = append(f.kexecs, img)
	hook := f.onKexec
	f.mu.Unlock()
	if hook != nil {
		hook()
	}
	return f.pass()
}

func (f *fakeEnv) SwitchRoot(newRoot, init string) error {
	f.mu.Lock()
	f.switchRoots = append(f.switchRoots, newRoot+" "+init)
	f.mu.Unlock()
	return f.pass()
}

func (f *fakeEnv) Reboot() error {
	f.mu.Lock()
	f.reboots++
	f.mu.Unlock()
	return f.pass()
}

// noBoot fails t if the action reached a point of no return.
func (f *fakeEnv) noBoot(t *testing.T, what string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.kexecs) != 0 || len(f.switchRoots) != 0 || f.reboots != 0 {
		t.Errorf("%s: reached a point of no return: %d kexec, switch_root %q, %d reboots", what, len(f.kexecs), f.switchRoots, f.reboots)
	}
}

func (f *fakeEnv) said(s string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range append(append(append([]string(nil), f.stages...), f.reports...), f.delivered...) {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// newBoot is a Boot on env whose mounts are fake and whose paths are
// under a temporary directory: no test mounts anything on the machine
// it runs on, root or not.
func newBoot(t *testing.T, env Env) *Boot {
	return &Boot{Env: env, Agent: "ramboot-init/test", Vars: map[string]string{"mac": "52:54:00:12:34:56"}, Out: io.Discard,
		Sys: &fakeKernel{}, Root: t.TempDir()}
}

// fakeKernel is a fake Sys: it mounts nothing: it keeps the mounts and loop devices an
// action asked for, fails a mount of a file system type in fail, and
// resolves the names in ips.
type fakeKernel struct {
	fail    map[string]error // by file system type
	loopErr error
	ips     map[string][]net.IP

	mu      sync.Mutex
	mounted map[string]string // target: "fstype source"
	loops   map[string]string // device: file
	mounts  []string          // every mount, in order
}

func (s *fakeKernel) Mount(source, target, fstype string, flags uintptr, data string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail[fstype]; err != nil {
		return err
	}
	if s.mounted == nil {
		s.mounted = map[string]string{}
	}
	if _, ok := s.mounted[target]; ok {
		return unix.EBUSY
	}
	s.mounted[target] = fstype + " " + source
	s.mounts = append(s.mounts, fstype+" on "+target)
	return nil
}

func (s *fakeKernel) Unmount(target string, flags int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.mounted[target]; !ok {
		return unix.EINVAL
	}
	delete(s.mounted, target)
	return nil
}

func (s *fakeKernel) AttachLoop(file string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loopErr != nil {
		return "", s.loopErr
	}
	if s.loops == nil {
		s.loops = map[string]string{}
	}
	dev := fmt.Sprintf("/dev/loop%d", len(s.loops))
	s.loops[dev] = file
	return dev, nil
}

func (s *fakeKernel) DetachLoop(dev string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.loops[dev]; !ok {
		return unix.ENXIO
	}
	delete(s.loops, dev)
	return nil
}

func (s *fakeKernel) LookupIP(host string) ([]net.IP, error) {
	if ips, ok := s.ips[host]; ok {
		return ips, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// leftovers are the mounts and loop devices still there.
func (s *fakeKernel) leftovers() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for t, m := range s.mounted {
		out = append(out, m+" on "+t)
	}
	for d, f := range s.loops {
		out = append(out, d+" for "+f)
	}
	return out
}

// kernelFor is the smallest kernel kexec.Kernel takes for arch.
func kernelFor(arch string) []byte {
	if arch == "amd64" {
		k := make([]byte, 0x206)
		copy(k[0x202:], "HdrS")
		return k
	}
	k := make([]byte, 64)
	copy(k[56:], "ARM\x64")
	return k
}

// otherArch is an architecture this machine is not.
func otherArch() string {
	if runtime.GOARCH == "amd64" {
		return "arm64"
	}
	return "amd64"
}

// squashfsHead is a squashfs superblock (compressor comp, bytes_used
// used) padded to the init's head size.
func squashfsHead(comp uint16, used int64) []byte {
	b := make([]byte, headSize)
	binary.LittleEndian.PutUint32(b[0:], kimage.SquashfsMagic)
	binary.LittleEndian.PutUint16(b[20:], comp)
	binary.LittleEndian.PutUint16(b[28:], 4)
	binary.LittleEndian.PutUint64(b[40:], uint64(used))
	return b
}

const (
	zstd = 6
	lzma = 2
)

var hex64 = strings.Repeat("ab", 32)

// server serves the files a test's option 224 names, each with its
// length announced (an image's size is checked before it is stored);
// files[path+"!claim"] announces that many bytes instead and sends only
// the file.
func server(t *testing.T, files map[string][]byte) *httptest.Server {
	t.Helper()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if claim, ok := files[p+"!claim"]; ok {
			w.Header().Set("Content-Length", string(claim))
			w.Write(files[p])
			return
		}
		b, ok := files[p]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		w.Write(b)
	}))
	t.Cleanup(hs.Close)
	return hs
}

// Option 224 that does not parse, or says shell, ends in the shell with
// the reason and boots nothing.
func TestRunShellOutcomes(t *testing.T) {
	for _, tc := range []struct{ value, want string }{
		{"nsf://192.0.2.1/srv/root", "option 224 from test: "},
		{"", "no option 224: provisioning shell"},
		{"shell", "option 224 says shell: provisioning shell"},
	} {
		f := &fakeEnv{}
		got := newBoot(t, f).Run(context.Background(), tc.value, "test")
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("Run(%q) = %q, want it to start %q", tc.value, got, tc.want)
		}
		f.noBoot(t, tc.value)
	}
}

// Every way a chain can fail before its point of no return ends in the
// shell with the reason, and nothing reaches Kexec: a wrong-architecture
// kernel included.
func TestChainFailures(t *testing.T) {
	hs := server(t, map[string][]byte{
		"/other-arch":        kernelFor(otherArch()),
		"/kernel":            kernelFor(runtime.GOARCH),
		"/exit.ipxe":         []byte("#!ipxe\nexit\n"),
		"/missing.ipxe":      []byte("#!ipxe\nkernel /nope\nboot\n"),
		"/short":             kernelFor(runtime.GOARCH),
		"/short!claim":       []byte("100000"),
		"/wrong-arch.ipxe":   []byte("#!ipxe\nkernel /other-arch console=ttyS0\nboot\n"),
		"/shell.ipxe":        []byte("#!ipxe\nshell\n"),
		"/garbage":           []byte("<html>hello</html>"),
		"/no-boot-here.ipxe": []byte("#!ipxe\necho nothing\n"),
	})
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + closed.Addr().String() + "/kernel"
	closed.Close()
	for _, tc := range []struct{ url, want string }{
		{hs.URL + "/absent", "404"},
		{refused, "connection refused"},
		{hs.URL + "/short", "unexpected EOF"},
		{hs.URL + "/kernel#sha256=" + hex64, "is not a root image (no squashfs magic"},
		{hs.URL + "/exit.ipxe", "script exited without booting"},
		{hs.URL + "/no-boot-here.ipxe", "script ended without booting"},
		{hs.URL + "/shell.ipxe", "script requested the shell"},
		{hs.URL + "/missing.ipxe", "/nope"},
		{hs.URL + "/other-arch", "kernel: "},
		{hs.URL + "/wrong-arch.ipxe", "kernel: "},
		{hs.URL + "/garbage", "kernel: not a"},
	} {
		f := &fakeEnv{}
		got := newBoot(t, f).Run(context.Background(), tc.url, "test")
		if !strings.HasPrefix(got, "chain ") || !strings.Contains(got, " failed: ") || !strings.Contains(got, tc.want) {
			t.Errorf("chain %s: %q, want a failure saying %q", tc.url, got, tc.want)
		}
		f.noBoot(t, tc.url)
	}
}

// A kernel of this machine's architecture reaches Kexec with what the
// script asked for; when the kexec fails, that is the outcome.
func TestChainKexecFails(t *testing.T) {
	hs := server(t, map[string][]byte{
		"/boot.ipxe":  []byte("#!ipxe\nkernel /vmlinuz console=ttyS0 mac=${mac}\ninitrd /initrd.img\nboot\n"),
		"/vmlinuz":    kernelFor(runtime.GOARCH),
		"/initrd.img": []byte("CPIO"),
	})
	f := &fakeEnv{bootErr: errors.New("kexec_load: operation not permitted")}
	got := newBoot(t, f).Run(context.Background(), hs.URL+"/boot.ipxe", "test")
	if want := "chain " + hs.URL + "/boot.ipxe failed: kexec_load: operation not permitted"; got != want {
		t.Errorf("outcome %q, want %q", got, want)
	}
	if len(f.kexecs) != 1 {
		t.Fatalf("%d kexecs, want 1", len(f.kexecs))
	}
	img := f.kexecs[0]
	if img.Source != hs.URL+"/vmlinuz" || img.Cmdline != "console=ttyS0 mac=52:54:00:12:34:56" || string(img.Initrd()) != "CPIO" || len(img.Kernel) != len(kernelFor(runtime.GOARCH)) {
		t.Errorf("kexec got %s, cmdline %q, initrd %q, kernel %d bytes", img.Source, img.Cmdline, img.Initrd(), len(img.Kernel))
	}
	if len(f.switchRoots) != 0 || f.reboots != 0 {
		t.Errorf("switch_root %q, %d reboots", f.switchRoots, f.reboots)
	}
}

// A root image is refused before a byte of it is stored when it cannot
// be checked or cannot fit: no digest, a compressor the kernel lacks,
// truncated on the server, bigger than RAM. Nothing is mounted (the
// image's tmpfs is the first mount, after these checks) and nothing
// switches root.
func TestRAMRootRefused(t *testing.T) {
	hs := server(t, map[string][]byte{
		"/nodigest.squashfs":         squashfsHead(zstd, 1<<20),
		"/baddigest.squashfs":        squashfsHead(zstd, 1<<20),
		"/baddigest.squashfs.sha256": []byte("not-a-digest  baddigest.squashfs\n"),
		"/lzma.squashfs":             squashfsHead(lzma, 1<<20),
		"/short.squashfs":            squashfsHead(zstd, 1<<20),
		"/huge.squashfs":             squashfsHead(zstd, 1<<50),
		"/huge.squashfs!claim":       []byte(fmt.Sprint(int64(1) << 50)),
		"/v3.squashfs":               append(squashfsHead(zstd, 1<<20)[:28], make([]byte, headSize-28)...),
	})
	for _, tc := range []struct{ path, want string }{
		{"/nodigest.squashfs", "no digest to check " + hs.URL + "/nodigest.squashfs against: "},
		{"/baddigest.squashfs", "does not start with a SHA-256"},
		{"/lzma.squashfs#sha256=" + hex64, "a squashfs compressed with lzma, which this kernel cannot read"},
		{"/short.squashfs#sha256=" + hex64, fmt.Sprintf("truncated on the server: the file is %d bytes, its squashfs superblock says %d", headSize, 1<<20)},
		{"/huge.squashfs#sha256=" + hex64, "is too big for this node's RAM"},
		{"/v3.squashfs#sha256=" + hex64, "squashfs version 0"},
	} {
		f := &fakeEnv{}
		got := newBoot(t, f).Run(context.Background(), hs.URL+tc.path, "test")
		if !strings.Contains(got, " failed: ") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want a failure saying %q", tc.path, got, tc.want)
		}
		if f.said("rootfs: sha256") || f.said(report.Downloaded) {
			t.Errorf("%s: the image was stored: %q %q", tc.path, f.stages, f.reports)
		}
		f.noBoot(t, tc.path)
	}
}

// flashScript writes a fake flash command that prints progress and
// exits with status.
func flashScript(t *testing.T, status int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "flash")
	script := fmt.Sprintf("#!/bin/sh\necho 'writing 10%%' >&2\necho 'flash: the image is bigger than the disk' >&2\nexit %d\n", status)
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// An install whose flash fails, or cannot start, is delivered as
// "install failed" with the reason; the disk is left as it was and
// nothing reboots.
func TestInstallFlashFails(t *testing.T) {
	for _, tc := range []struct {
		name, flash, want string
	}{
		{"flash exits 3", flashScript(t, 3), "exit status 3: writing 10% / flash: the image is bigger than the disk"},
		{"no flash command", filepath.Join(t.TempDir(), "no-flash"), "flash: fork/exec"},
	} {
		disk := filepath.Join(t.TempDir(), "disk")
		if err := os.WriteFile(disk, []byte("the node's own data"), 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := bootspec.Parse("install:http://192.0.2.1/i.img#sha256=" + hex64 + "&disk=/dev/vda&gen=3")
		if err != nil {
			t.Fatal(err)
		}
		spec := s.Install
		spec.Disk = disk
		f := &fakeEnv{}
		b := newBoot(t, f)
		b.Flash = tc.flash
		err = b.install(context.Background(), spec)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
		if len(f.delivered) != 1 || !strings.HasPrefix(f.delivered[0], report.InstallFailed+": ") || !strings.Contains(f.delivered[0], tc.want) {
			t.Errorf("%s: delivered %q, want one install failed with the reason", tc.name, f.delivered)
		}
		if !f.said(report.Install + ": started http://192.0.2.1/i.img -> " + disk) {
			t.Errorf("%s: no install started report: %q", tc.name, f.reports)
		}
		if b, _ := os.ReadFile(disk); string(b) != "the node's own data" {
			t.Errorf("%s: the disk now holds %q", tc.name, b)
		}
		f.noBoot(t, tc.name)
	}
}

// A local boot whose disk does not appear within the deadline ends in
// the shell with the reason.
func TestLocalBootNoDisk(t *testing.T) {
	f := &fakeEnv{}
	// A disk that does not appear within the deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	got := newBoot(t, f).Run(ctx, "local:/dev/ramboot-test-no-such-disk", "test")
	if got != "local boot failed: "+context.DeadlineExceeded.Error() {
		t.Errorf("outcome %q, want the deadline", got)
	}
	f.noBoot(t, "local:/dev/ramboot-test-no-such-disk")
}

// The deadline: an action that hangs gives way to the shell at the
// bound, and can no longer pass its point of no return afterwards; an
// action past it is waited for; a panic is an outcome, not PID 1's end.
func TestBounded(t *testing.T) {
	var g Gate
	release := make(chan struct{})
	late := make(chan error, 1)
	t0 := time.Now()
	out := Bounded(context.Background(), 100*time.Millisecond, &g, func(ctx context.Context) string {
		<-release
		late <- g.Commit()
		return "late"
	})
	if !strings.Contains(out, "did not finish within 100ms (ramboot.deadline=): provisioning shell") {
		t.Errorf("hung action: %q", out)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("the shell came after %v, want about 100ms", d)
	}
	close(release)
	if err := <-late; !errors.Is(err, ErrAbandoned) {
		t.Errorf("the hung action committed after the deadline: %v", err)
	}

	var g2 Gate
	out = Bounded(context.Background(), 50*time.Millisecond, &g2, func(ctx context.Context) string {
		if err := g2.Commit(); err != nil {
			return err.Error()
		}
		time.Sleep(200 * time.Millisecond)
		return "booting"
	})
	if out != "booting" {
		t.Errorf("an action past its point of no return: %q, want it waited for", out)
	}

	out = Bounded(context.Background(), time.Second, &Gate{}, func(ctx context.Context) string { panic("boom") })
	if out != "BUG in the boot action: boom" {
		t.Errorf("panic: %q", out)
	}
}

// A kexec that hangs past the deadline cannot boot: the fake env's
// commit fails once the shell took over.
func TestChainAbandoned(t *testing.T) {
	hs := server(t, map[string][]byte{"/vmlinuz": kernelFor(runtime.GOARCH)})
	var g Gate
	release := make(chan struct{})
	result := make(chan string, 1)
	f := &fakeEnv{gate: &g, bootErr: errors.New("booted"), onKexec: func() { <-release }}
	b := newBoot(t, f)
	out := Bounded(context.Background(), 200*time.Millisecond, &g, func(ctx context.Context) string {
		r := b.Run(ctx, hs.URL+"/vmlinuz", "test")
		result <- r
		return r
	})
	if !strings.Contains(out, "did not finish within") {
		t.Fatalf("outcome %q, want the deadline", out)
	}
	close(release)
	if r := <-result; !strings.Contains(r, ErrAbandoned.Error()) {
		t.Errorf("the action after the deadline: %q, want %q", r, ErrAbandoned)
	}
}

// Every NFS root failure ends in the shell with the reason and takes
// down what it mounted: a name that does not resolve, a mount the server
// or the kernel refuses (with the hint for each), an overlay that does
// not mount, a new root whose init cannot start.
func TestNFSRootFailures(t *testing.T) {
	ips := map[string][]net.IP{"nfs.example": {net.ParseIP("192.0.2.1")}}
	for _, tc := range []struct {
		name, value string
		fail        map[string]error
		bootErr     error
		want        string
		switched    bool
	}{
		{"unresolvable", "nfs://nowhere.example/srv/root", nil, nil, `cannot resolve NFS server "nowhere.example"`, false},
		{"not exported", "nfs://nfs.example/srv/root", map[string]error{"nfs": unix.EACCES}, nil, "is the export path right and exported to this node?", false},
		{"no nfs module", "nfs://nfs.example/srv/root", map[string]error{"nfs": unix.ENODEV}, nil, "the nfs modules are not loaded", false},
		{"server down", "nfs://nfs.example/srv/root", map[string]error{"nfs": unix.ETIMEDOUT}, nil, "is the NFS server up and reachable?", false},
		{"no overlay", "nfs://nfs.example/srv/root?overlay", map[string]error{"overlay": unix.ENODEV}, nil, "overlay mount: no such device (is the overlay module loaded?)", false},
		{"no RAM for the overlay", "nfs://nfs.example/srv/root?overlay", map[string]error{"tmpfs": unix.ENOMEM}, nil, "overlay tmpfs (mode=0755): cannot allocate memory", false},
		{"init cannot start", "nfs://nfs.example/srv/root", nil, errors.New("the new root cannot be started: /sbin/init: no such file"), "/sbin/init: no such file (pass init=PATH in option 224)", true},
		{"init cannot start, overlay", "nfs://nfs.example/srv/root?overlay", nil, errors.New("the new root cannot be started: /sbin/init: no such file"), "(pass init=PATH in option 224)", true},
	} {
		f := &fakeEnv{bootErr: tc.bootErr}
		b := newBoot(t, f)
		sys := &fakeKernel{fail: tc.fail, ips: ips}
		b.Sys = sys
		got := b.Run(context.Background(), tc.value, "test")
		if !strings.HasPrefix(got, "NFS root ") || !strings.Contains(got, " failed: ") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want a failure saying %q", tc.name, got, tc.want)
		}
		if l := sys.leftovers(); len(l) > 0 {
			t.Errorf("%s: left mounted: %q (mounted %q)", tc.name, l, sys.mounts)
		}
		if switched := len(f.switchRoots) == 1 && f.switchRoots[0] == filepath.Join(b.Root, "newroot")+" /sbin/init"; switched != tc.switched {
			t.Errorf("%s: switch_root %q, want it tried: %v", tc.name, f.switchRoots, tc.switched)
		}
		if len(f.kexecs) != 0 || f.reboots != 0 {
			t.Errorf("%s: %d kexecs, %d reboots", tc.name, len(f.kexecs), f.reboots)
		}
	}
}

// squashfsImage is a root image of n bytes (its superblock says so) and
// its SHA-256.
func squashfsImage(n int) ([]byte, string) {
	img := append(squashfsHead(zstd, int64(n)), make([]byte, n-headSize)...)
	for i := headSize; i < n; i++ {
		img[i] = byte(i)
	}
	sum := sha256.Sum256(img)
	return img, hex.EncodeToString(sum[:])
}

// A RAM root that fails after its download — a digest that does not
// match, a server gone mid-download, no loop device, no squashfs or
// overlay in the kernel, an init that cannot start — ends in the shell
// with the reason, the image's tmpfs, its loop device and the overlay
// all taken down again.
func TestRAMRootFailsAfterDownload(t *testing.T) {
	img, sum := squashfsImage(64 << 10)
	hs := server(t, map[string][]byte{
		"/root.squashfs":         img,
		"/root.squashfs.sha256":  []byte(sum + "  root.squashfs\n"),
		"/cut.squashfs":          img[:32<<10],
		"/cut.squashfs!claim":    []byte(fmt.Sprint(len(img))),
		"/other.squashfs":        img,
		"/other.squashfs.sha256": []byte(hex64 + "  other.squashfs\n"),
	})
	noInit := errors.New("the new root cannot be started: /sbin/init: no such file")
	for _, tc := range []struct {
		name, path string
		sys        *fakeKernel
		bootErr    error
		want       string
		switched   bool
	}{
		{"digest in the URL does not match", "/root.squashfs#sha256=" + hex64, &fakeKernel{}, nil, "SHA-256 mismatch: got " + sum, false},
		{"digest file does not match", "/other.squashfs", &fakeKernel{}, nil, "other.squashfs.sha256 says " + hex64, false},
		{"server gone", "/cut.squashfs#sha256=" + sum, &fakeKernel{}, nil, "download broke off", false},
		{"no loop device", "/root.squashfs", &fakeKernel{loopErr: errors.New("no loop device (no free loop device): the loop module is not loaded")}, nil, "the loop module is not loaded", false},
		{"no squashfs", "/root.squashfs#sha256=" + sum, &fakeKernel{fail: map[string]error{"squashfs": unix.ENODEV}}, nil, "the squashfs module is not loaded", false},
		{"no overlay", "/root.squashfs#sha256=none", &fakeKernel{fail: map[string]error{"overlay": unix.ENODEV}}, nil, "is the overlay module loaded?", false},
		{"init cannot start", "/root.squashfs", &fakeKernel{}, noInit, "/sbin/init: no such file (a different init: #init=/path in option 224)", true},
		{"init cannot start, unchecked", "/root.squashfs#sha256=none&init=/bin/sh", &fakeKernel{}, noInit, "(a different init: #init=/path in option 224)", true},
	} {
		f := &fakeEnv{bootErr: tc.bootErr}
		b := newBoot(t, f)
		sys := tc.sys
		b.Sys = sys
		got := b.Run(context.Background(), hs.URL+tc.path, "test")
		if !strings.HasPrefix(got, "chain "+hs.URL) || !strings.Contains(got, " failed: ") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want a failure saying %q", tc.name, got, tc.want)
		}
		if l := sys.leftovers(); len(l) > 0 {
			t.Errorf("%s: left mounted: %q", tc.name, l)
		}
		if len(sys.mounts) == 0 || !strings.HasPrefix(sys.mounts[0], "tmpfs on "+filepath.Join(b.Root, "run/ramboot/image")) {
			t.Errorf("%s: mounts %q: the image was not stored in its own tmpfs", tc.name, sys.mounts)
		}
		if (len(f.switchRoots) == 1) != tc.switched {
			t.Errorf("%s: switch_root %q, want it tried: %v", tc.name, f.switchRoots, tc.switched)
		}
		if len(f.kexecs) != 0 || f.reboots != 0 {
			t.Errorf("%s: %d kexecs, %d reboots", tc.name, len(f.kexecs), f.reboots)
		}
	}
}

// What a local boot finds decides: nothing (with why each partition was
// passed over) and several (named, to choose from) are refusals.
func TestChooseInstalled(t *testing.T) {
	a := localCandidate{dev: "/dev/vda1", how: "grub", label: "Debian"}
	c := localCandidate{dev: "/dev/vdb1", how: "bls", label: "Fedora"}
	if _, err := chooseInstalled(nil, []string{"/dev/vda2: grub.cfg: kernel /vmlinuz: not found"}, "/dev/vda"); err == nil ||
		err.Error() != "nothing bootable on /dev/vda: no Pi config.txt, GRUB, BLS or syslinux configuration with a kernel; /dev/vda2: grub.cfg: kernel /vmlinuz: not found" {
		t.Errorf("none: %v", err)
	}
	if _, err := chooseInstalled([]localCandidate{a, c}, nil, "the node's disks (/dev/vda /dev/vdb)"); err == nil ||
		!strings.Contains(err.Error(), "several installed systems on the node's disks (/dev/vda /dev/vdb): /dev/vda1 (grub: Debian), /dev/vdb1 (bls: Fedora); choose one with option 224 local:/dev/NAME") {
		t.Errorf("several: %v", err)
	}
	if got, err := chooseInstalled([]localCandidate{c}, nil, "x"); err != nil || got.dev != "/dev/vdb1" {
		t.Errorf("one: %v, %v", got, err)
	}
}

// A system found on disk with a kernel of another architecture never
// reaches Kexec; one of this machine's does, as found, and a kexec that
// fails names the system.
func TestKexecInstalled(t *testing.T) {
	f := &fakeEnv{}
	c := localCandidate{dev: "/dev/vda1", how: "grub", label: "Debian", kernel: kernelFor(otherArch()), cmdline: "root=UUID=x ro"}
	if err := newBoot(t, f).kexecInstalled(c); err == nil || !strings.HasPrefix(err.Error(), "/dev/vda1 (grub: Debian): kernel: ") {
		t.Errorf("another architecture's kernel: %v", err)
	}
	f.noBoot(t, "another architecture's kernel")

	f = &fakeEnv{bootErr: errors.New("kexec_load: device or resource busy")}
	c.kernel, c.initrd = kernelFor(runtime.GOARCH), []byte("INITRAMFS")
	err := newBoot(t, f).kexecInstalled(c)
	if err == nil || err.Error() != "/dev/vda1 (grub: Debian): kexec_load: device or resource busy" {
		t.Errorf("kexec fails: %v", err)
	}
	if len(f.kexecs) != 1 {
		t.Fatalf("%d kexecs, want 1", len(f.kexecs))
	}
	if img := f.kexecs[0]; img.Source != "/dev/vda1:Debian" || img.Cmdline != "root=UUID=x ro" || string(img.Initrd()) != "INITRAMFS\x00\x00\x00" {
		t.Errorf("kexec got %s, cmdline %q, initrd %q", img.Source, img.Cmdline, img.Initrd())
	}
}

// A disk that holds the install already is not written: "install done"
// says so. With then=reboot it reboots only when the server acknowledged
// (else the server would hand the same install form again at the reboot,
// for ever): unacknowledged, it boots the disk here instead.
func TestKeepInstalled(t *testing.T) {
	s, err := bootspec.Parse("install:http://192.0.2.1/i.img#sha256=" + hex64 + "&disk=/dev/vda&gen=3&then=reboot")
	if err != nil {
		t.Fatal(err)
	}
	spec := s.Install
	rec := newRecord(spec, "/dev/ramboot-test-disk", time.Date(2026, 12, 7, 13, 40, 0, 0, time.UTC))
	found := &foundRecord{installRecord: &rec, part: "/dev/ramboot-test-disk2", path: recordOnRoot, fstype: "ext4"}
	const done = report.InstallDone + ": /dev/ramboot-test-disk sha256=" + "abab"

	f := &fakeEnv{}
	err = newBoot(t, f).keepInstalled(context.Background(), spec, "/dev/ramboot-test-disk", found)
	if f.reboots != 1 || err == nil {
		t.Errorf("acknowledged, then=reboot: %d reboots, %v; want one reboot (the fake's fails)", f.reboots, err)
	}
	if len(f.delivered) != 1 || !strings.HasPrefix(f.delivered[0], done) || !strings.Contains(f.delivered[0], "already installed at generation 3") || !strings.Contains(f.delivered[0], "the disk is not written") {
		t.Errorf("delivered %q", f.delivered)
	}

	f = &fakeEnv{noAck: true}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err = newBoot(t, f).keepInstalled(ctx, spec, "/dev/ramboot-test-disk", found)
	if f.reboots != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("not acknowledged, then=reboot: %d reboots, %v; want none and the local boot of the disk (which is not there: the deadline)", f.reboots, err)
	}
	if !f.said("the server did not acknowledge: booting the installed system here") {
		t.Errorf("not acknowledged: the console does not say why it does not reboot: %q", f.stages)
	}
	f.noBoot(t, "not acknowledged")
}
