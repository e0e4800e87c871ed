package builder

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ramboot/ramboot/internal/testenv"
)

// needRootBuild fails (never skips) in a full run where root images cannot
// be built: `make test` runs as root with the tools installed.
func needRootBuild(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("root image builds run mksquashfs and depmod: not in -short")
	}
	if os.Geteuid() != 0 {
		t.Fatal("root image builds need root (file owners): run `make test` as root")
	}
	for _, tool := range []string{"mksquashfs", "unsquashfs", "depmod"} {
		if _, err := lookTool(tool); err != nil {
			t.Fatalf("%s not found: `make deps` installs it", tool)
		}
	}
}

func write(t *testing.T, p string, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

// fakeKernel is a --kernel-dir for an amd64 board: a bzImage header and
// an empty modules tree for release 6.0.0-ramboot-test.
func fakeKernel(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	img := make([]byte, 4096)
	copy(img[0x202:], "HdrS")
	write(t, filepath.Join(dir, "bzImage"), string(img), 0o644)
	write(t, filepath.Join(dir, "lib/modules/6.0.0-ramboot-test/kernel/drivers/net/README"), "no modules here\n", 0o644)
	return dir
}

// userRoot is a small amd64 root: its init is this machine's /bin/true
// (with a stand-in for its ELF interpreter), systemd-networkd's unit, a
// host key left by its build, a static host name.
func userRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	tr, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(root, "usr/sbin/init"), string(tr), 0o755)
	os.Symlink("usr/sbin", filepath.Join(root, "sbin"))
	os.Symlink("usr/lib", filepath.Join(root, "lib"))
	write(t, filepath.Join(root, "lib64/ld-linux-x86-64.so.2"), "ld.so stand-in", 0o755)
	write(t, filepath.Join(root, "usr/lib/systemd/system/systemd-networkd.service"),
		"[Unit]\nDescription=networkd\n\n[Install]\nWantedBy=multi-user.target\nAlso=systemd-networkd.socket\n", 0o644)
	write(t, filepath.Join(root, "usr/lib/systemd/system/systemd-networkd.socket"),
		"[Socket]\n\n[Install]\nWantedBy=sockets.target\n", 0o644)
	write(t, filepath.Join(root, "etc/ssh/ssh_host_ed25519_key"), "a key every node would share", 0o600)
	write(t, filepath.Join(root, "etc/hostname"), "builder-host\n", 0o644)
	write(t, filepath.Join(root, "usr/bin/ssh-keygen"), "#!/bin/sh\n", 0o755)
	return root
}

func keysOverlay(t *testing.T) string {
	t.Helper()
	ov := t.TempDir()
	write(t, filepath.Join(ov, "etc/ramboot/authorized_keys"), "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIRAMBOOTTESTKEY test@ramboot\n", 0o644)
	return ov
}

func buildRoot(t *testing.T, o RootfsOptions) (*Rootfs, error) {
	t.Helper()
	src, _ := filepath.Abs("..")
	o.SrcDir = src
	o.CacheDir = t.TempDir()
	if o.Out == "" {
		o.Out = t.TempDir()
	}
	r := &Rootfs{RootfsOptions: o}
	return r, r.Run(context.Background())
}

// TestRootfsUserDir builds an image from a user's directory and reads it
// back with unsquashfs: the modules with depmod's index, networkd enabled,
// root's keys, no build-time host keys or host name; and the same inputs
// give the same bytes.
func TestRootfsUserDir(t *testing.T) {
	needRootBuild(t)
	root, kdir, ov := userRoot(t), fakeKernel(t), keysOverlay(t)
	opts := RootfsOptions{Options: Options{Board: "pc", KernelDir: kdir, Overlays: []string{ov}}, From: root, Name: "mine"}
	r, err := buildRoot(t, opts)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(r.Image) != "mine.squashfs" {
		t.Errorf("image %s, want mine.squashfs", r.Image)
	}
	gen := "mine@" + r.SHA256[:12] + ".squashfs"
	sum, err := os.ReadFile(r.Image + ".sha256")
	if err != nil || string(sum) != r.SHA256+"  "+gen+"\n" {
		t.Errorf(".sha256 = %q, %v; want %s  %s", sum, err, r.SHA256, gen)
	}
	// The channel is a link to the generation (tree/images).
	if target, err := os.Readlink(r.Image); err != nil || target != gen || r.Generation.File() != gen {
		t.Errorf("%s links to %q (%v), generation %q; want %s", r.Image, target, err, r.Generation.File(), gen)
	}
	out := filepath.Join(t.TempDir(), "x")
	if b, err := exec.Command("unsquashfs", "-q", "-d", out, r.Image).CombinedOutput(); err != nil {
		t.Fatalf("unsquashfs: %v\n%s", err, b)
	}
	for p, want := range map[string]string{
		"root/.ssh/authorized_keys":                                    "RAMBOOTTESTKEY",
		"etc/systemd/network/80-ramboot-wired.network":                 "\nDHCP=ipv4\n",
		"etc/ramboot/image.json":                                       `"kernel": "6.0.0-ramboot-test"`,
		"usr/lib/modules/6.0.0-ramboot-test/kernel/drivers/net/README": "no modules",
		"etc/systemd/system/ramboot-ssh-keygen.service":                "ssh-keygen -q -t ed25519",
	} {
		b, err := os.ReadFile(filepath.Join(out, p))
		if err != nil || !strings.Contains(string(b), want) {
			t.Errorf("%s: %q, %v; want it to hold %q", p, b, err, want)
		}
	}
	for p, want := range map[string]string{
		"etc/systemd/system/multi-user.target.wants/systemd-networkd.service": "/usr/lib/systemd/system/systemd-networkd.service",
		"etc/systemd/system/sockets.target.wants/systemd-networkd.socket":     "/usr/lib/systemd/system/systemd-networkd.socket",
	} {
		if got, err := os.Readlink(filepath.Join(out, p)); err != nil || got != want {
			t.Errorf("%s -> %q, %v; want %s", p, got, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "usr/lib/modules/6.0.0-ramboot-test/modules.dep")); err != nil {
		t.Errorf("no modules.dep: depmod did not run: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "etc/ssh/ssh_host_ed25519_key")); err == nil {
		t.Errorf("the host key of the build is in the image: every node would share it")
	}
	if b, _ := os.ReadFile(filepath.Join(out, "etc/hostname")); len(b) != 0 {
		t.Errorf("etc/hostname = %q: the node's name must come from DHCP", b)
	}
	if st, err := os.Stat(filepath.Join(out, "root/.ssh")); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("root/.ssh: %v, %v; want mode 0700", st, err)
	}

	// Same inputs, same bytes.
	r2, err := buildRoot(t, opts)
	if err != nil {
		t.Fatal(err)
	}
	if r2.SHA256 != r.SHA256 {
		t.Errorf("two builds of the same root differ: %s and %s", r.SHA256, r2.SHA256)
	}
}

// TestRootfsRefuses: a root that cannot boot the board is refused with
// what to do.
func TestRootfsRefuses(t *testing.T) {
	needRootBuild(t)
	kdir := fakeKernel(t)
	for _, tc := range []struct {
		name  string
		setup func(root string)
		want  string
	}{
		{"no init", func(root string) { os.Remove(filepath.Join(root, "usr/sbin/init")) }, "no /sbin/init in the new root"},
		{"not a root", func(root string) { os.RemoveAll(filepath.Join(root, "etc")) }, "has no /etc: not an operating system root"},
		{"no interpreter", func(root string) { os.RemoveAll(filepath.Join(root, "lib64")) }, "needs the program interpreter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := userRoot(t)
			tc.setup(root)
			_, err := buildRoot(t, RootfsOptions{Options: Options{Board: "pc", KernelDir: kdir}, From: root})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
	_, err := buildRoot(t, RootfsOptions{Options: Options{Board: "pc", KernelDir: kdir}, From: userRoot(t), Include: []string{"htop"}})
	if err == nil || !strings.Contains(err.Error(), "--include adds Debian packages to the default root") {
		t.Errorf("--include with --from: %v", err)
	}
	_, err = buildRoot(t, RootfsOptions{Options: Options{Board: "pc", KernelDir: kdir}, From: "/nonexistent/root.tar"})
	if err == nil || !strings.Contains(err.Error(), "--from takes a directory or a tarball") {
		t.Errorf("missing --from: %v", err)
	}
}

// TestRootfsMissingPackage: a package name not in the archive fails
// before mmdebstrap runs, naming it (the real archive: RAMBOOT_NET_TESTS).
func TestRootfsMissingPackage(t *testing.T) {
	needRootBuild(t)
	if os.Getenv("RAMBOOT_NET_TESTS") == "" {
		testenv.Skip(t, "talks to the Debian archive: set RAMBOOT_NET_TESTS=1 (make test does)")
	}
	_, err := buildRoot(t, RootfsOptions{Options: Options{Board: "pc", KernelDir: fakeKernel(t)}, Include: []string{"ramboot-no-such-package"}})
	if err == nil || !strings.Contains(err.Error(), "--include ramboot-no-such-package: no such package in Debian trixie main for amd64") {
		t.Errorf("got %v", err)
	}
}

func TestForeignArchFix(t *testing.T) {
	err := foreignArchOK("ramboot-test-arch")
	if err == nil || !strings.Contains(err.Error(), "update-binfmts --enable qemu-ramboot-test-arch") || !strings.Contains(err.Error(), "qemu-user-static") {
		t.Errorf("got %v", err)
	}
	if err := foreignArchOK(hostDebArch()); err != nil {
		t.Errorf("this machine's own architecture: %v", err)
	}
	msg := explainMmdebstrap(nil, "E: Unable to locate package htopp\n", "trixie", "arm64").Error()
	if !strings.Contains(msg, "package htopp is not in Debian trixie for arm64") {
		t.Errorf("mmdebstrap's missing package: %s", msg)
	}
}
