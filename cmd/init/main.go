//go:build linux

// Command init is ramboot's PID 1, run from the initramfs as /init. All of
// it is the library github.com/ramboot/ramboot/node/initd; this is its
// main.
package main

import (
	"fmt"
	"os"

	"github.com/ramboot/ramboot/node/initd"
)

func main() {
	if initd.IsSSHChild() {
		os.Exit(initd.SSHChild())
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "ramboot init: not PID 1; this program is the initramfs /init and runs only as the first process")
		os.Exit(2)
	}
	(&initd.Init{Out: os.Stdout}).Main()
}
