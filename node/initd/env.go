//go:build linux

package initd

import (
	"golang.org/x/sys/unix"

	"github.com/ramboot/ramboot/internal/report"
	"github.com/ramboot/ramboot/node/action"
	"github.com/ramboot/ramboot/node/kexec"
)

// env is PID 1 as the boot actions see it (action.Env): the console, the
// reports, and the points of no return behind the commit gate.
type env struct{ in *Init }

var _ action.Env = env{}

func (e env) Stage(format string, args ...any) { e.in.stage(format, args...) }

// Report reports a stage, best effort, without waiting.
func (e env) Report(stage, detail string) { e.in.report(stage, detail) }

// Progress reports n of total bytes (total <= 0: unknown).
func (e env) Progress(stage string, n, total int64) { e.in.reportProgress(stage, n, total) }

// Deliver delivers an install's outcome (report.go, deliverOutcome).
func (e env) Deliver(stage, detail string) bool { return e.in.deliverOutcome(stage, detail) }

// Kexec loads img (kexec.Load checks the kernel first), passes the point
// of no return and reboots into it. It returns only on failure.
func (e env) Kexec(img *kexec.Image) error {
	in := e.in
	if err := kexec.Load(img, in.stage); err != nil {
		return err
	}
	if err := in.gate.Commit(); err != nil {
		return err
	}
	in.stage("kexec: loaded; booting %s", img.Source)
	in.reportLast(report.Kexec, img.Source)
	unix.Sync()
	return kexec.Reboot()
}

// SwitchRoot is switchRoot (switchroot.go).
func (e env) SwitchRoot(newRoot, init string) error { return e.in.switchRoot(newRoot, init) }

// Reboot reboots into the installed system, past the point of no return.
func (e env) Reboot() error {
	in := e.in
	if err := in.gate.Commit(); err != nil {
		return err
	}
	in.stage("install: rebooting into the installed system")
	unix.Sync()
	return unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
}

// agent is the init's HTTP User-Agent, with the MAC of its lease.
func (in *Init) agent() string {
	a := "ramboot-init/" + in.Info.Version
	if l := in.lease.Load(); l != nil {
		a += " (mac=" + l.MAC.String() + ")"
	}
	return a
}
