package initramfs

// Commands is ramboot's provisioning command set: what an operator at the
// serial console (or over SSH) needs to look at a node, fix its network,
// fetch and boot a kernel, mount things and write disks. The init itself is
// added by the builder. tools.go imports the same list so that go.mod and
// go.sum pin every command's dependencies; a test keeps the two in step.
var Commands = []string{
	// shell and files
	"github.com/u-root/u-root/cmds/core/gosh",
	"github.com/u-root/u-root/cmds/core/cat",
	"github.com/u-root/u-root/cmds/core/chmod",
	"github.com/u-root/u-root/cmds/core/cp",
	"github.com/u-root/u-root/cmds/core/dd",
	"github.com/u-root/u-root/cmds/core/echo",
	"github.com/u-root/u-root/cmds/core/find",
	"github.com/u-root/u-root/cmds/core/grep",
	"github.com/u-root/u-root/cmds/core/gzip",
	"github.com/u-root/u-root/cmds/core/head",
	"github.com/u-root/u-root/cmds/core/hexdump",
	"github.com/u-root/u-root/cmds/core/ln",
	"github.com/u-root/u-root/cmds/core/ls",
	"github.com/u-root/u-root/cmds/core/md5sum",
	"github.com/u-root/u-root/cmds/core/mkdir",
	"github.com/u-root/u-root/cmds/core/more",
	"github.com/u-root/u-root/cmds/core/mv",
	"github.com/u-root/u-root/cmds/core/pwd",
	"github.com/u-root/u-root/cmds/core/readlink",
	"github.com/u-root/u-root/cmds/core/rm",
	"github.com/u-root/u-root/cmds/core/shasum",
	"github.com/u-root/u-root/cmds/core/sleep",
	"github.com/u-root/u-root/cmds/core/sync",
	"github.com/u-root/u-root/cmds/core/tail",
	"github.com/u-root/u-root/cmds/core/tar",
	"github.com/u-root/u-root/cmds/core/tee",
	"github.com/u-root/u-root/cmds/core/touch",
	"github.com/u-root/u-root/cmds/core/wc",
	"github.com/u-root/u-root/cmds/core/which",
	"github.com/u-root/u-root/cmds/core/xargs",
	// system
	"github.com/u-root/u-root/cmds/core/date",
	"github.com/u-root/u-root/cmds/core/df",
	"github.com/u-root/u-root/cmds/core/dmesg",
	"github.com/u-root/u-root/cmds/core/free",
	"github.com/u-root/u-root/cmds/core/hostname",
	"github.com/u-root/u-root/cmds/core/kill",
	"github.com/u-root/u-root/cmds/core/ps",
	"github.com/u-root/u-root/cmds/core/shutdown",
	"github.com/u-root/u-root/cmds/core/uname",
	"github.com/u-root/u-root/cmds/core/uptime",
	// modules
	"github.com/u-root/u-root/cmds/core/insmod",
	"github.com/u-root/u-root/cmds/core/lsmod",
	"github.com/u-root/u-root/cmds/core/rmmod",
	"github.com/u-root/u-root/cmds/exp/modprobe",
	// network
	"github.com/u-root/u-root/cmds/core/dhclient",
	"github.com/u-root/u-root/cmds/core/ip",
	"github.com/u-root/u-root/cmds/core/netcat",
	"github.com/u-root/u-root/cmds/core/ping",
	"github.com/u-root/u-root/cmds/core/wget",
	// boot and disks
	"github.com/u-root/u-root/cmds/core/blkid",
	"github.com/u-root/u-root/cmds/core/kexec",
	"github.com/u-root/u-root/cmds/core/mount",
	"github.com/u-root/u-root/cmds/core/switch_root",
	"github.com/u-root/u-root/cmds/core/umount",
}
