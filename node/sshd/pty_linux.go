//go:build linux

package sshd

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// openPTY allocates a pseudo-terminal: the master (kept by the server)
// and the slave (given to the child). It needs devpts mounted on
// /dev/pts with /dev/ptmx (or a /dev/ptmx -> pts/ptmx link).
func openPTY() (master, slave *os.File, err error) {
	// Opened through os.OpenFile so the master is non-blocking and in
	// the runtime poller: reads can be given deadlines and are woken by
	// Close.
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	fail := func(e error) (*os.File, *os.File, error) {
		master.Close()
		return nil, nil, e
	}
	rc, err := master.SyscallConn()
	if err != nil {
		return fail(err)
	}
	var n int
	var ioErr error
	if err := rc.Control(func(fd uintptr) {
		if ioErr = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); ioErr != nil {
			ioErr = fmt.Errorf("unlockpt: %w", ioErr)
			return
		}
		n, ioErr = unix.IoctlGetInt(int(fd), unix.TIOCGPTN)
		if ioErr != nil {
			ioErr = fmt.Errorf("ptsname: %w", ioErr)
		}
	}); err != nil {
		return fail(err)
	}
	if ioErr != nil {
		return fail(ioErr)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return fail(err)
	}
	return master, slave, nil
}

// setWinsize sets the terminal size (TIOCSWINSZ) of the PTY behind f;
// the kernel sends SIGWINCH to its foreground process group.
func setWinsize(f *os.File, cols, rows, xpix, ypix uint32) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	ws := &unix.Winsize{Col: clamp16(cols), Row: clamp16(rows), Xpixel: clamp16(xpix), Ypixel: clamp16(ypix)}
	var ioErr error
	if err := rc.Control(func(fd uintptr) {
		ioErr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, ws)
	}); err != nil {
		return err
	}
	return ioErr
}

func clamp16(v uint32) uint16 {
	if v > 0xffff {
		return 0xffff
	}
	return uint16(v)
}
