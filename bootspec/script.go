package bootspec

import (
	"fmt"
	"path"
	"strings"
)

// The kernel command-line parameters the init reads, which the server's
// iPXE scripts and the pxelinux configs (ramboot pxelinux) write.
const (
	// Param224 carries option 224 when no DHCP server sends it.
	Param224 = "ramboot.224"
	// ParamHostname is the node's host name.
	ParamHostname = "ramboot.hostname"
)

// KernelArgs renders a node's ramboot.224= and ramboot.hostname=
// parameters, as CmdlineParam reads them back: a value with spaces is
// quoted; a value the kernel's command line cannot carry (a control
// character, spaces together with double quotes, a host name with spaces
// or quotes) is an error naming it. A node whose option 224 chains to its
// own iPXE script (/boot/<mac>.ipxe) would boot itself again: it gets the
// shell instead.
func KernelArgs(option224, hostname string) (string, error) {
	for _, r := range option224 + hostname {
		if r < 0x20 || r == 0x7f {
			return "", fmt.Errorf("option 224 or hostname %q holds a control character; remove it", option224+hostname)
		}
	}
	if strings.Contains(option224, `"`) && strings.ContainsAny(option224, " \t") {
		return "", fmt.Errorf("option 224 %q: a kernel command line cannot carry both spaces and double quotes", option224)
	}
	if strings.ContainsAny(hostname, " \t\"") {
		return "", fmt.Errorf("hostname %q: no spaces or quotes", hostname)
	}
	if strings.Contains(option224, "/boot/") && strings.Contains(option224, ".ipxe") {
		option224 = "shell"
	}
	var args []string
	if option224 != "" {
		v := option224
		if strings.ContainsAny(v, " \t") {
			v = `"` + v + `"`
		}
		args = append(args, Param224+"="+v)
	}
	if hostname != "" {
		args = append(args, ParamHostname+"="+hostname)
	}
	return strings.Join(args, " "), nil
}

// IPXE is the body of an iPXE script that boots kernel with initrd and the
// command line args. initrd=NAME names the initramfs for the kernel's EFI
// stub under UEFI (iPXE on x86 or arm64 UEFI); elsewhere the kernel
// ignores it.
func IPXE(kernel, initrd, args string) string {
	return fmt.Sprintf("kernel %s %s initrd=%s\ninitrd %s\nboot\n", kernel, args, path.Base(initrd), initrd)
}

// PXELinux is a pxelinux.cfg entry that boots kernel with initrd and the
// command line args at once.
func PXELinux(kernel, initrd, args string) string {
	return fmt.Sprintf("DEFAULT ramboot\nPROMPT 0\nTIMEOUT 0\n\nLABEL ramboot\n  KERNEL %s\n  APPEND initrd=%s %s\n", kernel, initrd, args)
}
