package builder

// A root image: the node's real operating system, run from RAM by the init
// (option 224 names it; see node/action/ramroot.go). Stages on one struct, like
// a boot tree's build:
//
//	r := &builder.Rootfs{RootfsOptions: builder.RootfsOptions{Options: builder.Options{Board: "rpi4", Out: "out/rpi4"}}}
//	if err := r.Run(ctx); err != nil { ... }
//	fmt.Println(r.Image, r.SHA256) // out/rpi4/images/debian.squashfs
//
// The root is Debian from the board kernel's suite and mirror, built by
// mmdebstrap (a foreign architecture through qemu-user and binfmt_misc), or
// the user's own directory or tarball. Either way it gets the board kernel's
// complete /lib/modules/<release> (depmod'ed), systemd-networkd DHCP on every
// wired interface with the host name from DHCP, the overlays'
// etc/ramboot/authorized_keys as root's SSH keys, and SSH host keys made on
// the node's first boot (or given by an overlay). mksquashfs (zstd) packs it
// with fixed times: the same inputs give the same bytes.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ramboot/ramboot/kernel/apt"
	"github.com/ramboot/ramboot/kernel/kimage"
	"github.com/ramboot/ramboot/tree/images"
)

// DefaultRootPackages make the default root: a small Debian that boots
// with systemd, brings its network up and takes SSH logins.
var DefaultRootPackages = []string{
	"systemd", "systemd-sysv", "systemd-resolved", "udev", "dbus", "kmod",
	"iproute2", "openssh-server", "ca-certificates", "procps", "curl",
}

// RootfsOptions are a root image's inputs. Of Options, Board, Out,
// Overlays, SrcDir, CacheDir, AptMirror, Keyring, Offline, the kernel
// overrides, SourceDateEpoch and Log are used.
type RootfsOptions struct {
	Options
	// From is the user's root, a directory or a tarball (.tar, .tar.gz,
	// .tar.xz, .tar.zst: `docker export`, a Raspberry Pi OS root); "" builds
	// Debian.
	From string
	// Include names packages added to the Debian root.
	Include []string
	// Name is the image's base name in Out/images (default "debian", or
	// the base name of From).
	Name string
	// Channel is the channel the new generation is promoted on
	// (tree/images): "" the default, Out/images/NAME.squashfs; "canary"
	// Out/images/NAME-canary.squashfs.
	Channel string
}

// Rootfs is one root image build.
type Rootfs struct {
	RootfsOptions

	// Image is the channel's image (a link to the new generation), SHA256
	// its digest, Size its length; Generation the generation it is.
	Image      string
	SHA256     string
	Size       int64
	Generation images.Generation

	// Tarball is the root as a tarball: Debian's, in the cache, or From.
	Tarball string

	b       *Build
	staging string
	release string
}

// ErrRootTool is wrapped when a program the root build needs is missing.
var ErrRootTool = errors.New("missing tool")

// Run builds the image.
func (r *Rootfs) Run(ctx context.Context) (err error) {
	r.b = &Build{Options: r.Options}
	r.b.start = time.Now()
	defer func() {
		if r.staging != "" {
			os.RemoveAll(r.staging)
		}
	}()
	for _, st := range []func(context.Context) error{
		r.prepare, r.b.fetchKernel, r.root, r.unpack, r.customize, r.squash,
	} {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := st(ctx); err != nil {
			return err
		}
	}
	r.b.logf("done: %s (%.1f MB, sha256 %s)", r.Image, float64(r.Size)/1e6, r.SHA256)
	return nil
}

func (r *Rootfs) prepare(ctx context.Context) error {
	if err := r.b.prepare(ctx); err != nil {
		return err
	}
	r.Options = r.b.Options
	if strings.Contains(r.Board, ",") {
		return fmt.Errorf("root images are per board (the kernel's modules go in): pass one board, not %s", r.Board)
	}
	if os.Geteuid() != 0 {
		return errors.New("building a root image needs root (the root's files keep their owners, devices and capabilities): run it with sudo")
	}
	tools := []string{"mksquashfs", "depmod", "tar"}
	if r.From == "" {
		tools = append(tools, "mmdebstrap")
	}
	for _, t := range tools {
		if _, err := lookTool(t); err != nil {
			return fmt.Errorf("%w: %s not found: install %s (make deps does)", ErrRootTool, t, map[string]string{
				"mksquashfs": "squashfs-tools", "depmod": "kmod", "tar": "tar", "mmdebstrap": "mmdebstrap"}[t])
		}
	}
	if r.Name == "" {
		r.Name = "debian"
		if r.From != "" {
			base := filepath.Base(strings.TrimRight(r.From, "/"))
			for _, ext := range []string{".tar.gz", ".tgz", ".tar.xz", ".tar.zst", ".tar.bz2", ".tar"} {
				base = strings.TrimSuffix(base, ext)
			}
			r.Name = base
		}
	}
	if r.Name == "" || strings.ContainsAny(r.Name, "/ \t\n") || strings.HasPrefix(r.Name, ".") {
		return fmt.Errorf("image name %q: pass --name NAME (letters, digits, dots, dashes)", r.Name)
	}
	if r.From != "" {
		st, err := os.Stat(r.From)
		if err != nil {
			return fmt.Errorf("root %s: %w (--from takes a directory or a tarball)", r.From, err)
		}
		if len(r.Include) > 0 {
			return fmt.Errorf("--include adds Debian packages to the default root; with --from %s, install them into your root first", r.From)
		}
		if !st.IsDir() {
			r.Tarball = r.From
		}
	}
	return nil
}

// lookTool finds a program on PATH or in the sbin directories.
func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// root makes the Debian root (once per archive state: the tarball is cached
// by the suite's package index, the architecture and the package list).
func (r *Rootfs) root(ctx context.Context) error {
	if r.From != "" {
		if r.Tarball != "" {
			r.b.logf("root: tarball %s", r.From)
		} else {
			r.b.logf("root: directory %s", r.From)
		}
		return nil
	}
	bd := r.b.Board
	arch := bd.Arch
	suite := bd.Kernel.Suite
	pkgs := append(append([]string(nil), DefaultRootPackages...), r.Include...)
	sort.Strings(pkgs)
	pkgs = dedupe(pkgs)
	c, err := r.b.aptClient()
	if err != nil {
		return err
	}
	rel, err := c.Release(ctx, suite)
	if err != nil {
		return fmt.Errorf("root: %w", err)
	}
	index := rel.Files["main/binary-"+arch+"/Packages.xz"].SHA256
	if index == "" {
		return fmt.Errorf("root: Debian %s has no main/binary-%s package index on %s", suite, arch, c.Mirror)
	}
	// Every package named must exist before mmdebstrap spends minutes on
	// the essential set.
	for _, p := range r.Include {
		if _, err := c.Lookup(ctx, suite, "main", arch, p, ""); err != nil {
			if errors.Is(err, apt.ErrNotFound) {
				return fmt.Errorf("root: --include %s: no such package in Debian %s main for %s: check the name (apt-cache show %s) and fix --include", p, suite, arch, p)
			}
			return fmt.Errorf("root: --include %s: %w", p, err)
		}
	}
	epoch := r.SourceDateEpoch
	if epoch == 0 {
		// The archive's own date: an epoch of 0 would date root's
		// password change to 1970, which Debian reads as "expired".
		epoch = rel.Date.Unix()
	}
	h := sha256.New()
	fmt.Fprintf(h, "mmdebstrap minbase\n%s\n%s\n%s\n%s\n%d\n", suite, arch, index, strings.Join(pkgs, ","), epoch)
	key := hex.EncodeToString(h.Sum(nil))[:32]
	r.Tarball = filepath.Join(r.CacheDir, "roots", key+".tar")
	if err := os.MkdirAll(filepath.Dir(r.Tarball), 0o755); err != nil {
		return err
	}
	// One build of a root at a time: a second waits, then finds it cached.
	lock, err := os.OpenFile(r.Tarball+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		r.b.logf("root: waiting for another build of the same root (%s)", lock.Name())
		if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
			return fmt.Errorf("root: lock %s: %w", lock.Name(), err)
		}
	}
	if _, err := os.Stat(r.Tarball); err == nil {
		r.b.logf("root: Debian %s %s with %s (cached %s)", suite, arch, strings.Join(pkgs, " "), key[:12])
		return nil
	}
	if r.Offline {
		return fmt.Errorf("root: no cached Debian root for %s %s with these packages, and --offline was given: build once online", suite, arch)
	}
	if err := foreignArchOK(arch); err != nil {
		return err
	}
	tmp := r.Tarball + ".tmp.tar"
	args := []string{"--variant=minbase", "--mode=root", "--format=tar", "--architectures=" + arch,
		"--components=main", "--include=" + strings.Join(pkgs, ",")}
	if r.Keyring != "" {
		args = append(args, "--keyring="+r.Keyring)
	}
	args = append(args, suite, tmp, c.Mirror)
	r.b.logf("root: mmdebstrap Debian %s %s with %s", suite, arch, strings.Join(pkgs, " "))
	t0 := time.Now()
	cmd := exec.CommandContext(ctx, "mmdebstrap", args...)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.FormatInt(epoch, 10))
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		os.Remove(tmp)
		return explainMmdebstrap(err, out.String(), suite, arch)
	}
	// On disk before it is the cache's: a cached root is used as found.
	if err := renameDurable(tmp, r.Tarball); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("root: %w", err)
	}
	r.b.logf("root: mmdebstrap done in %.0fs", time.Since(t0).Seconds())
	return nil
}

func dedupe(s []string) []string {
	var out []string
	for i, v := range s {
		if v != "" && (i == 0 || v != s[i-1]) {
			out = append(out, v)
		}
	}
	return out
}

// explainMmdebstrap turns mmdebstrap's failure into what to do about it.
func explainMmdebstrap(err error, out, suite, arch string) error {
	tail := out
	if len(tail) > 2000 {
		tail = "..." + tail[len(tail)-2000:]
	}
	for _, line := range strings.Split(out, "\n") {
		if i := strings.Index(line, "Unable to locate package "); i >= 0 {
			pkg := strings.TrimSpace(line[i+len("Unable to locate package "):])
			return fmt.Errorf("root: package %s is not in Debian %s for %s: check the name (apt-cache show %s) and fix --include", pkg, suite, arch, pkg)
		}
		if strings.Contains(line, "Exec format error") || strings.Contains(line, "arch-test") {
			return fmt.Errorf("root: %s programs do not run on this %s machine (%s): %s", arch, hostDebArch(), strings.TrimSpace(line), foreignFix(arch))
		}
	}
	return fmt.Errorf("root: mmdebstrap %s %s: %v\n%s", suite, arch, err, tail)
}

func hostDebArch() string {
	switch runtime.GOARCH {
	case "arm":
		return "armhf"
	}
	return runtime.GOARCH
}

func qemuName(arch string) string {
	switch arch {
	case "arm64":
		return "aarch64"
	case "amd64":
		return "x86_64"
	case "armhf", "armel":
		return "arm"
	}
	return arch
}

func foreignFix(arch string) string {
	q := qemuName(arch)
	return fmt.Sprintf("install qemu-user-static and binfmt-support (make deps does), mount binfmt_misc "+
		"(mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc) and enable the handler (update-binfmts --enable qemu-%s)", q)
}

// foreignArchOK checks, for a root of another architecture than this
// machine's, that its programs run here through qemu-user and binfmt_misc.
func foreignArchOK(arch string) error {
	if arch == hostDebArch() || (arch == "i386" && runtime.GOARCH == "amd64") {
		return nil
	}
	h := "/proc/sys/fs/binfmt_misc/qemu-" + qemuName(arch)
	data, err := os.ReadFile(h)
	if err != nil {
		return fmt.Errorf("root: %s programs cannot run on this %s machine: no binfmt_misc handler %s: %s", arch, hostDebArch(), h, foreignFix(arch))
	}
	if !strings.HasPrefix(string(data), "enabled") {
		return fmt.Errorf("root: the binfmt_misc handler %s is disabled: %s", h, foreignFix(arch))
	}
	return nil
}

// unpack lays the root into a staging directory in the cache.
func (r *Rootfs) unpack(ctx context.Context) error {
	dir, err := os.MkdirTemp(r.CacheDir, "rootfs-staging-")
	if err != nil {
		return err
	}
	r.staging = dir
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	var cmd *exec.Cmd
	if r.Tarball != "" {
		// GNU tar picks the decompressor by content; --numeric-owner keeps
		// the root's own ids whatever this machine's passwd says.
		cmd = exec.CommandContext(ctx, "tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-xpf", r.Tarball, "-C", dir)
	} else {
		cmd = exec.CommandContext(ctx, "cp", "-a", strings.TrimRight(r.From, "/")+"/.", dir) // filepath.Join would drop the "."
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("root: unpacking %s: %v: %s", r.tarballOrFrom(), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (r *Rootfs) tarballOrFrom() string {
	if r.From != "" {
		return r.From
	}
	return r.Tarball
}

// modulesDir is where the root keeps lib/modules, "usr/lib/modules" on a
// merged-/usr root (lib is a link to usr/lib).
func modulesDir(root *os.Root) string {
	if t, err := root.Readlink("lib"); err == nil && strings.TrimPrefix(path.Clean(t), "/") == "usr/lib" {
		return "usr/lib/modules"
	}
	return "lib/modules"
}

// customize makes the root a ramboot node's: the kernel's modules, the
// network, the host name, SSH.
func (r *Rootfs) customize(ctx context.Context) error {
	root, err := os.OpenRoot(r.staging)
	if err != nil {
		return err
	}
	defer root.Close()
	if err := r.checkRoot(root); err != nil {
		return err
	}

	// The kernel's modules, complete, and their index for udev.
	k := r.b.Kernel
	r.release = k.Release
	if _, err := os.Stat(k.ModulesDir); err != nil {
		return fmt.Errorf("kernel %s has no modules directory %s: a root image needs the kernel's modules", k.Release, k.ModulesDir)
	}
	md := modulesDir(root)
	dst := path.Join(md, k.Release)
	if err := root.MkdirAll(md, 0o755); err != nil {
		return fmt.Errorf("root: %s: %w", md, err)
	}
	if err := root.RemoveAll(dst); err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, "cp", "-a", k.ModulesDir, filepath.Join(r.staging, dst)).CombinedOutput(); err != nil {
		return fmt.Errorf("root: copying modules: %v: %s", err, out)
	}
	depmod, _ := lookTool("depmod")
	if out, err := exec.CommandContext(ctx, depmod, "-b", r.staging, k.Release).CombinedOutput(); err != nil {
		return fmt.Errorf("root: depmod %s: %v: %s", k.Release, err, out)
	}
	n := 0
	_ = filepath.WalkDir(filepath.Join(r.staging, dst), func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), ".ko") {
			n++
		}
		return nil
	})
	r.b.logf("root: %d modules of %s in /%s", n, k.Release, dst)

	if err := r.network(root); err != nil {
		return err
	}
	if err := r.ssh(root); err != nil {
		return err
	}
	// No static host name (DHCP's or the init's wins) and a machine id
	// made on each boot.
	for _, f := range []string{"etc/hostname", "etc/machine-id"} {
		root.Remove(f)
		if err := root.WriteFile(f, nil, 0o644); err != nil {
			return fmt.Errorf("root: %s: %w", f, err)
		}
	}
	if t, err := root.Readlink("var/lib/dbus/machine-id"); err != nil || t != "/etc/machine-id" {
		root.Remove("var/lib/dbus/machine-id")
	}
	// What made the image, for the node's own eyes.
	info := fmt.Sprintf("{\n  \"board\": %q,\n  \"kernel\": %q,\n  \"ramboot_version\": %q,\n  \"root\": %q\n}\n",
		r.b.Board.Name, k.Release, r.Version, r.rootDescription())
	if err := root.MkdirAll("etc/ramboot", 0o755); err != nil {
		return err
	}
	return root.WriteFile("etc/ramboot/image.json", []byte(info), 0o644)
}

func (r *Rootfs) rootDescription() string {
	if r.From != "" {
		return "user root " + filepath.Base(r.From)
	}
	return "Debian " + r.b.Board.Kernel.Suite + " " + r.b.Board.Arch
}

// checkRoot refuses what is not an operating system root of the board's
// architecture: no init, or an init for another machine.
func (r *Rootfs) checkRoot(root *os.Root) error {
	for _, d := range []string{"etc", "usr"} {
		if st, err := root.Stat(d); err != nil || !st.IsDir() {
			return fmt.Errorf("root %s has no /%s: not an operating system root (a tarball of /, like `docker export` writes, or its directory)", r.tarballOrFrom(), d)
		}
	}
	if err := kimage.CheckInit(r.staging, "/sbin/init", r.b.Board.Arch); err != nil {
		return fmt.Errorf("root %s for board %s (%s): %w (Debian's init is in systemd-sysv)", r.tarballOrFrom(), r.b.Board.Name, r.b.Board.Arch, err)
	}
	return nil
}

// network brings every wired interface up with DHCP, host name included,
// through systemd-networkd when the root has it.
func (r *Rootfs) network(root *os.Root) error {
	networkd := ""
	for _, p := range []string{"usr/lib/systemd/system/systemd-networkd.service", "lib/systemd/system/systemd-networkd.service"} {
		if _, err := root.Stat(p); err == nil {
			networkd = p
			break
		}
	}
	if networkd == "" {
		r.b.logf("root: no systemd-networkd: the root's own network setup is kept (it must bring the wired interface up with DHCP)")
		return nil
	}
	const unit = `# ramboot: every wired interface, DHCP; the host name from the DHCP server.
[Match]
Type=ether
Kind=!*

[Network]
# DHCPv4, as the init did. (DHCP=yes would also wait for DHCPv6, which
# most boot networks do not answer: systemd-networkd-wait-online would
# hold the boot for its two-minute timeout.)
DHCP=ipv4
# The init configured this interface already: networkd keeps that address
# and route rather than flush them at start (an NFS root beneath the
# overlay would hang), as it does by itself for a network root file system.
KeepConfiguration=yes

[DHCPv4]
# The MAC as client id, as the init and the Pi firmware send it: the same
# lease, the same address, across the switch from the init to this OS.
ClientIdentifier=mac
UseHostname=yes
UseDomains=yes
`
	if err := root.MkdirAll("etc/systemd/network", 0o755); err != nil {
		return err
	}
	if err := root.WriteFile("etc/systemd/network/80-ramboot-wired.network", []byte(unit), 0o644); err != nil {
		return err
	}
	for _, u := range []string{"systemd-networkd.service", "systemd-resolved.service"} {
		if err := enableUnit(root, u); err != nil {
			return err
		}
	}
	r.b.logf("root: systemd-networkd: DHCP on every wired interface")
	return nil
}

// unitDirs are where a root keeps its packages' units.
var unitDirs = []string{"usr/lib/systemd/system", "lib/systemd/system"}

// enableUnit does what `systemctl enable` does for a unit's WantedBy= and
// Also= lines, without running the root's systemctl. A unit the root lacks
// is skipped.
func enableUnit(root *os.Root, name string) error {
	var data []byte
	for _, d := range unitDirs {
		if b, err := root.ReadFile(path.Join(d, name)); err == nil {
			data = b
			break
		}
	}
	if data == nil {
		return nil
	}
	section := ""
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			section = line
			continue
		}
		if section != "[Install]" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		for _, t := range strings.Fields(v) {
			switch strings.TrimSpace(k) {
			case "WantedBy", "RequiredBy":
				suffix := ".wants"
				if strings.TrimSpace(k) == "RequiredBy" {
					suffix = ".requires"
				}
				dir := path.Join("etc/systemd/system", t+suffix)
				if err := root.MkdirAll(dir, 0o755); err != nil {
					return err
				}
				link := path.Join(dir, name)
				root.Remove(link)
				if err := root.Symlink("/usr/lib/systemd/system/"+name, link); err != nil {
					return err
				}
			case "Also":
				if t != name {
					if err := enableUnit(root, t); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

const keygenUnit = `# ramboot: every node makes its own SSH host keys on its first boot, unless
# the image carries them (an overlay's etc/ramboot/ssh_host_ed25519_key).
[Unit]
Description=SSH host keys for this node
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
# Ed25519 only: an RSA key takes seconds on a Pi, minutes under emulation,
# and sshd serves with the keys it has.
ExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key

[Install]
WantedBy=ssh.service
`

// ssh gives root the overlays' keys and each node its own host keys.
func (r *Rootfs) ssh(root *os.Root) error {
	var keys, hostKey []byte
	for _, o := range r.Overlays {
		if b, err := os.ReadFile(filepath.Join(o, "etc/ramboot/authorized_keys")); err == nil {
			keys = b
		}
		if b, err := os.ReadFile(filepath.Join(o, "etc/ramboot/ssh_host_ed25519_key")); err == nil {
			hostKey = b
		}
	}
	// Host keys made while the root was built would be the same on every
	// node (and random: no two builds alike).
	if ents, err := fs.ReadDir(root.FS(), "etc/ssh"); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "ssh_host_") {
				root.Remove(path.Join("etc/ssh", e.Name()))
			}
		}
	}
	if len(hostKey) > 0 {
		if err := root.WriteFile("etc/ssh/ssh_host_ed25519_key", hostKey, 0o600); err != nil {
			return err
		}
		r.b.logf("root: SSH host key from the overlays")
	}
	if _, err := root.Stat("usr/bin/ssh-keygen"); err == nil {
		if err := root.MkdirAll("etc/systemd/system", 0o755); err != nil {
			return err
		}
		if err := root.WriteFile("etc/systemd/system/ramboot-ssh-keygen.service", []byte(keygenUnit), 0o644); err != nil {
			return err
		}
		if err := root.MkdirAll("etc/systemd/system/ssh.service.wants", 0o755); err != nil {
			return err
		}
		root.Remove("etc/systemd/system/ssh.service.wants/ramboot-ssh-keygen.service")
		if err := root.Symlink("/etc/systemd/system/ramboot-ssh-keygen.service", "etc/systemd/system/ssh.service.wants/ramboot-ssh-keygen.service"); err != nil {
			return err
		}
	}
	if len(keys) == 0 {
		r.b.logf("root: no etc/ramboot/authorized_keys in the overlays: no SSH login to this image (OVERLAYS=dir with your key)")
		return nil
	}
	if err := root.MkdirAll("root/.ssh", 0o700); err != nil {
		return err
	}
	if err := root.Chmod("root/.ssh", 0o700); err != nil {
		return err
	}
	if err := root.WriteFile("root/.ssh/authorized_keys", keys, 0o600); err != nil {
		return err
	}
	r.b.logf("root: root's SSH keys from the overlays (%d lines)", bytes.Count(keys, []byte("\n")))
	return nil
}

// squash packs the staging root into a new generation of
// Out/images/NAME (tree/images: NAME@ID.squashfs and its .sha256) and
// promotes it on the channel.
func (r *Rootfs) squash(ctx context.Context) error {
	if !images.ValidChannel(r.Channel) {
		return fmt.Errorf("--channel %q: want lower-case letters, digits and _, at most 32 (\"\" is the default channel)", r.Channel)
	}
	dir := filepath.Join(r.Out, "images")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(dir, r.Name+images.Ext+".tmp")
	os.Remove(tmp)
	epoch := strconv.FormatInt(r.SourceDateEpoch, 10)
	t0 := time.Now()
	mk, _ := lookTool("mksquashfs")
	cmd := exec.CommandContext(ctx, mk, r.staging, tmp, "-noappend", "-no-progress", "-quiet",
		"-comp", "zstd", "-mkfs-time", epoch, "-all-time", epoch)
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("mksquashfs: %v: %s", err, strings.TrimSpace(string(out)))
	}
	f, err := os.Open(tmp)
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	f.Close()
	if err != nil {
		return err
	}
	r.SHA256 = hex.EncodeToString(h.Sum(nil))
	r.Size = n
	st := images.Store{Dir: dir}
	if _, err := st.Add(r.Name, tmp, r.SHA256); err != nil {
		os.Remove(tmp)
		return err
	}
	g, err := st.Promote(r.Name, r.Channel, r.SHA256[:12])
	if err != nil {
		return err
	}
	r.Generation = g
	r.Image = filepath.Join(dir, images.ChannelFile(r.Name, r.Channel))
	r.b.logf("squashfs: %s, %.1f MB (zstd) in %.0fs: generation %s, on channel %s", r.Image, float64(n)/1e6, time.Since(t0).Seconds(),
		g.File(), chanLabel(r.Channel))
	return nil
}

func chanLabel(c string) string {
	if c == "" {
		return "(default)"
	}
	return c
}

// renameDurable renames a written file into place with its data on disk
// before the rename, and the rename on disk after it.
func renameDurable(tmp, dst string) error {
	if err := syncPath(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return err
	}
	return syncPath(filepath.Dir(dst))
}

// syncPath fsyncs a file or a directory by name.
func syncPath(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", p, err)
	}
	return nil
}
