// Package builder turns a board profile into a TFTP-ready boot tree.
//
// A build is explicit stages on one struct — prepare, kernel, firmware,
// modules, busybox, archive, write, boot.img (with HTTPBoot), manifest —
// each returning an error:
//
//	b := &builder.Build{Options: builder.Options{Board: "rpi4", Out: "out/rpi4", SrcDir: "."}}
//	if err := b.Run(ctx); err != nil { ... }
//	fmt.Println(b.Manifest.Files)
package builder

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/ramboot/ramboot/boards"
	"github.com/ramboot/ramboot/initramfs"
	"github.com/ramboot/ramboot/kernel"
	"github.com/ramboot/ramboot/kernel/apt"
	"github.com/ramboot/ramboot/kernel/deb"
	"github.com/ramboot/ramboot/kernel/modules"
	"github.com/ramboot/ramboot/site/pxelinux"
	"github.com/ramboot/ramboot/tree"
)

// Options are a build's inputs.
type Options struct {
	Board    string   // board name or profile file
	Out      string   // output directory
	Overlays []string // user overlay directories, laid after overlays/base
	SrcDir   string   // ramboot source tree (go.mod, overlays/base, cmd/init)
	CacheDir string   // downloads, extracted packages, busybox builds

	AptMirror string // Debian mirror URL; default from /etc/apt/sources*
	Keyring   string // OpenPGP keyring; default Debian's archive keyring
	Offline   bool   // never touch the network

	KernelDeb     string   // a local linux-image .deb instead of fetching
	KernelDir     string   // a self-built kernel directory
	KernelVersion string   // override the board's pinned version ("latest": newest)
	FirmwareDebs  []string // local firmware .debs, matched by package name

	// SourceDateEpoch is every archive entry's time (reproducible builds).
	SourceDateEpoch int64
	// Version is ramboot's version, shown in the banner and manifest.
	Version string

	Log      io.Writer // progress lines; nil is silent
	Progress io.Writer // download progress (a terminal gets a bar)

	// HTTPBoot also writes boot.img and boot.sig beside the board's
	// files, for the Pi 4/CM4/Pi 5 EEPROM bootloader's HTTP boot (the
	// board's profile must say http_boot: true), signed with SignKey, an
	// RSA-2048 key whose public half is in the Pi's EEPROM.
	HTTPBoot bool
	SignKey  *rsa.PrivateKey

	// Subdir, for a board in a mixed tree (see BuildTree): the board's
	// own files (kernel, device trees, initramfs, cmdline.txt, manifest)
	// go in Out/Subdir, its firmware at Out's root, and config.txt is
	// not written but left in ConfigTxt, with os_prefix=Subdir/, for the
	// tree's merged config.txt.
	Subdir string
}

// Build is one build's state; its fields fill in stage by stage.
type Build struct {
	Options

	Board    *boards.Board
	Kernel   *kernel.Kernel
	Manifest tree.Manifest
	// ConfigTxt is the board's config.txt when Subdir is set.
	ConfigTxt string
	// bootConfig is the board's config.txt without os_prefix, for boot.img.
	bootConfig string

	apt      *apt.Client
	archive  *initramfs.Archive
	firmware map[string]string // output name -> extracted file
	outFiles map[string][]byte // output name -> bytes (small files)
	bigFiles map[string]string // output name -> path to copy
	fwNames  map[string]bool   // output names that are firmware
	start    time.Time
}

func (b *Build) logf(format string, args ...any) {
	if b.Log != nil {
		fmt.Fprintf(b.Log, "%6.1fs  %s\n", time.Since(b.start).Seconds(), fmt.Sprintf(format, args...))
	}
}

// Run runs every stage in order.
func (b *Build) Run(ctx context.Context) error {
	b.start = time.Now()
	for _, st := range []struct {
		name string
		fn   func(context.Context) error
	}{
		{"prepare", b.prepare},
		{"kernel", b.fetchKernel},
		{"firmware", b.fetchFirmware},
		{"initramfs", b.assemble},
		{"write", b.write},
		{"boot.img", b.bootImg},
		{"manifest", b.writeManifest},
	} {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := st.fn(ctx); err != nil {
			return err
		}
	}
	b.logf("done: %s (%d files, TFTP payload %.1f MB)", b.Out, len(b.Manifest.Files), float64(b.Manifest.TFTPPayload)/1e6)
	return nil
}

func (b *Build) prepare(ctx context.Context) error {
	if b.Board == nil {
		bd, err := boards.Lookup(b.Options.Board)
		if err != nil {
			return err
		}
		b.Board = bd
	}
	if b.Out == "" {
		return errors.New("no output directory: pass --out DIR")
	}
	if b.SrcDir == "" {
		b.SrcDir = "."
	}
	abs, err := filepath.Abs(b.SrcDir)
	if err != nil {
		return err
	}
	b.SrcDir = abs
	if _, err := os.Stat(filepath.Join(b.SrcDir, "overlays", "base")); err != nil {
		return fmt.Errorf("%s is not the ramboot source tree (no overlays/base): run from the source tree or pass --src DIR", b.SrcDir)
	}
	for _, o := range b.Overlays {
		st, err := os.Stat(o)
		if err != nil {
			return fmt.Errorf("overlay %s: %w (OVERLAYS takes existing directories, comma-separated)", o, err)
		}
		if !st.IsDir() {
			return fmt.Errorf("overlay %s: not a directory (OVERLAYS takes directories whose contents are laid into the initramfs root)", o)
		}
	}
	if b.KernelDeb != "" && b.KernelDir != "" {
		return errors.New("--kernel-deb and --kernel-dir both given: pass one")
	}
	if b.CacheDir == "" {
		b.CacheDir, err = DefaultCacheDir()
		if err != nil {
			return err
		}
	}
	if err := os.MkdirAll(b.CacheDir, 0o755); err != nil {
		return fmt.Errorf("cache directory: %w (set XDG_CACHE_HOME or --cache-dir)", err)
	}
	if b.Version == "" {
		b.Version = "dev"
	}
	b.firmware = map[string]string{}
	b.outFiles = map[string][]byte{}
	b.bigFiles = map[string]string{}
	b.fwNames = map[string]bool{}
	b.Manifest = tree.Manifest{
		Board:      b.Board.Name,
		Arch:       b.Board.Arch,
		KernelFile: b.Board.Kernel.ImageName(),
		Ramboot:    b.Version,
		Go:         runtime.Version(),
		SourceDate: b.SourceDateEpoch,
	}
	if data, err := yamlBytes(b.Board.Source); err == nil {
		b.Manifest.BoardProfile = sha(data)
	}
	if b.HTTPBoot {
		if err := checkHTTPBoot(b.Board, b.SignKey); err != nil {
			return err
		}
	}
	b.logf("board %s: %s", b.Board.Name, b.Board.Description)
	return nil
}

func yamlBytes(source string) ([]byte, error) {
	if strings.HasPrefix(source, "boards/") {
		if bd, err := boards.Raw(strings.TrimSuffix(strings.TrimPrefix(source, "boards/"), ".yaml")); err == nil {
			return bd, nil
		}
	}
	return os.ReadFile(source)
}

// DefaultCacheDir is $XDG_CACHE_HOME/ramboot or ~/.cache/ramboot.
func DefaultCacheDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory: set XDG_CACHE_HOME or pass --cache-dir (%w)", err)
	}
	return filepath.Join(d, "ramboot"), nil
}

func sha(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

func (b *Build) aptClient() (*apt.Client, error) {
	if b.apt != nil {
		return b.apt, nil
	}
	mirror := b.AptMirror
	if mirror == "" {
		m, err := apt.MirrorFromSources("/")
		if err != nil && !b.Offline {
			return nil, err
		}
		mirror = m
	}
	var kr []string
	if b.Keyring != "" {
		kr = []string{b.Keyring}
	}
	keys, err := apt.LoadKeyring(kr...)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	b.apt = &apt.Client{
		Mirror:   strings.TrimRight(mirror, "/"),
		Keyring:  keys,
		CacheDir: b.CacheDir,
		Offline:  b.Offline,
		Progress: b.Progress,
	}
	return b.apt, nil
}

func (b *Build) fetchKernel(ctx context.Context) error {
	bk := b.Board.Kernel
	var k *kernel.Kernel
	var err error
	switch {
	case b.KernelDir != "":
		k, err = kernel.FromDir(b.KernelDir)
		if err != nil {
			return err
		}
		b.Manifest.Kernel = tree.KernelInfo{Release: k.Release, Source: "dir " + b.KernelDir}
	case b.KernelDeb != "":
		ctl, err := deb.Control(b.KernelDeb)
		if err != nil {
			return fmt.Errorf("--kernel-deb: %w", err)
		}
		if a := ctl["Architecture"]; a != b.Board.Arch {
			return fmt.Errorf("--kernel-deb %s is for %s, but board %s is %s: use a linux-image-*-%s package",
				b.KernelDeb, a, b.Board.Name, b.Board.Arch, b.Board.Arch)
		}
		sum, err := kernel.FileSHA256(b.KernelDeb)
		if err != nil {
			return fmt.Errorf("--kernel-deb: %w", err)
		}
		k, err = kernel.ExtractDeb(b.KernelDeb, sum, b.CacheDir)
		if err != nil {
			return err
		}
		b.Manifest.Kernel = tree.KernelInfo{Release: k.Release, Package: ctl["Package"], Version: ctl["Version"], Source: "deb " + filepath.Base(b.KernelDeb)}
		b.Manifest.Packages = append(b.Manifest.Packages, tree.PackageInfo{Name: ctl["Package"], Version: ctl["Version"], SHA256: sum, Source: filepath.Base(b.KernelDeb)})
	default:
		c, err := b.aptClient()
		if err != nil {
			return err
		}
		version := bk.Version
		if b.KernelVersion != "" {
			version = b.KernelVersion
		}
		if version == "latest" {
			version = ""
		}
		comp := bk.Component
		if comp == "" {
			comp = "main"
		}
		b.logf("kernel: %s %s from %s", bk.Package, version, bk.Suite)
		p, debPath, err := c.FetchPackage(ctx, bk.Suite, []string{comp}, b.Board.Arch, bk.Package, version)
		if errors.Is(err, apt.ErrNotFound) {
			return fmt.Errorf("kernel for board %s: %w\n(Debian replaces kernel packages, names included, with each point release: "+
				"move kernel.package and kernel.version in %s to the suite's current linux-image-*-%s, "+
				"or pass --kernel-version latest, --kernel-deb FILE or --kernel-dir DIR)", b.Board.Name, err, b.Board.Source, b.Board.Arch)
		}
		if err != nil {
			return fmt.Errorf("kernel for board %s: %w\n(to build without the archive, pass --kernel-deb FILE or --kernel-dir DIR)", b.Board.Name, err)
		}
		k, err = kernel.ExtractDeb(debPath, p.SHA256, b.CacheDir)
		if err != nil {
			return err
		}
		b.Manifest.Kernel = tree.KernelInfo{Release: k.Release, Package: p.Name, Version: p.Version, Source: "archive " + p.Suite}
		b.Manifest.Packages = append(b.Manifest.Packages, tree.PackageInfo{Name: p.Name, Version: p.Version, Suite: p.Suite, SHA256: p.SHA256, Source: "archive"})
	}
	img, err := os.ReadFile(k.ImagePath)
	if err != nil {
		return fmt.Errorf("kernel image: %w", err)
	}
	if err := kernel.CheckMagic(img, b.Board.Arch); err != nil {
		return fmt.Errorf("kernel %s for board %s: %w", k.ImagePath, b.Board.Name, err)
	}
	b.Kernel = k
	b.Manifest.Kernel.Image = sha(img)
	b.logf("kernel: %s (%.1f MB %s)", k.Release, float64(len(img))/1e6, bk.ImageName())
	for _, d := range bk.DTBs {
		p, err := k.FindFile(d.From)
		if err != nil {
			return fmt.Errorf("board %s device tree: %w", b.Board.Name, err)
		}
		b.bigFiles[d.To] = p
	}
	switch bk.Compress {
	case "gzip":
		// Compressing 40 MB at the best level takes seconds: keep the
		// result by the Image's hash.
		cached := filepath.Join(b.CacheDir, "images", b.Manifest.Kernel.Image+".gz")
		if data, err := os.ReadFile(cached); err == nil {
			b.outFiles[bk.ImageName()] = data
			break
		}
		var buf bytes.Buffer
		if err := initramfs.Gzip(&buf, initramfs.Options{}, func(w io.Writer) error {
			_, err := w.Write(img)
			return err
		}); err != nil {
			return fmt.Errorf("compressing kernel: %w", err)
		}
		b.outFiles[bk.ImageName()] = buf.Bytes()
		if err := os.MkdirAll(filepath.Dir(cached), 0o755); err == nil {
			_ = tree.WriteFile(cached, buf.Bytes()) // on disk before it is the cache's: a cached file is used as found
		}
	default:
		b.bigFiles[bk.ImageName()] = k.ImagePath
	}
	return nil
}

func (b *Build) fetchFirmware(ctx context.Context) error {
	type localDeb struct {
		path string
		ctl  map[string]string
	}
	local := map[string]localDeb{} // by package name
	for _, p := range b.FirmwareDebs {
		ctl, err := deb.Control(p)
		if err != nil {
			return fmt.Errorf("--firmware-deb: %w", err)
		}
		local[ctl["Package"]] = localDeb{p, ctl}
	}
	for _, fw := range b.Board.Firmware {
		var debPath string
		var info tree.PackageInfo
		if l, ok := local[fw.Package]; ok {
			sum, err := kernel.FileSHA256(l.path)
			if err != nil {
				return fmt.Errorf("--firmware-deb: %w", err)
			}
			debPath = l.path
			info = tree.PackageInfo{Name: fw.Package, Version: l.ctl["Version"], SHA256: sum, Source: filepath.Base(l.path)}
			delete(local, fw.Package)
		} else {
			c, err := b.aptClient()
			if err != nil {
				return err
			}
			comp := fw.Component
			if comp == "" {
				comp = "main"
			}
			suite := fw.Suite
			if suite == "" {
				suite = b.Board.Kernel.Suite
			}
			pk, path, err := c.FetchPackage(ctx, suite, []string{comp}, b.Board.Arch, fw.Package, fw.Version)
			if err != nil {
				return fmt.Errorf("firmware for board %s: %w\n(to build without the archive, pass --firmware-deb FILE)", b.Board.Name, err)
			}
			debPath = path
			info = tree.PackageInfo{Name: pk.Name, Version: pk.Version, Suite: pk.Suite, SHA256: pk.SHA256, Source: "archive"}
		}
		var from []string
		for _, f := range fw.Files {
			from = append(from, f.From)
		}
		root, err := kernel.ExtractFiles(debPath, info.SHA256, b.CacheDir, from)
		if err != nil {
			return fmt.Errorf("firmware %s: %w", fw.Package, err)
		}
		for _, f := range fw.Files {
			b.bigFiles[f.To] = filepath.Join(root, filepath.FromSlash(f.From))
			b.fwNames[f.To] = true
		}
		b.Manifest.Packages = append(b.Manifest.Packages, info)
		b.logf("firmware: %s %s (%d files)", info.Name, info.Version, len(fw.Files))
	}
	if len(local) > 0 {
		var names []string
		for n := range local {
			names = append(names, n)
		}
		sort.Strings(names)
		return fmt.Errorf("--firmware-deb: board %s uses no package named %s", b.Board.Name, strings.Join(names, ", "))
	}
	return nil
}

// assemble builds the busybox and lays out the initramfs.
func (b *Build) assemble(ctx context.Context) error {
	a := initramfs.New()
	b.archive = a
	// The skeleton.
	for _, d := range []string{"proc", "sys", "dev", "run", "tmp", "etc", "root", "bin", "sbin", "usr/bin", "var", "mnt", "lib/modules"} {
		perm := os.FileMode(0o755)
		if d == "tmp" {
			perm = 0o1777 | os.ModeSticky
		}
		if err := a.Dir(d, perm); err != nil {
			return err
		}
	}
	if err := a.CharDev("dev/console", 0o600, 5, 1); err != nil {
		return err
	}
	if err := a.CharDev("dev/null", 0o666, 1, 3); err != nil {
		return err
	}

	// Modules.
	if err := b.addModules(a); err != nil {
		return err
	}

	// The busybox: u-root's commands plus our init.
	cmds := append([]string{"./cmd/init", "./cmd/flash"}, initramfs.Commands...)
	bb := &initramfs.Busybox{
		GOARCH:   b.Board.GOARCH(),
		Commands: cmds,
		SrcDir:   b.SrcDir,
		CacheDir: b.CacheDir,
		Tags:     []string{"goshsmall"},
	}
	t := time.Now()
	bin, key, hit, err := bb.Build(ctx)
	if err != nil {
		return err
	}
	if hit {
		b.logf("busybox: %d commands for %s (cached %s)", len(cmds), bb.GOARCH, key[:12])
	} else {
		b.logf("busybox: %d commands for %s built in %.1fs", len(cmds), bb.GOARCH, time.Since(t).Seconds())
	}
	b.Manifest.BusyboxKey = key
	data, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	if err := a.File("bbin/bb", 0o755, data); err != nil {
		return err
	}
	for _, c := range cmds {
		name := path.Base(c)
		b.Manifest.Commands = append(b.Manifest.Commands, name)
		if err := a.Symlink("bbin/"+name, "bb"); err != nil {
			return err
		}
	}
	sort.Strings(b.Manifest.Commands)
	if err := a.Symlink("init", "bbin/init"); err != nil {
		return err
	}
	if err := a.Symlink("bin/sh", "../bbin/gosh"); err != nil {
		return err
	}

	// Build facts for the init's banner.
	info, _ := json.MarshalIndent(map[string]string{
		"board": b.Board.Name, "kernel": b.Kernel.Release, "version": b.Version,
	}, "", "  ")
	if err := a.File("etc/ramboot/build.json", 0o644, append(info, '\n')); err != nil {
		return err
	}

	// Overlays: base first, then the user's, later ones win.
	overlays := append([]string{filepath.Join(b.SrcDir, "overlays", "base")}, b.Overlays...)
	for _, o := range overlays {
		if err := a.AddTree(o, ""); err != nil {
			return err
		}
		h, err := treeHash(o)
		if err != nil {
			return err
		}
		name := o
		if rel, err := filepath.Rel(b.SrcDir, o); err == nil && !strings.HasPrefix(rel, "..") {
			name = rel
		}
		b.Manifest.Overlays = append(b.Manifest.Overlays, tree.OverlayInfo{Dir: filepath.ToSlash(name), SHA256: h})
	}
	var buf bytes.Buffer
	if err := a.WriteGzip(&buf, initramfs.Options{ModTime: time.Unix(b.SourceDateEpoch, 0)}); err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	b.outFiles["rootfs.cpio.gz"] = buf.Bytes()
	b.logf("initramfs: %d entries, %.1f MB compressed", len(a.Entries()), float64(buf.Len())/1e6)
	return nil
}

func (b *Build) addModules(a *initramfs.Archive) error {
	if len(b.Board.Modules) == 0 {
		return nil
	}
	if b.Kernel.ModulesDir == "" {
		return fmt.Errorf("board %s needs modules (%s) but kernel %s has no lib/modules/%s: build the kernel with them or use Debian's package",
			b.Board.Name, strings.Join(b.Board.Modules, ", "), b.Kernel.Release, b.Kernel.Release)
	}
	tree, err := modules.Open(b.Kernel.ModulesDir)
	if err != nil {
		return err
	}
	// Every module's aliases, kept between builds: a rebuild need not
	// decompress the whole tree again (the cache is checked against it).
	sum := sha256.Sum256([]byte(b.Kernel.ModulesDir))
	tree.SetAliasCache(filepath.Join(b.CacheDir, "module-aliases", hex.EncodeToString(sum[:8])+".json"))
	res, err := tree.Closure(b.Board.Modules)
	if err != nil {
		return fmt.Errorf("board %s modules: %w", b.Board.Name, err)
	}
	base := "lib/modules/" + b.Kernel.Release
	var total int
	for _, m := range res.Modules {
		data, err := tree.ReadPlain(m)
		if err != nil {
			return err
		}
		total += len(data)
		if err := a.File(base+"/"+m.Path, 0o644, data); err != nil {
			return err
		}
		b.Manifest.Modules = append(b.Manifest.Modules, m.Name)
	}
	if err := a.File(base+"/modules.dep", 0o644, modules.ModulesDep(res.Modules)); err != nil {
		return err
	}
	if err := a.File(base+"/modules.load", 0o644, modules.LoadOrder(res.Modules)); err != nil {
		return err
	}
	b.logf("modules: %d (%s asked), %.1f MB", len(res.Modules), strings.Join(b.Board.Modules, " "), float64(total)/1e6)
	return nil
}

// write renders the templates and writes every output file and the manifest.
func (b *Build) write(ctx context.Context) error {
	vars := boards.Vars{Board: b.Board.Name, Version: b.Version, Kernel: b.Kernel.Release}
	if b.Board.ConfigTxt != "" {
		s, err := b.Board.Render(b.Board.ConfigTxt, vars)
		if err != nil {
			return err
		}
		b.bootConfig = s
		if b.Subdir != "" {
			b.ConfigTxt = withOSPrefix(s, b.Subdir+"/")
		} else {
			b.outFiles["config.txt"] = []byte(s)
		}
	}
	if b.Board.CmdlineTxt != "" {
		s, err := b.Board.Render(b.Board.CmdlineTxt, vars)
		if err != nil {
			return err
		}
		b.outFiles["cmdline.txt"] = []byte(strings.TrimSpace(s) + "\n")
	}
	if err := b.pxelinuxDefault(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(b.Out, b.Subdir), 0o755); err != nil {
		return fmt.Errorf("output directory: %w", err)
	}
	// dest is where a file goes in the tree: firmware at the root (the
	// Pi's boot ROM and the PC's PXE firmware look there), the rest in
	// the board's directory in a mixed tree.
	dest := func(n string) string {
		if b.Subdir == "" || b.fwNames[n] {
			return n
		}
		return path.Join(b.Subdir, n)
	}
	var names []string
	for n := range b.outFiles {
		names = append(names, n)
	}
	for n := range b.bigFiles {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		data, ok := b.outFiles[n]
		if !ok {
			var err error
			if data, err = os.ReadFile(b.bigFiles[n]); err != nil {
				return err
			}
		}
		out := filepath.Join(b.Out, filepath.FromSlash(dest(n)))
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		if err := tree.WriteFile(out, data); err != nil {
			return err
		}
		b.Manifest.Files = append(b.Manifest.Files, tree.FileInfo{Name: dest(n), Size: int64(len(data)), SHA256: sha(data)})
	}
	sizes := map[string]int64{}
	for _, f := range b.Manifest.Files {
		sizes[f.Name] = f.Size
	}
	for _, f := range b.Board.Fetched {
		if f == "config.txt" && b.Subdir != "" {
			continue // the tree's merged config.txt, counted by BuildTree
		}
		f = dest(f)
		s, ok := sizes[f]
		if !ok {
			return fmt.Errorf("board %s lists %s as fetched but the build did not make it: fix `fetched` in %s", b.Board.Name, f, b.Board.Source)
		}
		b.Manifest.TFTPPayload += s
		b.Manifest.TFTPFetched = append(b.Manifest.TFTPFetched, f)
	}
	return nil
}

// writeManifest writes the board's manifest.json, last: a tree with a
// manifest is complete.
func (b *Build) writeManifest(ctx context.Context) error {
	m, err := tree.Marshal(b.Manifest)
	if err != nil {
		return err
	}
	return tree.WriteFile(filepath.Join(b.Out, b.Subdir, tree.ManifestName), m)
}

// withOSPrefix adds os_prefix=prefix after every model section header of
// a board's config.txt ([pi4], [cm4], ...; not [all]), so the firmware
// loads that model's kernel, initramfs, cmdline.txt and device tree from
// the board's directory.
func withOSPrefix(cfg, prefix string) string {
	var out []string
	for _, line := range strings.Split(cfg, "\n") {
		out = append(out, line)
		t := strings.ToLower(strings.TrimSpace(line))
		if strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]") && t != "[all]" && t != "[none]" {
			out = append(out, "os_prefix="+prefix)
		}
	}
	return strings.Join(out, "\n")
}

// treeHash is a digest of a directory's paths, modes, link targets and
// contents.
func treeHash(dir string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %o\n", filepath.ToSlash(rel), info.Mode())
		switch {
		case info.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "%d\n", len(data))
			h.Write(data)
		case info.Mode()&os.ModeSymlink != 0:
			t, _ := os.Readlink(p)
			fmt.Fprintf(h, "-> %s\n", t)
		}
		return nil
	})
	return hex.EncodeToString(h.Sum(nil)), err
}

// pxelinuxDefault adds pxelinux.cfg/default, at the tree's root beside
// pxelinux.0, for a board whose firmware holds pxelinux.0 (BOARD=pc): it
// boots this board's kernel and initramfs, and the init asks DHCP for
// option 224. `ramboot pxelinux --nodes` adds the per-node files; both
// write through site/pxelinux, so a rerun recognises and replaces them.
func (b *Build) pxelinuxDefault() error {
	if _, ok := b.bigFiles["pxelinux.0"]; !ok || !b.fwNames["pxelinux.0"] {
		return nil
	}
	files, err := pxelinux.Configs{Board: pxelinux.Board{Dir: b.Subdir, Kernel: b.Board.Kernel.ImageName(),
		Cmdline: strings.TrimSpace(string(b.outFiles["cmdline.txt"]))}}.Files()
	if err != nil {
		return err
	}
	n := path.Join(pxelinux.ConfigDir, "default")
	b.outFiles[n] = files[n]
	b.fwNames[n] = true // at the root, where pxelinux.0 looks
	return nil
}
