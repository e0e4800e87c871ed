//go:build linux

package main

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// zeroWriter writes to a block device, handing runs of zeros to the
// kernel as BLKZEROOUT instead: a device that can (NVMe, SCSI WRITE SAME,
// virtio-blk's write-zeroes, an SSD's deallocate) zeroes them without the
// data crossing the bus, and the kernel writes zeros itself on one that
// cannot. Disk images are mostly zeros: a file system's free space. The
// result on the device is the same bytes.
type zeroWriter struct {
	f   *os.File
	off int64
	// zeroed counts the bytes handed to BLKZEROOUT.
	zeroed int64
	// off says the ioctl failed once: write everything from then on.
	plain bool
}

func (z *zeroWriter) Write(b []byte) (int, error) {
	if !z.plain && len(b)%512 == 0 && z.off%512 == 0 && allZero(b) {
		r := [2]uint64{uint64(z.off), uint64(len(b))}
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, z.f.Fd(), unix.BLKZEROOUT, uintptr(unsafe.Pointer(&r[0]))); errno == 0 {
			if _, err := z.f.Seek(int64(len(b)), 1); err != nil {
				return 0, err
			}
			z.off += int64(len(b))
			z.zeroed += int64(len(b))
			return len(b), nil
		}
		z.plain = true
	}
	n, err := z.f.Write(b)
	z.off += int64(n)
	return n, err
}

// allZero reports whether b holds only zero bytes, a word at a time.
func allZero(b []byte) bool {
	for len(b) >= 8 {
		if *(*uint64)(unsafe.Pointer(&b[0])) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
