package ramroot

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ramboot/ramboot/e2e/cache"
	"github.com/ramboot/ramboot/e2e/lab"
	"github.com/ramboot/ramboot/tree/images"
)

// TestRamRootGenerations: a node whose option 224 names the channel
// images/tiny.squashfs boots the generation the channel points at, and its
// power is a PoE switch port (net-snmp's snmpd playing the switch: the
// port's power starts and stops the QEMU guest). `ramboot node power on`,
// and it boots generation A; `ramboot image promote` B and `ramboot node
// power cycle`, and it runs B; `ramboot image rollback` and a cycle, and it
// runs A again, with nothing rebuilt. Each boot is identified by the digest
// the init checked and by the generation serve's status board says it
// sent. The roots are tiny (the lab's test init), so the boots are short.
func TestRamRootGenerations(t *testing.T) {
	lab.Skip(t)
	src, _ := cache.Image(t, "virt")
	dir := lab.CopyTree(t, src) // the kernel and initramfs; images/ of its own
	imgs := filepath.Join(dir, "images")
	if err := os.MkdirAll(imgs, 0o755); err != nil {
		t.Fatal(err)
	}
	st := images.Store{Dir: imgs}
	var gens []images.Generation
	for _, name := range []string{"gen-a", "gen-b"} {
		root := cache.NFSRoot(t, "arm64")
		lab.WriteFile(t, filepath.Join(root, "etc", "generation"), name+"\n")
		data := squashDir(t, root)
		tmp := filepath.Join(imgs, "tiny.squashfs.tmp")
		if err := os.WriteFile(tmp, data, 0o644); err != nil {
			t.Fatal(err)
		}
		g, err := st.Add("tiny", tmp, hexSum(data))
		if err != nil {
			t.Fatal(err)
		}
		gens = append(gens, g)
	}
	a, b := gens[0], gens[1]
	image := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(cache.Ramboot(t), append([]string{"image"}, append(args, "--out", dir, "--name", "tiny")...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ramboot image %v: %v\n%s", args, err, out)
		}
		t.Logf("ramboot image %s: %s", strings.Join(args, " "), strings.TrimSpace(string(out)))
		return string(out)
	}
	image("promote", a.ID)

	l := lab.New(t)
	router := l.Peer(t, "192.0.2.2")
	l.DnsmasqOn(t, router, "--dhcp-range=192.0.2.100,192.0.2.150,12h", "--no-ping")
	console := filepath.Join(t.TempDir(), "console.log")
	sw := l.PoESwitch(t, map[string]string{"1.1": l.GuestScript(t, t.TempDir(), l.Guest(dir, ""), console)})
	nodes := filepath.Join(l.Dir, "nodes.yaml")
	lab.WriteFile(t, nodes, "nodes:\n  - mac: "+lab.GuestMAC+"\n    hostname: node-g\n    option224: \"http://{{.Server}}:8080/images/tiny.squashfs\"\n"+
		"    power: {driver: poe, address: "+lab.Addr+", port: \"1.1\", community_file: "+sw.CommunityFile+", cycle_wait: 1}\n")
	l.Serve(t, dir, "--dhcp", "proxy", "--nodes", nodes)
	op := l.Peer(t, "192.0.2.3")
	power := func(action string) {
		t.Helper()
		out, err := exec.Command("ip", "netns", "exec", op.NS, cache.Ramboot(t), "node", "power", action, "node-g",
			"--nodes", nodes, "--lease-file", filepath.Join(l.Dir, "leases.json")).CombinedOutput()
		t.Logf("node power %s: %s", action, strings.TrimSpace(string(out)))
		if err != nil || !strings.Contains(string(out), "node-g: power "+action+" via poe "+lab.Addr+":161 port 1.1: on (") {
			t.Fatalf("node power %s: %v\n%s", action, err, out)
		}
	}
	boots := 0
	boot := func(action string, want images.Generation) time.Duration {
		t.Helper()
		t0 := time.Now()
		power(action)
		boots++
		lab.WaitFile(t, console, `rootfs: sha256 `+want.SHA256+` matches`, countOf(gens, want, boots), 180*time.Second)
		lab.WaitFile(t, console, `NFSROOT-OK`, boots, 60*time.Second)
		took := time.Since(t0)
		var seen bool
		for deadline := time.Now().Add(10 * time.Second); !seen && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			for _, n := range lab.Status(t, op) {
				if n.MAC == lab.GuestMAC && n.Generation == want.File() && n.Stage == "image downloaded" {
					seen = true
				}
			}
		}
		if !seen {
			t.Errorf("the status board does not say the node runs %s", want.File())
		}
		return took
	}
	t.Logf("power on to generation A (%s): %v", a.ID, boot("on", a).Round(time.Millisecond))
	image("promote", b.ID)
	t.Logf("promote B, power cycle to generation B (%s): %v", b.ID, boot("cycle", b).Round(time.Millisecond))
	t0 := time.Now()
	if out := image("rollback"); !strings.Contains(out, "tiny.squashfs -> "+a.File()) {
		t.Errorf("rollback: %s", out)
	}
	boot("cycle", a)
	t.Logf("from rollback (and a PoE cycle) to the node running generation A again: %v", time.Since(t0).Round(time.Millisecond))
	if got, _ := os.ReadFile(sw.Sets); string(got) != "1.1 1\n1.1 2\n1.1 1\n1.1 2\n1.1 1\n" {
		t.Errorf("the switch's port 1.1 was set:\n%s\nwant on, then off and on twice", got)
	}
}

// countOf is how many of the first n boots ran want, in this test's order
// (A, B, A).
func countOf(gens []images.Generation, want images.Generation, n int) int {
	order := []images.Generation{gens[0], gens[1], gens[0]}
	c := 0
	for _, g := range order[:n] {
		if g.ID == want.ID {
			c++
		}
	}
	return c
}
