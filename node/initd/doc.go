//go:build linux

// Package initd is ramboot's PID 1, as a library: cmd/init is its main.
// It runs entirely in RAM from the initramfs: it mounts the basic file
// systems, loads the board's kernel modules in dependency order, brings up
// the network, reads option 224 (kernel command line first, then DHCP),
// runs the boot action it names, prints a banner and keeps a shell on the
// console. It never exits: every failure is printed and ends in the shell.
//
// Each stage prints one line with the time since boot, so boot time can be
// read off the serial console:
//
//	ramboot [   1.234] mounts: /proc /sys /dev /run /tmp
//
// Usage (the whole of cmd/init):
//
//	if initd.IsSSHChild() {
//		os.Exit(initd.SSHChild())
//	}
//	(&initd.Init{Out: os.Stdout}).Main() // never returns
package initd
