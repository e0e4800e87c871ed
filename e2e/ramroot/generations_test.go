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
// images/tiny.squashfs boots the generation the channel points at:
// generation A first; `ramboot image promote` B, and its next boot runs
// B; `ramboot image rollback`, and the boot after that runs A again, with
// nothing rebuilt. Each boot is identified by the digest the init checked
// and by the generation serve's status board says it sent. The roots are
// tiny (the lab's test init), so the boots are short.
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
	srv := l.ServeNode(t, dir, lab.GuestMAC, "node-g", "http://{{.Server}}:8080/images/tiny.squashfs", "--dhcp", "proxy")
	op := l.Peer(t, "192.0.2.3")
	boot := func(want images.Generation) time.Duration {
		t.Helper()
		t0 := time.Now()
		vm := l.Boot(t, dir, "")
		vm.Expect(`rootfs: sha256 `+want.SHA256+` matches`, 180*time.Second)
		vm.Expect(`NFSROOT-OK`, 60*time.Second)
		took := time.Since(t0)
		lab.WaitLog(t, srv, 0, 10*time.Second, "the download of "+want.File(), func(e lab.LogLine) bool {
			return e.Msg() == "http" && e.Str("path") == "/images/tiny.squashfs" && e.Str("status") == "200"
		})
		var seen bool
		for deadline := time.Now().Add(10 * time.Second); !seen && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			for _, n := range lab.Status(t, op) {
				for _, s := range n.Steps {
					if n.MAC == lab.GuestMAC && s.Stage == "image downloaded" && strings.HasSuffix(s.Detail, "; generation "+want.File()) {
						seen = true
					}
				}
			}
		}
		if !seen {
			t.Errorf("the status board does not say the node got %s", want.File())
		}
		vm.Stop()
		return took
	}
	t.Logf("boot of generation A (%s): %v", a.ID, boot(a).Round(time.Millisecond))
	image("promote", b.ID)
	t.Logf("boot of generation B (%s) after promote: %v", b.ID, boot(b).Round(time.Millisecond))
	t0 := time.Now()
	if out := image("rollback"); !strings.Contains(out, "tiny.squashfs -> "+a.File()) {
		t.Errorf("rollback: %s", out)
	}
	boot(a)
	t.Logf("from rollback to the node running generation A again: %v", time.Since(t0).Round(time.Millisecond))
}
