package cli

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/ramboot/ramboot/boards"
	"github.com/ramboot/ramboot/builder"
)

type rootfsOpts struct {
	builder.RootfsOptions
	quiet bool
}

func rootfsFlags(stderr io.Writer) (*pflag.FlagSet, *rootfsOpts) {
	o := &rootfsOpts{}
	fs := pflag.NewFlagSet("rootfs", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVarP(&o.Board, "board", "b", "", "board name ("+strings.Join(boards.Names(), ", ")+") or a profile file: its kernel's modules go into the image")
	fs.StringVarP(&o.Out, "out", "o", "", "the board's tree (default out/BOARD); the image goes in OUT/images/")
	fs.StringVar(&o.From, "from", "", "your own root instead of Debian: a directory or a tarball (docker export, a Raspberry Pi OS root)")
	fs.StringSliceVar(&o.Include, "include", nil, "Debian packages added to the default root; repeat or comma-separate")
	fs.StringVar(&o.Name, "name", "", "image name (default debian, or the --from base name): OUT/images/NAME.squashfs")
	fs.StringVar(&o.Channel, "channel", "", "promote the new generation on this channel (OUT/images/NAME-CHANNEL.squashfs, a canary say) instead of the default one (NAME.squashfs)")
	fs.StringSliceVar(&o.Overlays, "overlay", nil, "overlay directories, as for build: their etc/ramboot/authorized_keys become root's SSH keys")
	archiveFlags(fs, &o.Options)
	fs.StringVar(&o.KernelDeb, "kernel-deb", "", "take the modules from this linux-image .deb")
	fs.StringVar(&o.KernelDir, "kernel-dir", "", "take the modules from a self-built kernel: a directory with Image and lib/modules/RELEASE")
	fs.StringVar(&o.KernelVersion, "kernel-version", "", "override the board's pinned kernel package version")
	fs.Int64Var(&o.SourceDateEpoch, "source-date-epoch", envEpoch(), "every file's time in the image (default $SOURCE_DATE_EPOCH or the archive's date)")
	fs.BoolVarP(&o.quiet, "quiet", "q", false, "print only errors")
	return fs, o
}

func rootfsUsage(fs *pflag.FlagSet) string {
	return `Usage: ramboot rootfs --board BOARD [flags]

Builds a root image the init runs from RAM, as a new generation:
OUT/images/NAME@ID.squashfs (zstd; ID its short digest) and its .sha256,
then points the channel OUT/images/NAME.squashfs (and its .sha256) at it.
The previous generation stays: 'ramboot image rollback' goes back to it. The default root is a small Debian with systemd,
udev, iproute2, openssh-server, ca-certificates and curl, from the suite and
mirror of the board's kernel (mmdebstrap; another architecture through
qemu-user). --from takes your own root instead. Either way the image gets
the kernel's complete modules, DHCP on every wired interface with the host
name from DHCP, and the overlays' etc/ramboot/authorized_keys for root.
Needs root (file owners) and mmdebstrap, squashfs-tools, kmod.

Point option 224 at it:  http://SERVER:8080/images/debian.squashfs

Examples:
  sudo ramboot rootfs --board rpi4 --overlay keys
  sudo ramboot rootfs --board rpi4 --include htop,nfs-common --overlay keys
  sudo ramboot rootfs --board rpi4 --from raspios-root.tar.xz --overlay keys
  docker export $(docker create debian:trixie) > trixie.tar   # a user root has to have an init

Flags:
` + fs.FlagUsages()
}

func runRootfs(ctx context.Context, version string, args []string, stdout, stderr io.Writer) error {
	fs, o := rootfsFlags(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, rootfsUsage(fs)) }
	if err := parseBoardFlags("rootfs", fs, args); err != nil {
		return err
	}
	if o.Out == "" {
		o.Out = filepath.Join("out", strings.TrimSuffix(filepath.Base(o.Board), ".yaml"))
	}
	if o.SrcDir == "" {
		src, err := findSrc()
		if err != nil {
			return err
		}
		o.SrcDir = src
	}
	o.Version = version
	if !o.quiet {
		o.Log = stdout
	}
	r := &builder.Rootfs{RootfsOptions: o.RootfsOptions}
	if err := r.Run(ctx); err != nil {
		return err
	}
	if o.quiet {
		fmt.Fprintln(stdout, r.Image)
	}
	return nil
}
