// Package cache holds what the e2e tests build once per run and share
// across their packages (each a test binary of its own): the ramboot
// binary, the boot trees per board, the root images, the SSH key pair
// the root images trust, the NFS test init.
//
// The ramboot binary is $RAMBOOT_BIN when set (`make test` builds
// bin/ramboot first). A run's directory is $RAMBOOT_E2E_RUN when set (`make test` makes a
// fresh one and removes it at the end), else one per test process under
// os.TempDir() that Main removes. Each artifact is built under an
// exclusive file lock on <dir>/<key>.lock and marked done by
// <dir>/<key>.done, so the first test binary that needs it builds it and
// the others (and the other tests of the same binary) wait for the lock
// and find it built. A build that fails leaves no mark: the next test
// tries again, and fails with its own error.
//
//	dir, m := cache.Image(t, "virt")     // the virt boot tree and its manifest
//	bin := cache.Ramboot(t)              // cmd/ramboot, built once
//	r := cache.RootImage(t, "virt", "", "debian")
package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ramboot/ramboot/builder"
	"github.com/ramboot/ramboot/tree"
)

// EnvRun names the variable that gives every test binary of a run one
// shared directory.
const EnvRun = "RAMBOOT_E2E_RUN"

// Dir is the run's directory (see the package comment).
func Dir() string {
	if d := os.Getenv(EnvRun); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "ramboot-e2e-"+strconv.Itoa(os.Getpid()))
}

// Main runs a test binary's tests (call it from TestMain) and removes
// the run's directory if it is this process's own.
func Main(m *testing.M) {
	code := m.Run()
	if os.Getenv(EnvRun) == "" {
		os.RemoveAll(Dir())
	}
	os.Exit(code)
}

// SrcDir is the module's root directory (the builder's SrcDir, where
// `go build ./cmd/...` runs).
func SrcDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}

// Once returns <Dir>/<key>, built by build(dir) unless a test of this
// run built it already. build gets an empty directory; on an error it is
// removed and t fails.
func Once(t testing.TB, key string, build func(dir string) error) string {
	t.Helper()
	dir, err := once(key, build)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func once(key string, build func(dir string) error) (string, error) {
	root := Dir()
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	dir := filepath.Join(root, key)
	done := dir + ".done" // beside dir: a tree holds only what the builder wrote
	if _, err := os.Stat(done); err == nil {
		return dir, nil
	}
	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)
	if _, err := os.Stat(done); err == nil {
		return dir, nil // another test binary built it while we waited
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := build(dir); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("building %s for the tests: %w", key, err)
	}
	return dir, os.WriteFile(done, nil, 0o644)
}

// EnvBin names the variable with a ramboot binary the Makefile built
// already (`make test` passes bin/ramboot): then nothing is built.
const EnvBin = "RAMBOOT_BIN"

// Ramboot is the ramboot binary: $RAMBOOT_BIN, or ./cmd/ramboot built
// once per run (-trimpath).
func Ramboot(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(EnvBin); p != "" {
		if !filepath.IsAbs(p) {
			t.Fatalf("%s=%s: not an absolute path", EnvBin, p)
		}
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s: %v", EnvBin, err)
		}
		return p
	}
	dir := Once(t, "ramboot-bin", func(dir string) error {
		return goBuild(dir, "ramboot", "./cmd/ramboot", nil)
	})
	return filepath.Join(dir, "ramboot")
}

// NFSInit is e2e/testdata/nfsinit (an init for the NFS-root tests) built
// for linux/goarch, once per run.
func NFSInit(t testing.TB, goarch string) string {
	t.Helper()
	dir := Once(t, "nfsinit-"+goarch, func(dir string) error {
		return goBuild(dir, "init", "./e2e/testdata/nfsinit", []string{"GOOS=linux", "GOARCH=" + goarch, "CGO_ENABLED=0"})
	})
	return filepath.Join(dir, "init")
}

func goBuild(dir, out, pkg string, env []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", filepath.Join(dir, out), pkg)
	cmd.Dir = SrcDir()
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	return nil
}

// Image is board's boot tree, built once per run with the real builder
// (the kernel and firmware from Debian's archive or the builder's cache),
// and its manifest; board may name several ("rpi3,rpi4,rpi5") for a
// mixed tree, whose manifest is the zero value. Skipped in -short.
func Image(t testing.TB, board string) (string, tree.Manifest) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a boot image (Debian downloads, a busybox build): not in -short (make unit)")
	}
	dir := Once(t, "tree-"+strings.ReplaceAll(board, ",", "-"), func(dir string) error {
		o := builder.Options{Board: board, Out: dir, SrcDir: SrcDir(), Version: "e2e", Log: logWriter{t}}
		if names := strings.Split(board, ","); len(names) > 1 {
			return builder.BuildTree(context.Background(), o, names)
		}
		return (&builder.Build{Options: o}).Run(context.Background())
	})
	if strings.Contains(board, ",") {
		return dir, tree.Manifest{}
	}
	m, err := tree.ReadManifest(dir, "")
	if err != nil {
		t.Fatalf("the %s tree in %s: %v", board, dir, err)
	}
	return dir, m
}

// SSHKeys is an SSH key pair made once per run: the private key's path,
// and an overlay directory holding etc/ramboot/authorized_keys with its
// public half, which the root images get.
func SSHKeys(t testing.TB) (key, overlay string) {
	t.Helper()
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Fatalf("ssh-keygen not found: `make test` installs it (e2e/deps.sh: openssh-client)")
	}
	dir := Once(t, "keys", func(dir string) error {
		ov := filepath.Join(dir, "overlay")
		if err := os.MkdirAll(filepath.Join(ov, "etc", "ramboot"), 0o755); err != nil {
			return err
		}
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "id")).CombinedOutput(); err != nil {
			return fmt.Errorf("ssh-keygen: %v: %s", err, out)
		}
		pub, err := os.ReadFile(filepath.Join(dir, "id.pub"))
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(ov, "etc", "ramboot", "authorized_keys"), pub, 0o644)
	})
	return filepath.Join(dir, "id"), filepath.Join(dir, "overlay")
}

// rootResult is what a root image build leaves for the next test binary.
type rootResult struct {
	Image, SHA256, Tarball string
	Size                   int64
}

// RootImage builds a root image for board into board's tree (from "" is
// the default Debian root; else a directory or tarball) with the run's
// SSH key in its overlay, once per run. The Debian root itself comes from
// the builder's cache, which `make test` fills in the background.
func RootImage(t testing.TB, board, from, name string) *builder.Rootfs {
	t.Helper()
	dir, _ := Image(t, board)
	_, overlay := SSHKeys(t)
	r := &builder.Rootfs{RootfsOptions: builder.RootfsOptions{
		Options: builder.Options{Board: board, Out: dir, SrcDir: SrcDir(), Version: "e2e",
			Overlays: []string{overlay}, Log: logWriter{t}},
		From: from, Name: name,
	}}
	key := "root-" + board + "-" + name + "-" + strconv.Itoa(len(from))
	if from != "" {
		key += "-" + strings.Trim(strings.ReplaceAll(from, "/", "_"), "_")
	}
	res := Once(t, key, func(rdir string) error {
		t0 := time.Now()
		if err := r.Run(context.Background()); err != nil {
			return err
		}
		t.Logf("root image %s for %s: %v", name, board, time.Since(t0).Round(time.Second))
		b, err := json.Marshal(rootResult{Image: r.Image, SHA256: r.SHA256, Tarball: r.Tarball, Size: r.Size})
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(rdir, "result.json"), b, 0o644)
	})
	if r.Image != "" {
		return r // built here, now
	}
	var rr rootResult
	b, err := os.ReadFile(filepath.Join(res, "result.json"))
	if err == nil {
		err = json.Unmarshal(b, &rr)
	}
	if err == nil && rr.Image == "" {
		err = errors.New("no image in result.json")
	}
	if err != nil {
		t.Fatalf("root image %s for %s: %v", name, board, err)
	}
	r.Image, r.SHA256, r.Tarball, r.Size = rr.Image, rr.SHA256, rr.Tarball, rr.Size
	return r
}

// Log is an io.Writer into t's log (for a builder's Log).
func Log(t testing.TB) io.Writer { return logWriter{t} }

// logWriter sends the builder's log to the test's.
type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", p)
	return len(p), nil
}

// NFSRoot makes a root file system for an NFS-root guest, in a new
// directory of t's: /sbin/init is testdata/nfsinit built for goarch
// (NFSInit), plus the mount points switch_root moves /dev, /proc, /sys
// and /run to.
func NFSRoot(t testing.TB, goarch string) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	for _, d := range []string{"sbin", "dev", "proc", "sys", "run", "tmp", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "motd"), []byte("an NFS root served by the ramboot e2e lab\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := NFSInit(t, goarch)
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "sbin", "init"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}
