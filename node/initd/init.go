//go:build linux

package initd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ramboot/ramboot/bootspec"
	"github.com/ramboot/ramboot/node/action"
	"github.com/ramboot/ramboot/node/facts"
	"github.com/ramboot/ramboot/node/netup"
)

// BuildInfo is what the builder writes to /etc/ramboot/build.json.
type BuildInfo struct {
	Board   string `json:"board"`
	Kernel  string `json:"kernel"`
	Version string `json:"version"`
}

// Init is the state of PID 1.
type Init struct {
	Out  io.Writer
	Info BuildInfo

	cmdline     string // /proc/cmdline, read once after the mounts
	lease       atomic.Pointer[netup.Result]
	netPending  bool          // the network comes up behind a command-line shell
	modulesDone chan struct{} // closed when every module is loaded
	rep         reporter      // the stages reported to the server (report.go)

	mu sync.Mutex

	// The point of no return: a boot action commits (switch_root, kexec,
	// reboot) only if the deadline has not given up on it first.
	gate action.Gate

	procsOnce sync.Once
	procs     *procTable // PID 1's children, collected by reap (shell.go)
}

// DefaultDeadline bounds the boot action (downloads, scripts, mounts);
// ramboot.deadline= on the kernel command line changes it.
const DefaultDeadline = 15 * time.Minute

// deadline is ramboot.deadline= (a Go duration like 90s or 20m) or the
// default.
func (in *Init) deadline() time.Duration {
	if v, ok := bootspec.CmdlineParam(in.cmdline, "ramboot.deadline"); ok {
		if d, err := time.ParseDuration(v); err == nil && d > 0 {
			return d
		}
		in.stage("ramboot.deadline=%q is not a duration like 90s or 20m: using %v", v, DefaultDeadline)
	}
	return DefaultDeadline
}

// actBounded runs the boot action under one overall deadline
// (action.Bounded): when it passes, the shell follows at once, and an
// action still running can no longer commit.
func (in *Init) actBounded(ctx context.Context, value, source string, vars map[string]string) string {
	b := &action.Boot{
		Env:     env{in},
		Agent:   in.agent(),
		Vars:    vars,
		Out:     in.Out,
		Modules: in.modulesDone,
		Exited:  in.children().wait,
	}
	return action.Bounded(ctx, in.deadline(), &in.gate, func(ctx context.Context) string {
		return b.Run(ctx, value, source)
	})
}

// stage prints one line with the time since boot.
func (in *Init) stage(format string, args ...any) {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	in.mu.Lock()
	defer in.mu.Unlock()
	fmt.Fprintf(in.Out, "ramboot [%4d.%03d] %s\n", ts.Sec, ts.Nsec/1e6, fmt.Sprintf(format, args...))
}

// Run is the boot sequence. It returns only if the shell supervisor does,
// which it does not.
func (in *Init) Run() {
	in.stage("init: started (pid 1)")
	if err := mountBasics(); err != nil {
		in.stage("mounts: %v", err)
	} else {
		in.stage("mounts: /proc /sys /dev /run /tmp")
	}
	reopenConsole()
	in.setupSignals()
	go in.reap()

	if c, err := os.ReadFile("/proc/cmdline"); err == nil {
		in.cmdline = strings.TrimSpace(string(c))
	}
	in.Info = readBuildInfo("/etc/ramboot/build.json")
	os.Setenv("PATH", "/bbin:/bin:/sbin:/usr/bin:/usr/sbin")
	os.Setenv("HOME", "/root")
	os.Setenv("TERM", "linux")

	var kver string
	if u, err := uname(); err == nil {
		kver = u
	}
	// The network drivers first; NFS and the rest load while DHCP runs.
	modDir := filepath.Join("/lib/modules", kver)
	order, deps, err := readModuleLists(filepath.Join(modDir, "modules.load"))
	if err != nil {
		in.stage("modules: %v", err)
	}
	first, rest := splitNetwork(order, deps)
	if n, err := loadSet(modDir, first, deps, in.stage); err != nil {
		in.stage("modules: network drivers: %v", err)
	} else {
		in.stage("modules: %d network driver modules loaded", n)
	}
	in.modulesDone = make(chan struct{})
	go func() {
		defer close(in.modulesDone)
		defer func() {
			if r := recover(); r != nil {
				in.stage("modules: BUG: %v", r)
			}
		}()
		if n, err := loadSet(modDir, rest, deps, in.stage); err != nil {
			in.stage("modules: %v", err)
		} else {
			in.stage("modules: %d more loaded (%d in all)", n, len(order))
		}
	}()
	outcome := in.boot(kver)
	in.startSSH()
	in.banner(kver, outcome)
	in.superviseShells()
}

// boot finds option 224 (kernel command line first, then DHCP) and acts on
// it. It returns what happened, in words, when the shell is next.
func (in *Init) boot(kver string) string {
	ctx := context.Background()
	value, fromCmdline := bootspec.CmdlineValue(in.cmdline)
	source := "kernel command line (ramboot.224)"
	env := map[string]string{"kernel": kver, "board": in.Info.Board}
	needNet := true
	if fromCmdline {
		if spec, err := bootspec.Parse(value); err == nil && spec.Kind == bootspec.Shell {
			needNet = false
		}
	}
	if s := serial(); s != "" {
		env["serial"] = s
	}
	if h, _ := bootspec.CmdlineParam(in.cmdline, "ramboot.hostname"); h != "" {
		if err := unix.Sethostname([]byte(h)); err != nil {
			in.stage("hostname %s: %v", h, err)
		}
	}
	if !needNet {
		// The shell, by command line (as serve's iPXE script says for a
		// node whose option 224 is "shell"): the shell comes first, the
		// network right behind it, so SSH and the node's tools can reach
		// the provisioning network.
		in.netPending = true
		own := maps.Clone(env)
		go func() {
			defer func() {
				if r := recover(); r != nil {
					in.stage("network: BUG: %v", r)
				}
			}()
			if _, _, err := in.network(ctx, own); err != nil {
				in.stage("network: %v (the shell stays, without network)", err)
			}
		}()
	}
	if needNet {
		v, src, err := in.network(ctx, env)
		if err != nil {
			in.stage("network: %v", err)
			if !fromCmdline {
				return "no network (" + err.Error() + "): provisioning shell"
			}
		} else if !fromCmdline {
			value, source = v, src
		}
	}
	if spec, err := bootspec.Parse(value); err == nil {
		switch spec.Kind {
		case bootspec.NFS, bootspec.Local, bootspec.Install:
			// NFS and overlay, the disk drivers and their file systems
			// must be in before act mounts them.
			<-in.modulesDone
		}
	}
	outcome := in.actBounded(ctx, value, source, env)
	in.reportOutcome(value, outcome)
	return outcome
}

func readBuildInfo(p string) BuildInfo {
	var bi BuildInfo
	data, err := os.ReadFile(p)
	if err == nil {
		_ = json.Unmarshal(data, &bi)
	}
	if bi.Board == "" {
		bi.Board = "unknown"
	}
	return bi
}

func uname() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", err
	}
	return unix.ByteSliceToString(u.Release[:]), nil
}

// machineModel names the hardware: the device tree's model on a Pi, the
// firmware's DMI vendor and product on a PC.
func machineModel() string {
	if m, err := os.ReadFile("/proc/device-tree/model"); err == nil {
		return strings.TrimRight(string(m), "\x00\n")
	}
	var parts []string
	for _, f := range []string{"sys_vendor", "product_name"} {
		if b, err := os.ReadFile("/sys/class/dmi/id/" + f); err == nil {
			if v := strings.TrimSpace(string(b)); v != "" {
				parts = append(parts, v)
			}
		}
	}
	if len(parts) == 0 {
		return "unknown"
	}
	return strings.Join(parts, " ")
}

func (in *Init) banner(kver, outcome string) {
	model := machineModel()
	var lines []string
	lines = append(lines, fmt.Sprintf("ramboot %s on board %s (%s), kernel %s", in.Info.Version, in.Info.Board, model, kver))
	lines = append(lines, "cmdline: "+in.cmdline)
	host, _ := os.Hostname()
	id := "host: " + host
	if s := serial(); s != "" {
		id += ", serial " + s
	}
	lines = append(lines, id)
	lines = append(lines, "facts: "+facts.Gather("/", "").Summary())
	if b := readDT(bootImgDigestDT); b != nil {
		if d, ok := parseBootImgDigest(b); ok {
			lines = append(lines, "boot.img: sha256 "+d+", verified by the bootloader (device tree "+bootImgDigestDT+")")
		} else {
			lines = append(lines, fmt.Sprintf("boot.img: the device tree's %s is %d bytes, neither a SHA-256 nor its hex digits", bootImgDigestDT, len(b)))
		}
	}
	if l := in.lease.Load(); l != nil {
		lines = append(lines, "net: "+describeLease(l))
	} else if !in.netPending {
		lines = append(lines, "net: down")
	} else {
		lines = append(lines, "net: coming up behind the shell")
	}
	lines = append(lines, "224: "+outcome)
	for _, l := range lines {
		in.stage("%s", l)
	}
	// The same for SSH logins.
	_ = os.WriteFile("/etc/motd", []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

// mountBasics mounts what every later stage needs. A mount that is already
// there (EBUSY) is fine.
func mountBasics() error {
	type m struct {
		src, dst, fstype string
		flags            uintptr
		data             string
	}
	var errs []error
	for _, x := range []m{
		{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
		{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "ptmxmode=0666,mode=0620"},
		{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
		{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
	} {
		if err := os.MkdirAll(x.dst, 0o755); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := unix.Mount(x.src, x.dst, x.fstype, x.flags, x.data); err != nil && !errors.Is(err, unix.EBUSY) {
			errs = append(errs, fmt.Errorf("mount %s on %s: %w", x.fstype, x.dst, err))
		}
	}
	return errors.Join(errs...)
}

// reopenConsole points fds 0-2 at /dev/console in case the kernel could
// not open it before devtmpfs was mounted.
func reopenConsole() {
	if _, err := unix.FcntlInt(0, unix.F_GETFD, 0); err == nil {
		if fi, err := os.Stdin.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			return
		}
	}
	fd, err := unix.Open("/dev/console", unix.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return
	}
	for i := 0; i < 3; i++ {
		_ = unix.Dup3(fd, i, 0)
	}
	if fd > 2 {
		unix.Close(fd)
	}
}
