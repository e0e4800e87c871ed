package qemu

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/ramboot/ramboot/boards"
)

// TapNetdev is the -netdev of a guest on a lab's tap0 (e2e/lab).
const TapNetdev = "tap,id=n0,ifname=tap0,script=no,downscript=no"

// Options describe a guest as values; Command renders QEMU's command line.
// The machine and the console come from the board's profile
// (boards/<board>.yaml, `qemu:`), the rest of each machine's arguments
// from machineFor.
//
//	vm := qemu.Boot(t, qemu.Options{Board: "virt", Kernel: dir + "/Image",
//		Initrd: dir + "/rootfs.cpio.gz", Append: "ramboot.224=shell"})
type Options struct {
	Board   string // a board profile: its qemu.machine and qemu.console
	Machine string // a QEMU machine instead of the profile's (a PC's q35)

	Kernel, Initrd, DTB string // "" none (a PC boots from its firmware)
	Append              string // after console= and panic=
	Cmdline             string // the whole command line instead (another OS's)

	Memory string // -m; "" the machine's default
	Reboot bool   // let a reboot restart the guest (else -no-reboot: it ends QEMU)

	NetNS   string // run QEMU in this namespace (a lab's); "" here
	Netdev  string // -netdev n0 (TapNetdev, "user,id=n0"); "" no network
	MAC     string // the NIC's MAC
	NICOpts string // more NIC properties (",romfile=,bootindex=1")

	Extra []string // more arguments: drives, devices, firmware
}

// machine is how the tests start one QEMU machine.
type machine struct {
	bin   string   // qemu-system-...
	args  []string // every guest's, after -M
	mem   string   // default -m ("" QEMU's own)
	baud  string   // console=<tty>,<baud>; "" no baud
	panic string   // panic=: -1 powers off at once (virt), 1 reboots
	nic   string   // the NIC model
}

// machineFor is the arguments of QEMU machine name, as the tests have
// always started it.
func machineFor(name string) (machine, error) {
	switch name {
	case "virt":
		return machine{bin: "qemu-system-aarch64", args: []string{"-cpu", "cortex-a72", "-smp", "2"},
			mem: "1024", panic: "-1", nic: "virtio-net-pci"}, nil
	case "raspi4b":
		// QEMU emulates no GENET: no NIC.
		return machine{bin: "qemu-system-aarch64", baud: "115200", panic: "1"}, nil
	case "raspi3b":
		// The console is the second UART (ttyS1, the mini UART): the
		// first goes nowhere, the second to stdio, so no monitor there.
		// QEMU has neither of the Pi 3's USB Ethernet chips: its usb-net
		// (cdc_ether) stands in. 1 GiB exactly.
		return machine{bin: "qemu-system-aarch64", args: []string{"-monitor", "none", "-serial", "null", "-serial", "stdio"},
			mem: "1G", baud: "115200", panic: "1", nic: "usb-net"}, nil
	case "q35", "pc":
		return machine{bin: "qemu-system-x86_64", args: []string{"-smp", "2"}, mem: "1024", baud: "115200", panic: "1", nic: "virtio-net-pci"}, nil
	}
	return machine{}, fmt.Errorf("no QEMU arguments for machine %q (e2e/qemu/options.go)", name)
}

// Command is QEMU's command line for o: the program to run (ip, for a
// namespace) and its arguments. It skips t in -short runs.
func (o Options) Command(t testing.TB) (string, []string) {
	t.Helper()
	bin, args, err := o.args()
	if err != nil {
		t.Fatal(err)
	}
	if testing.Short() {
		t.Skip("boots QEMU: not in -short (make unit)")
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		t.Fatalf("%s not found: run `make test` (it installs it) or bash e2e/deps.sh", bin)
	}
	if o.NetNS != "" {
		return "ip", append([]string{"netns", "exec", o.NetNS, path}, args...)
	}
	return path, args
}

// args is o's QEMU program and arguments.
func (o Options) args() (string, []string, error) {
	b, err := boards.Lookup(o.Board)
	if err != nil {
		return "", nil, err
	}
	if b.QEMU.Machine == "" {
		return "", nil, fmt.Errorf("board %s: its profile has no qemu.machine", o.Board)
	}
	name := b.QEMU.Machine
	if o.Machine != "" {
		name = o.Machine
	}
	m, err := machineFor(name)
	if err != nil {
		return "", nil, err
	}
	args := []string{"-M", name}
	if mem := o.Memory; mem != "" || m.mem != "" {
		if mem == "" {
			mem = m.mem
		}
		args = append(args, "-m", mem)
	}
	args = append(args, m.args...)
	args = append(args, "-nographic")
	if !o.Reboot {
		args = append(args, "-no-reboot")
	}
	if o.Netdev != "" {
		if m.nic == "" {
			return "", nil, fmt.Errorf("machine %s has no network device for the tests", name)
		}
		args = append(args, "-netdev", o.Netdev, "-device", m.nic+",netdev=n0,mac="+o.MAC+o.NICOpts)
	}
	if o.Kernel != "" {
		args = append(args, "-kernel", o.Kernel)
		if o.DTB != "" {
			args = append(args, "-dtb", o.DTB)
		}
		if o.Initrd != "" {
			args = append(args, "-initrd", o.Initrd)
		}
		cmdline := o.Cmdline
		if cmdline == "" {
			console := "console=" + b.QEMU.Console
			if m.baud != "" {
				console += "," + m.baud
			}
			cmdline = console + " panic=" + m.panic + " " + o.Append
		}
		args = append(args, "-append", strings.TrimSpace(cmdline))
	}
	return m.bin, append(args, o.Extra...), nil
}

// Boot starts the guest o describes.
func Boot(t testing.TB, o Options) *VM {
	t.Helper()
	name, args := o.Command(t)
	return Start(t, name, args...)
}
