package netnstest

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// TestNamespace: New makes a namespace with lo up and no route out, Do
// opens sockets there (an address only that namespace has), Exec and
// Command run programs there, RunIn runs the test again inside it, and
// the namespace is gone after the test.
func TestNamespace(t *testing.T) {
	if ns, in := Inside(); in {
		MustBeInside(t)
		if got, err := Identify(os.Getpid()); err != nil || got != ns {
			t.Fatalf("Identify = %q, %v; want %s", got, err, ns)
		}
		c, err := net.ListenPacket("udp4", "10.99.1.1:0") // only ns has it
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		return
	}
	Skip(t)
	var ns string
	t.Run("inside", func(t *testing.T) {
		ns = New(t)
		Run(t, "ip", "-n", ns, "addr", "add", "10.99.1.1/24", "dev", "lo")
		if out, err := Exec(ns, 10*time.Second, "ip", "route", "show", "default"); err != nil || strings.TrimSpace(out) != "" {
			t.Errorf("default route in %s: %q, %v", ns, out, err)
		}
		if err := Do(ns, func() error {
			c, err := net.ListenPacket("udp4", "10.99.1.1:0")
			if err == nil {
				c.Close()
			}
			return err
		}); err != nil {
			t.Errorf("a socket on the namespace's address: %v", err)
		}
		if c, err := net.ListenPacket("udp4", "10.99.1.1:0"); err == nil {
			c.Close()
			t.Errorf("the namespace's address is on this host's network too")
		}
		cmd := Command(ns, "sleep", "5")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// ip netns exec switches, then execs sleep: until it has, the
		// process is still in this host's namespace. Wait for the switch
		// (bounded); one that never comes fails.
		var got string
		var err error
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if got, err = Identify(cmd.Process.Pid); (err == nil && got == ns) || time.Now().After(deadline) {
				break
			}
		}
		cmd.Process.Kill()
		cmd.Wait()
		if err != nil || got != ns {
			t.Errorf("Command's process is in %q (%v), want %s", got, err, ns)
		}
	})
	if out, err := Exec(ns, 5*time.Second, "true"); err == nil {
		t.Errorf("namespace %s still there after its test: %s", ns, out)
	}
	ns2 := New(t)
	Run(t, "ip", "-n", ns2, "addr", "add", "10.99.1.1/24", "dev", "lo")
	RunIn(t, ns2, 60*time.Second)
}
