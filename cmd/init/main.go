//go:build linux

// Command init is ramboot's PID 1. It runs entirely in RAM from the
// initramfs: it mounts the basic file systems, loads the board's kernel
// modules in dependency order, prints a banner and keeps a shell on the
// console. It never exits: every failure is printed and ends in the shell.
//
// Each stage prints one line with the time since boot, so boot time can be
// read off the serial console:
//
//	ramboot [   1.234] mounts: /proc /sys /dev /run /tmp
package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"time"
)

func main() {
	if os.Getenv(sshChildEnv) == "1" && os.Getpid() != 1 {
		os.Exit(sshChild())
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "ramboot init: not PID 1; this program is the initramfs /init and runs only as the first process")
		os.Exit(2)
	}
	in := &Init{Out: os.Stdout}
	// The boot runs once: a panic in it, or in the shell's supervisor
	// later, is printed and the shell kept alive, never the boot rerun
	// (a second DHCP, a second download, a second switch_root).
	in.safely("boot", in.Run)
	for {
		in.safely("shell", in.superviseShells)
		time.Sleep(time.Second)
	}
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
