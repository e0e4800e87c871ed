package qemu

import (
	"strings"
	"time"
)

// ShellRoundTrip types a command whose answer the guest must compute in
// the provisioning shell on ttyAMA0.
func (vm *VM) ShellRoundTrip() { vm.t.Helper(); vm.ShellRoundTripOn("ttyAMA0") }

// ShellRoundTripOn is ShellRoundTrip for a shell on console tty.
func (vm *VM) ShellRoundTripOn(tty string) {
	t := vm.t
	t.Helper()
	// The shell may have started before the last line the test waited
	// for: look for it anywhere in the console output.
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(vm.Output(), "shell: started on "+tty) {
		if time.Now().After(deadline) {
			t.Fatalf("no shell on %s within 60s", tty)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	vm.Send("echo answer-$((6*7)); cat /proc/sys/kernel/osrelease\n")
	vm.Expect(`answer-42`, 20*time.Second)
}

// NoPanic fails the test if the console shows a kernel or Go panic.
func (vm *VM) NoPanic() {
	t := vm.t
	t.Helper()
	if out := vm.Output(); strings.Contains(out, "Kernel panic") || strings.Contains(out, "\npanic: ") || strings.Contains(out, "BUG: ") {
		t.Errorf("the console shows a panic")
	}
}
