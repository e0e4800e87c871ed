// Package kexec is how the init boots a kernel it holds in memory. Image
// is the one boot plan every kexec takes, wherever it came from: a kernel
// option 224 chains to, an iPXE script's kernel and initrds (node/ipxe),
// a local disk's GRUB, BLS, syslinux or Pi config.txt entry
// (node/bootcfg). Load checks the kernel against this machine and loads
// it; Reboot boots it.
//
//	img := &kexec.Image{Kernel: k, Source: u.String(), Cmdline: "console=ttyS0"}
//	if err := kexec.Load(img, logf); err != nil {
//		return err // nothing booted: the shell follows
//	}
//	// past the point of no return
//	return kexec.Reboot()
package kexec

// Image is a kernel to kexec, with its initrds and command line.
type Image struct {
	// Kernel is the kernel as fetched or read: an arm64 Image or an x86
	// bzImage, possibly gzip-compressed (Load unpacks it).
	Kernel []byte
	// Source names where the kernel came from, for the console and the
	// server's report: its URL, or PARTITION:LABEL for a local boot.
	Source string
	// Name is the kernel's iPXE image name (--name, or the last path
	// element of its URL); "" when no script named it.
	Name string
	// Initrds are joined in order (Initrd) into the one initrd.
	Initrds []Initrd
	// Cmdline is the kernel command line.
	Cmdline string
}

// Initrd is one initrd (initramfs) of an Image.
type Initrd struct {
	// Name is its iPXE image name.
	Name string
	// URL is the absolute URL it was fetched from ("" if read from disk).
	URL string
	// Args are iPXE's image arguments (initrd URL args...); Linux does
	// not read them.
	Args string
	Data []byte
}

// Initrd returns the initrds concatenated in order, each padded with
// zeros to a 4-byte boundary as iPXE does (Linux accepts concatenated
// cpio archives, compressed or not). It returns nil if there are none.
func (im *Image) Initrd() []byte {
	var b []byte
	for _, i := range im.Initrds {
		b = append(b, i.Data...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
	}
	return b
}
