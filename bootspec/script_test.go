package bootspec

import (
	"strings"
	"testing"
)

// KernelArgs writes what CmdlineParam reads back, and refuses what a
// kernel command line cannot carry.
func TestKernelArgs(t *testing.T) {
	for _, tc := range []struct{ opt, host, want, err string }{
		{"", "", "", ""},
		{"shell", "n1", "ramboot.224=shell ramboot.hostname=n1", ""},
		{"nfs://192.0.2.1/srv/root?vers=4", "", "ramboot.224=nfs://192.0.2.1/srv/root?vers=4", ""},
		{"192.0.2.1:/srv/root, vers=3", "", `ramboot.224="192.0.2.1:/srv/root, vers=3"`, ""},
		{"http://192.0.2.1:8080/boot/52-54-00-12-34-56.ipxe", "", "ramboot.224=shell", ""},
		{"a\x01b", "", "", "control character"},
		{`say "a b"`, "", "", "both spaces and double quotes"},
		{"shell", "n 1", "", "no spaces or quotes"},
	} {
		got, err := KernelArgs(tc.opt, tc.host)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("KernelArgs(%q, %q): error %v, want one saying %q", tc.opt, tc.host, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("KernelArgs(%q, %q) = %q, %v; want %q", tc.opt, tc.host, got, err, tc.want)
		case tc.err == "" && tc.opt != "" && !strings.Contains(tc.opt, ".ipxe"):
			if v, ok := CmdlineValue("console=ttyS0 " + got + " quiet"); !ok || v != tc.opt {
				t.Errorf("CmdlineValue(%q) = %q, %v; want %q back", got, v, ok, tc.opt)
			}
		}
	}
}

func TestScripts(t *testing.T) {
	got := IPXE("http://192.0.2.1:8080/pc/vmlinuz", "http://192.0.2.1:8080/pc/rootfs.cpio.gz", "console=ttyS0 ramboot.224=shell")
	want := "kernel http://192.0.2.1:8080/pc/vmlinuz console=ttyS0 ramboot.224=shell initrd=rootfs.cpio.gz\ninitrd http://192.0.2.1:8080/pc/rootfs.cpio.gz\nboot\n"
	if got != want {
		t.Errorf("IPXE:\n%s\nwant\n%s", got, want)
	}
	got = PXELinux("pc/vmlinuz", "pc/rootfs.cpio.gz", "console=ttyS0")
	if !strings.Contains(got, "  KERNEL pc/vmlinuz\n  APPEND initrd=pc/rootfs.cpio.gz console=ttyS0\n") {
		t.Errorf("PXELinux:\n%s", got)
	}
}
