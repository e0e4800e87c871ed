//go:build linux

package initd

import (
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/u-root/u-root/pkg/mount"
	"golang.org/x/sys/unix"

	"github.com/ramboot/ramboot/internal/report"
	"github.com/ramboot/ramboot/kernel/kimage"
)

// switchRoot is every action's point of no return (RAM root, NFS root):
// it checks that the new root's init can run here — it exists, is an
// executable of this machine's architecture, and its interpreter is there —
// and only then moves /dev, /proc, /sys and /run into newRoot, deletes the
// initramfs and execs the init as PID 1. A failed check returns (the caller
// cleans up and the shell follows). After the point of no return nothing
// returns: if the exec still fails, the new root's own shell is tried, then
// PID 1 waits, printing why, rather than exit and panic the kernel.
func (in *Init) switchRoot(newRoot, init string) error {
	if err := kimage.CheckInit(newRoot, init, runtime.GOARCH); err != nil {
		return fmt.Errorf("the new root cannot be started: %w", err)
	}
	if err := in.gate.Commit(); err != nil {
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
