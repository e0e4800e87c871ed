// Package cli is the ramboot command line as a library (gokrazy's pattern):
// cmd/ramboot's main is a few lines over [Context.Execute], and tests run
// any command in-process with buffers for its output.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/ramboot/ramboot/boards"
	"github.com/ramboot/ramboot/builder"
	"github.com/ramboot/ramboot/eeprom"
)

const usage = `ramboot: run diskless machines from RAM.

Usage:
  ramboot build --board BOARD [--out DIR] [flags]   build a TFTP-ready boot tree
  ramboot rootfs --board BOARD [flags]              build a root image the nodes run from RAM
  ramboot serve --root DIR --interface IF [flags]   serve a tree: proxyDHCP/DHCP, TFTP, HTTP
  ramboot eeprom --image pieeprom.bin --out DIR     SD card that sets Pi 4/5 bootloaders to netboot
  ramboot dhcp-config --format kea|isc|dnsmasq ...  config for your own DHCP server from nodes.yaml
  ramboot pxelinux --root DIR --nodes nodes.yaml    pxelinux.cfg/ per node, for tftpd-hpa and pxelinux
  ramboot node list|reinstall|discovered|enroll ... install state, reinstalls, new nodes into nodes.yaml
  ramboot image list|promote|rollback|prune [flags] root image generations and channels
  ramboot boards                                    list the built-in boards
  ramboot version                                   print the version
  ramboot help [COMMAND]                            show help

Examples:
  ramboot build --board rpi4                        # writes out/rpi4/
  ramboot build --board rpi4 --overlay site,keys    # add your files to the initramfs
  ramboot build --board virt --offline              # rebuild from the download cache
  ramboot serve --root out/rpi4 --interface eth1    # boot the Pis on eth1 (proxyDHCP next to your router)

Run 'ramboot help build' for every build flag.
`

// errUsage marks errors that are the caller's: exit status 2.
var errUsage = errors.New("usage")

// Context is one invocation of the ramboot command line: cmd/ramboot's main
// fills it from the process, tests fill it with buffers and run the whole
// CLI in-process.
//
//	code := cli.Context{Args: []string{"build", "--board", "virt"}, Stdout: os.Stdout, Stderr: os.Stderr}.Execute(ctx)
type Context struct {
	Args           []string
	Stdout, Stderr io.Writer
	// Version is what `ramboot version` prints and the build records;
	// empty is "dev".
	Version string
}

// Execute runs the command in c.Args and returns the process exit status:
// 0, 1 for a failure, 2 for a usage error.
func (c Context) Execute(ctx context.Context) int {
	v := c.Version
	if v == "" {
		v = "dev"
	}
	stdout, stderr := c.Stdout, c.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	return run(ctx, v, c.Args, stdout, stderr)
}

// run is the whole CLI.
func run(ctx context.Context, version string, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "build":
		err = runBuild(ctx, version, rest, stdout, stderr)
	case "rootfs":
		err = runRootfs(ctx, version, rest, stdout, stderr)
	case "serve":
		err = runServe(ctx, rest, stdout, stderr)
	case "eeprom":
		err = runEEPROM(ctx, rest, stdout, stderr)
	case "dhcp-config":
		err = runDHCPConfig(ctx, rest, stdout, stderr)
	case "node":
		err = runNode(ctx, rest, stdout, stderr)
	case "image":
		err = runImage(ctx, rest, stdout, stderr)
	case "pxelinux":
		err = runPXELinux(ctx, rest, stdout, stderr)
	case "boards":
		for _, n := range boards.Names() {
			b, berr := boards.Lookup(n)
			if berr != nil {
				err = berr
				break
			}
			fmt.Fprintf(stdout, "%-8s %s\n", n, b.Description)
		}
	case "version", "--version":
		fmt.Fprintf(stdout, "ramboot %s\n", version)
	case "help", "-h", "--help":
		if len(rest) > 0 {
			if h := commandHelp(rest[0], stderr); h != "" {
				fmt.Fprint(stdout, h)
				return 0
			}
		}
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "ramboot: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "ramboot: %v\n", err)
		if errors.Is(err, errUsage) {
			return 2
		}
		return 1
	}
	return 0
}

// commandHelp is the usage of a command with flags, "" for others.
func commandHelp(cmd string, stderr io.Writer) string {
	switch cmd {
	case "build":
		fs, _ := buildFlags(stderr)
		return buildUsage(fs)
	case "rootfs":
		fs, _ := rootfsFlags(stderr)
		return rootfsUsage(fs)
	case "serve":
		fs, _ := serveFlags(stderr)
		return serveUsage(fs)
	case "eeprom":
		fs, _ := eepromFlags(stderr)
		return eepromUsage(fs)
	case "node":
		fs, _ := nodeFlags(stderr)
		return nodeUsage(fs)
	case "image":
		fs, _ := imageFlags(stderr)
		return imageUsage(fs)
	case "pxelinux":
		fs, _ := pxelinuxFlags(stderr)
		return pxelinuxUsage(fs)
	}
	return ""
}

type buildOpts struct {
	builder.Options
	signKey string
	quiet   bool
}

func buildFlags(stderr io.Writer) (*pflag.FlagSet, *buildOpts) {
	o := &buildOpts{}
	fs := pflag.NewFlagSet("build", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVarP(&o.Board, "board", "b", "", "board name ("+strings.Join(boards.Names(), ", ")+") or a profile file; several, comma-separated, build one tree for a mixed rack")
	fs.StringVarP(&o.Out, "out", "o", "", "output directory (default out/BOARD)")
	fs.StringSliceVar(&o.Overlays, "overlay", nil, "directory laid into the initramfs root; repeat or comma-separate, later wins")
	archiveFlags(fs, &o.Options)
	fs.StringVar(&o.KernelDeb, "kernel-deb", "", "use this linux-image .deb instead of fetching one")
	fs.StringVar(&o.KernelDir, "kernel-dir", "", "use a self-built kernel: a directory with Image and lib/modules/RELEASE")
	fs.StringVar(&o.KernelVersion, "kernel-version", "", "override the board's pinned kernel package version (\"latest\" for the newest)")
	fs.StringArrayVar(&o.FirmwareDebs, "firmware-deb", nil, "use this firmware .deb (matched by package name); repeatable")
	fs.Int64Var(&o.SourceDateEpoch, "source-date-epoch", envEpoch(), "timestamp of every initramfs entry, boot.img's files and boot.sig's ts: (default $SOURCE_DATE_EPOCH or 0)")
	fs.BoolVar(&o.HTTPBoot, "http-boot", false, "also write boot.img and boot.sig for the Pi 4/CM4/Pi 5 bootloader's HTTP boot ("+strings.Join(boards.HTTPBootNames(), ", ")+"; in a mixed tree, each of them in its directory); needs --sign-key")
	fs.StringVar(&o.signKey, "sign-key", "", "RSA-2048 private key (PEM) that signs boot.sig; make one with: openssl genrsa -out boot-key.pem 2048")
	fs.BoolVarP(&o.quiet, "quiet", "q", false, "print only errors")
	return fs, o
}

// archiveFlags are the source tree, cache and Debian archive flags that
// build and rootfs share.
func archiveFlags(fs *pflag.FlagSet, o *builder.Options) {
	fs.StringVar(&o.SrcDir, "src", "", "ramboot source tree (default: found from the current directory)")
	fs.StringVar(&o.CacheDir, "cache-dir", "", "download and build cache (default $XDG_CACHE_HOME/ramboot)")
	fs.StringVar(&o.AptMirror, "apt-mirror", "", "Debian mirror URL (default: from /etc/apt/sources.list*)")
	fs.StringVar(&o.Keyring, "keyring", "", "OpenPGP keyring for the archive (default: Debian's archive keyring)")
	fs.BoolVar(&o.Offline, "offline", false, "never use the network; rebuild from the cache")
}

func buildUsage(fs *pflag.FlagSet) string {
	return `Usage: ramboot build --board BOARD [flags]

Builds a TFTP-ready boot tree: kernel Image, device tree, firmware,
config.txt, cmdline.txt, rootfs.cpio.gz and manifest.json.

Examples:
  ramboot build --board rpi4
  ramboot build --board rpi4 --out /srv/tftp --overlay site
  ramboot build --board rpi4 --kernel-deb linux-image-6.12.117+deb13-arm64_6.12.117-1_arm64.deb \
      --firmware-deb raspi-firmware_1.20240424+ds-6_all.deb --firmware-deb arm-trusted-firmware_2.12.1+dfsg-1_arm64.deb
  ramboot build --board virt --offline
  ramboot build --board rpi4 --http-boot --sign-key boot-key.pem   # also out/rpi4/boot.img, boot.sig

With --http-boot, each board that boots over HTTP (` + strings.Join(boards.HTTPBootNames(), ", ") + `) also gets
boot.img, a FAT image of its files for the EEPROM bootloader, and boot.sig,
signed with --sign-key: at the tree's root, or in the board's directory of a
mixed tree. Put the key's public half into the EEPROM with
'ramboot eeprom --pubkey boot-key.pem'.

Flags:
` + fs.FlagUsages()
}

func envEpoch() int64 {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n
		}
	}
	return 0
}

// parseBoardFlags parses the flags of a command that builds for a board
// (build, rootfs) and checks what they have in common: flags only, a
// board, a SOURCE_DATE_EPOCH that is a number.
func parseBoardFlags(cmd string, fs *pflag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %s: %v (see 'ramboot help %s')", errUsage, cmd, err, cmd)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: %s: unexpected argument %q (flags only; see 'ramboot help %s')", errUsage, cmd, fs.Arg(0), cmd)
	}
	if b, _ := fs.GetString("board"); b == "" {
		return fmt.Errorf("%w: %s: no board: pass --board, one of %s", errUsage, cmd, strings.Join(boards.Names(), ", "))
	}
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" && !fs.Changed("source-date-epoch") {
		if _, err := strconv.ParseInt(s, 10, 64); err != nil {
			return fmt.Errorf("%w: SOURCE_DATE_EPOCH=%q is not a number of seconds", errUsage, s)
		}
	}
	return nil
}

func runBuild(ctx context.Context, version string, args []string, stdout, stderr io.Writer) error {
	fs, o := buildFlags(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, buildUsage(fs)) }
	if err := parseBoardFlags("build", fs, args); err != nil {
		return err
	}
	var many []string
	if strings.Contains(o.Board, ",") {
		for _, n := range strings.Split(o.Board, ",") {
			if n = strings.TrimSpace(n); n != "" {
				many = append(many, n)
			}
		}
	}
	if o.Out == "" {
		o.Out = filepath.Join("out", strings.TrimSuffix(filepath.Base(o.Board), ".yaml"))
		if len(many) > 0 {
			o.Out = filepath.Join("out", strings.Join(many, "-"))
		}
	}
	if o.SrcDir == "" {
		src, err := findSrc()
		if err != nil {
			return err
		}
		o.SrcDir = src
	}
	if o.HTTPBoot && o.signKey == "" {
		return fmt.Errorf("%w: build: %w", errUsage, builder.ErrNoSignKey)
	}
	if o.signKey != "" {
		if !o.HTTPBoot {
			return fmt.Errorf("%w: build: --sign-key signs boot.img, which only --http-boot makes: add --http-boot", errUsage)
		}
		pem, err := os.ReadFile(o.signKey)
		if err != nil {
			return fmt.Errorf("--sign-key: %w", err)
		}
		if o.SignKey, err = eeprom.ParsePrivateKey(pem); err != nil {
			return fmt.Errorf("--sign-key %s: %w", o.signKey, err)
		}
	}
	o.Version = version
	if !o.quiet {
		o.Log = stdout
		o.Progress = stderr
		if f, ok := stderr.(*os.File); !ok || !term.IsTerminal(int(f.Fd())) {
			o.Progress = nil
		}
	}
	if len(many) > 1 {
		for _, n := range many {
			if _, err := boards.Lookup(n); err != nil {
				return fmt.Errorf("%w: build: --board %s: %v", errUsage, o.Board, err)
			}
		}
		return builder.BuildTree(ctx, o.Options, many)
	}
	if len(many) == 1 {
		o.Board = many[0]
	}
	b := &builder.Build{Options: o.Options}
	return b.Run(ctx)
}

// findSrc walks up from the working directory to the ramboot module root.
func findSrc() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		data, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && strings.Contains(string(data), "module github.com/ramboot/ramboot\n") {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("%w: not inside the ramboot source tree (the initramfs commands are built from it): cd into it or pass --src DIR", errUsage)
		}
	}
}
