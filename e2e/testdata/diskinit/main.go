// Command diskinit is the initramfs /init of the disk images the install
// tests write: what initramfs-tools does for an installed Debian, cut to
// the bone. It loads the modules of ramboot's initramfs (whose archive it
// is appended to: virtio_blk, ext4), mounts root= and switch_roots into
// its /sbin/init.
//
// The e2e tests build it with CGO_ENABLED=0 for the guest's architecture.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/u-root/u-root/pkg/mount"
	"golang.org/x/sys/unix"
)

func main() {
	unix.Mount("devtmpfs", "/dev", "devtmpfs", 0, "")
	unix.Mount("proc", "/proc", "proc", 0, "")
	unix.Mount("sysfs", "/sys", "sysfs", 0, "")
	say := func(f string, a ...any) {
		if c, err := os.OpenFile("/dev/console", os.O_WRONLY, 0); err == nil {
			fmt.Fprintf(c, "diskinit: "+f+"\n", a...)
			c.Close()
		}
	}
	if err := run(say); err != nil {
		say("FAILED: %v", err)
	}
	for {
		time.Sleep(time.Hour)
	}
}

func run(say func(string, ...any)) error {
	var u unix.Utsname
	unix.Uname(&u)
	rel := unix.ByteSliceToString(u.Release[:])
	dir := filepath.Join("/lib/modules", rel)
	order, _ := os.ReadFile(filepath.Join(dir, "modules.load"))
	n := 0
	for _, m := range strings.Fields(string(order)) {
		f, err := os.Open(filepath.Join(dir, m))
		if err != nil {
			continue
		}
		flags := 0
		if strings.HasSuffix(m, ".xz") || strings.HasSuffix(m, ".zst") || strings.HasSuffix(m, ".gz") {
			flags = unix.MODULE_INIT_COMPRESSED_FILE
		}
		if err := unix.FinitModule(int(f.Fd()), "", flags); err == nil {
			n++
		}
		f.Close()
	}
	cmdline, _ := os.ReadFile("/proc/cmdline")
	root, rw := "", false
	for _, a := range strings.Fields(string(cmdline)) {
		if v, ok := strings.CutPrefix(a, "root="); ok {
			root = v
		}
		if a == "rw" {
			rw = true
		}
	}
	say("%d modules; root=%s", n, root)
	if root == "" {
		return fmt.Errorf("no root= on the command line")
	}
	var err error
	for i := 0; i < 100; i++ {
		if _, err = os.Stat(root); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	os.MkdirAll("/newroot", 0o755)
	var flags uintptr
	if !rw {
		flags = unix.MS_RDONLY
	}
	if err := unix.Mount(root, "/newroot", "ext4", flags, ""); err != nil {
		return fmt.Errorf("mount %s: %w", root, err)
	}
	say("switch_root to %s", root)
	return mount.SwitchRoot("/newroot", "/sbin/init")
}
