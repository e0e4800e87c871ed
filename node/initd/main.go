//go:build linux

package initd

import (
	"os"
	"runtime/debug"
	"time"
)

// Main is PID 1's life: the boot once, then the shells for ever. It
// never returns. The boot runs once: a panic in it, or in the shell's
// supervisor later, is printed and the shell kept alive, never the boot
// rerun (a second DHCP, a second download, a second switch_root).
func (in *Init) Main() {
	in.safely("boot", in.Run)
	for {
		in.safely("shell", in.superviseShells)
		time.Sleep(time.Second)
	}
}

// IsSSHChild says whether this process is the init binary started by
// PID 1 as its SSH server (SSHChild).
func IsSSHChild() bool {
	return os.Getenv(sshChildEnv) == "1" && os.Getpid() != 1
}

// safely runs f and turns a panic into a message; the caller goes on to
// the provisioning shell.
func (in *Init) safely(what string, f func()) {
	defer func() {
		if r := recover(); r != nil {
			in.stage("BUG in the %s: %v\n%s", what, r, debug.Stack())
			in.stage("continuing to the provisioning shell")
		}
	}()
	f()
}
