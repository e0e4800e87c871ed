//go:build linux

package initd

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/u-root/u-root/pkg/mount"
	"golang.org/x/sys/unix"

	"github.com/ramboot/ramboot/internal/report"
	"github.com/ramboot/ramboot/kernel/kimage"
)

// undo is a stack of mounts (and other steps) to take back, newest first,
// when an action fails before its point of no return: nothing is left
// mounted or half-written.
type undo []func() error

func (u *undo) push(f func() error) { *u = append(*u, f) }

// unmount pushes the unmounting of dir.
func (u *undo) unmount(dir string) {
	u.push(func() error {
		if err := unix.Unmount(dir, 0); err != nil {
			return unix.Unmount(dir, unix.MNT_DETACH)
		}
		return nil
	})
}

// run takes every step back and reports the ones that failed.
func (u *undo) run() error {
	var errs []error
	for i := len(*u) - 1; i >= 0; i-- {
		if err := (*u)[i](); err != nil {
			errs = append(errs, err)
		}
	}
	*u = nil
	return errors.Join(errs...)
}

// overlayRoot mounts a RAM layer (a tmpfs of size, "" for tmpfs's default)
// over the read-only lower directory on newRoot, pushing what it mounts.
func overlayRoot(u *undo, lower, newRoot, size string) error {
	rw := "/run/ramboot/rw"
	if err := os.MkdirAll(rw, 0o755); err != nil {
		return err
	}
	opts := "mode=0755"
	if size != "" {
		opts += ",size=" + size
	}
	if err := unix.Mount("tmpfs", rw, "tmpfs", 0, opts); err != nil {
		return fmt.Errorf("overlay tmpfs (%s): %w", opts, err)
	}
	u.unmount(rw)
	for _, d := range []string{rw + "/upper", rw + "/work", newRoot} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	o := "lowerdir=" + lower + ",upperdir=" + rw + "/upper,workdir=" + rw + "/work"
	if err := unix.Mount("overlay", newRoot, "overlay", 0, o); err != nil {
		return fmt.Errorf("overlay mount: %w (is the overlay module loaded?)", err)
	}
	u.unmount(newRoot)
	return nil
}

// switchRoot is every action's point of no return (RAM root, NFS root):
// it checks that the new root's init can run here — it exists, is an
// executable of this machine's architecture, and its interpreter is there —
// and only then moves /dev, /proc, /sys and /run into newRoot, deletes the
// initramfs and execs the init as PID 1. A failed check returns (the caller
// cleans up and the shell follows). After the point of no return nothing
// returns: if the exec still fails, the new root's own shell is tried, then
// PID 1 waits, printing why, rather than exit and panic the kernel.
func (in *Init) switchRoot(newRoot, init string) error {
	if err := kimage.CheckInit(newRoot, init, archName()); err != nil {
		return fmt.Errorf("the new root cannot be started: %w", err)
	}
	if err := in.commit(); err != nil {
		return err
	}
	// The initramfs's /tmp does not come along; what it holds is freed.
	_ = unix.Unmount("/tmp", unix.MNT_DETACH)
	in.stage("switch_root: %s, exec %s", newRoot, init)
	in.reportLast(report.SwitchRoot, newRoot+", exec "+init)
	unix.Sync()
	err := mount.SwitchRoot(newRoot, init)
	// Past the point of no return: the initramfs may be gone.
	for {
		in.stage("switch_root: %v", err)
		for _, sh := range []string{"/bin/sh", "/usr/bin/sh"} {
			if _, serr := os.Stat(sh); serr == nil {
				in.stage("switch_root: starting %s of the new root", sh)
				err = unix.Exec(sh, []string{"sh"}, os.Environ())
			}
		}
		time.Sleep(time.Minute)
	}
}
