package serve

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ramboot/ramboot/e2e/cache"
	"github.com/ramboot/ramboot/e2e/lab"
)

// TestServeHTTP: range requests, the per-node iPXE script from
// nodes.yaml, a broken nodes.yaml rejected (with its line) while the old
// inventory stays in force, and a SIGHUP reload.
func TestServeHTTP(t *testing.T) {
	lab.Need(t, "curl", "curl")
	l := lab.New(t)
	src, _ := cache.Image(t, "rpi4")
	nodes := filepath.Join(l.Dir, "nodes.yaml")
	good := func(host string) string {
		return "defaults:\n" +
			"  option224: shell\n" +
			"nodes:\n" +
			"  - mac: dc:a6:32:01:36:c2\n" +
			"    hostname: " + host + "\n" +
			"    option224: \"nfs://{{.Server}}/srv/rack/{{.MACHyphen}}?vers=3\"\n"
	}
	lab.WriteFile(t, nodes, good("pi-a"))
	srv := l.Serve(t, src, "--dhcp", "off", "--nodes", nodes)
	c := l.Peer(t, "192.0.2.30")
	base := "http://" + lab.Addr + ":8080"
	curl := func(args ...string) string {
		t.Helper()
		out, err := c.Exec(t, 20*time.Second, "curl", append([]string{"-sS", "--max-time", "15"}, args...)...)
		if err != nil {
			t.Fatalf("curl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}

	// A range request.
	dest := filepath.Join(t.TempDir(), "range")
	if code := curl("-r", "0-99", "-o", dest, "-w", "%{http_code}", base+"/rootfs.cpio.gz"); code != "206" {
		t.Errorf("GET -r 0-99: status %s, want 206", code)
	}
	lab.SameBytes(t, "bytes 0-99 of rootfs.cpio.gz", lab.ReadFile(t, dest), lab.ReadFile(t, filepath.Join(src, "rootfs.cpio.gz"))[:100])
	img, _ := os.Stat(filepath.Join(src, "Image"))
	if h := curl("-I", base+"/Image"); !strings.Contains(h, "Content-Length: "+strconv.FormatInt(img.Size(), 10)) || !strings.Contains(h, "Accept-Ranges: bytes") {
		t.Errorf("HEAD /Image:\n%s", h)
	}

	// The per-node script.
	cmdline := strings.TrimSpace(string(lab.ReadFile(t, filepath.Join(src, "cmdline.txt"))))
	script := func(host string) string {
		return "#!ipxe\n# ramboot: node dc:a6:32:01:36:c2, board rpi4 (nodes.yaml line 4)\n" +
			"kernel " + base + "/Image " + cmdline + " ramboot.224=nfs://192.0.2.1/srv/rack/dc-a6-32-01-36-c2?vers=3 ramboot.hostname=" + host + " ramboot.report=" + base + "/report initrd=rootfs.cpio.gz\n" +
			"initrd " + base + "/rootfs.cpio.gz\nboot\n"
	}
	const scriptURL = "http://192.0.2.1:8080/boot/dc-a6-32-01-36-c2.ipxe"
	if got := curl(scriptURL); got != script("pi-a") {
		t.Errorf("%s:\n%s\nwant:\n%s", scriptURL, got, script("pi-a"))
	}
	// A node not in the inventory gets the defaults.
	if got := curl(base + "/boot/dc:a6:32:00:00:99.ipxe"); !strings.Contains(got, " ramboot.224=shell ramboot.report="+base+"/report initrd=rootfs.cpio.gz\ninitrd "+base+"/rootfs.cpio.gz\n") {
		t.Errorf("script for a node not in nodes.yaml:\n%s", got)
	}
	lab.WaitLog(t, srv, 0, 5*time.Second, "ipxe-script event", func(e lab.LogLine) bool {
		return e.Msg() == "http" && e.Str("event") == "ipxe-script" && e.Str("mac") == "dc:a6:32:01:36:c2"
	})

	// Broken files over the good one: rejected with the line, the old
	// inventory stays (the file is watched: no signal needed).
	mark := len(lab.Log(srv))
	for _, bad := range []struct{ text, line string }{
		{good("pi-a") + "  - mac: not-a-mac\n    hostname: pi-x\n", "line 7"},
		{"nodes:\n  - mac: dc:a6:32:01:36:c2\n    hostnme: pi-typo\n", "line 3"}, // a typo is an error
	} {
		lab.WriteFile(t, nodes, bad.text)
		e, i := lab.WaitLog(t, srv, mark, 10*time.Second, "inventory rejected", func(e lab.LogLine) bool {
			return strings.HasPrefix(e.Msg(), "inventory rejected") || e.Msg() == "inventory loaded"
		})
		mark = i + 1
		if e.Str("level") != "ERROR" || !strings.Contains(e.Str("err"), bad.line) || !strings.Contains(e.Str("err"), "nodes.yaml") {
			t.Errorf("serve's log for a broken nodes.yaml: %v; want an ERROR naming nodes.yaml and %s", e, bad.line)
		}
		if got := curl(scriptURL); got != script("pi-a") {
			t.Errorf("after a broken nodes.yaml the script is:\n%s\nwant the old inventory's:\n%s", got, script("pi-a"))
		}
	}

	// A good change that the watcher cannot see (same mtime as the file
	// it last read, swapped in by rename) is loaded on SIGHUP.
	st, err := os.Stat(nodes)
	if err != nil {
		t.Fatal(err)
	}
	tmp := nodes + ".new"
	lab.WriteFile(t, tmp, good("pi-b"))
	if err := os.Chtimes(tmp, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, nodes); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond) // longer than the watcher's period
	if got := curl(scriptURL); got != script("pi-a") {
		t.Fatalf("the watcher reloaded a file whose mtime did not change:\n%s", got)
	}
	if err := syscall.Kill(srv.Pid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	e, _ := lab.WaitLog(t, srv, mark, 10*time.Second, "inventory loaded after SIGHUP", func(e lab.LogLine) bool {
		return strings.HasPrefix(e.Msg(), "inventory")
	})
	if e.Msg() != "inventory loaded" || e.Str("nodes") != "1" {
		t.Errorf("after SIGHUP: %v", e)
	}
	if got := curl(scriptURL); got != script("pi-b") {
		t.Errorf("after SIGHUP the script is:\n%s\nwant:\n%s", got, script("pi-b"))
	}
	// The status board saw the script fetched, with the hostname.
	var found bool
	for _, n := range lab.Status(t, c) {
		if n.MAC == "dc:a6:32:01:36:c2" {
			found = true
			if n.Stage != "ipxe script" || n.Hostname != "pi-b" {
				t.Errorf("/status.json: %+v; want stage \"ipxe script\", hostname pi-b", n)
			}
		}
	}
	if !found {
		t.Errorf("/status.json has no dc:a6:32:01:36:c2")
	}
	if page := curl(base + "/status"); !strings.Contains(page, "dc:a6:32:01:36:c2") {
		t.Errorf("/status does not list the node:\n%s", page)
	}
}
