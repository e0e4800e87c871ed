package qemu

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestVMRestartOnce: a "QEMU" (a shell script) that dies in its firmware
// the first time is started once more and its console read afresh; one
// that dies after its kernel ran an init is not.
func TestVMRestartOnce(t *testing.T) {
	flag := filepath.Join(t.TempDir(), "booted-once")
	vm := Start(t, "sh", "-c", `if [ -e "$0" ]; then echo "Run /init as init process"; echo "ramboot [ 1.0] up"; exec sleep 30; else touch "$0"; echo "SeaBIOS"; exit 3; fi`, flag)
	vm.Expect(`ramboot \[ 1\.0\] up`, 20*time.Second)
	if !vm.restarted {
		t.Error("the guest came up without a restart: the script's first run should have exited")
	}
	if out := vm.Output(); strings.Contains(out, "SeaBIOS") {
		t.Errorf("the console still holds the first attempt's output:\n%s", out)
	}

	died := Start(t, "sh", "-c", `echo "Run /init as init process"; exit 3`)
	<-died.done
	if died.restartOnce() {
		t.Error("a guest whose kernel ran an init was started again")
	}
}
