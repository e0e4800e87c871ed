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
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "ramboot init: not PID 1; this program is the initramfs /init and runs only as the first process")
		os.Exit(2)
	}
	in := &Init{Out: os.Stdout}
	for {
		in.runSafely()
		// runSafely returns only after a panic; keep the shell alive.
		time.Sleep(time.Second)
	}
}

// runSafely runs the init and turns a panic into a message and the shell.
func (in *Init) runSafely() {
	defer func() {
		if r := recover(); r != nil {
			in.stage("BUG: %v\n%s", r, debug.Stack())
			in.stage("continuing to the provisioning shell")
			in.superviseShells()
		}
	}()
	in.Run()
}
