//go:build linux

package action

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// undo is a stack of mounts (and other steps) to take back, newest first,
// when an action fails before its point of no return: nothing is left
// mounted or half-written.
type undo []func() error

func (u *undo) push(f func() error) { *u = append(*u, f) }

// unmount pushes the unmounting of dir.
func (u *undo) unmount(sys Sys, dir string) {
	u.push(func() error {
		if err := sys.Unmount(dir, 0); err != nil {
			return sys.Unmount(dir, unix.MNT_DETACH)
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
func (b *Boot) overlayRoot(u *undo, lower, newRoot, size string) error {
	rw := b.path("/run/ramboot/rw")
	if err := os.MkdirAll(rw, 0o755); err != nil {
		return err
	}
	opts := "mode=0755"
	if size != "" {
		opts += ",size=" + size
	}
	if err := b.sys().Mount("tmpfs", rw, "tmpfs", 0, opts); err != nil {
		return fmt.Errorf("overlay tmpfs (%s): %w", opts, err)
	}
	u.unmount(b.sys(), rw)
	for _, d := range []string{rw + "/upper", rw + "/work", newRoot} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	o := "lowerdir=" + lower + ",upperdir=" + rw + "/upper,workdir=" + rw + "/work"
	if err := b.sys().Mount("overlay", newRoot, "overlay", 0, o); err != nil {
		return fmt.Errorf("overlay mount: %w (is the overlay module loaded?)", err)
	}
	u.unmount(b.sys(), newRoot)
	return nil
}
