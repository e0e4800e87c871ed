package ramroot

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ramboot/ramboot/e2e/cache"
	"github.com/ramboot/ramboot/e2e/lab"
	"github.com/ramboot/ramboot/e2e/qemu"
)

// The whole OS in RAM: `ramboot rootfs` builds a Debian root image (and
// one from a user's tarball), `ramboot serve` serves it, option 224 names
// it, the init downloads it into RAM, checks it and switch_roots into its
// systemd; SSH logs in to the real OS, which keeps running once the
// server is gone. And every way a root image can be wrong ends in the
// provisioning shell with its reason, nothing left mounted.

// realOS checks, over SSH, that the node runs the image's systemd to the
// multi-user target, from RAM, with the host name it was given; then that
// it keeps running and writing with the server gone. It returns the
// node's memory in use (MemTotal - MemAvailable) in bytes.
func realOS(t *testing.T, l *lab.Lab, vm *qemu.VM, srv *lab.Proc, addr, hostname, marker string) int64 {
	t.Helper()
	out := l.SSHUntil(t, addr, "systemctl is-system-running --wait; cat /proc/1/comm; hostname; findmnt -no FSTYPE,OPTIONS /; cat /etc/ramboot/image.json; cat "+marker, 300*time.Second)
	t.Logf("node:\n%s", out)
	for _, want := range []string{`(?m)^(running|degraded)$`, `(?m)^systemd$`, `(?m)^` + regexp.QuoteMeta(hostname) + `$`,
		`overlay .*lowerdir=/run/ramboot/lower`, `"kernel": "6\.`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("the node's answer has no %s", want)
		}
	}
	if marker != "/dev/null" && !strings.Contains(out, "user-root-marker") {
		t.Errorf("the node does not run the user's root: no marker from %s", marker)
	}
	if strings.Contains(out, "degraded") {
		failed, _ := l.SSH(t, addr, "systemctl --failed --no-legend")
		t.Logf("degraded: failed units:\n%s", failed)
	}
	// A module the initramfs does not have, from the image's complete tree.
	if out, err := l.SSH(t, addr, "modprobe dummy && grep -c ^dummy /proc/modules"); err != nil || !strings.Contains(out, "1") {
		t.Errorf("modprobe of a module only the image has: %v\n%s", err, out)
	}
	mem, err := l.SSH(t, addr, "awk '/^MemTotal/{t=$2} /^MemAvailable/{a=$2} END{print (t-a)*1024}' /proc/meminfo")
	used, _ := strconv.ParseInt(strings.TrimSpace(mem), 10, 64)
	if err != nil || used <= 0 {
		t.Errorf("memory in use: %v %q", err, mem)
	}

	// The server goes; the node goes on, reading and writing.
	srv.Signal(t, syscall.SIGTERM)
	out, err = l.SSH(t, addr, "echo after-$((6*7)) > /root/probe && cat /root/probe && ls /usr/bin | wc -l && systemctl is-system-running")
	if err != nil || !strings.Contains(out, "after-42") {
		t.Fatalf("with the server stopped, the node: %v\n%s", err, out)
	}
	vm.NoPanic()
	return used
}

// TestRamRootVirt: the default Debian image on the arm64 virt machine,
// from `ramboot serve` in proxy mode next to a router's DHCP.
func TestRamRootVirt(t *testing.T) {
	lab.Skip(t)
	src, _ := cache.Image(t, "virt")
	r := cache.RootImage(t, "virt", "", "debian")
	t.Logf("image %s: %d bytes, sha256 %s", r.Image, r.Size, r.SHA256)
	l := lab.New(t)
	router := l.Peer(t, "192.0.2.2")
	l.DnsmasqOn(t, router, "--dhcp-range=192.0.2.100,192.0.2.150,12h", "--dhcp-host=52:54:00:12:34:56,192.0.2.120", "--no-ping")
	nodes := filepath.Join(l.Dir, "nodes.yaml")
	lab.WriteFile(t, nodes, "nodes:\n  - mac: 52:54:00:12:34:56\n    hostname: node-7\n    option224: \"http://{{.Server}}:8080/images/debian.squashfs\"\n")
	srv := l.Serve(t, src, "--dhcp", "proxy", "--nodes", nodes)
	t0 := time.Now()
	vm := l.Boot(t, src, "")
	vm.Expect(`224: chain http://192\.0\.2\.1:8080/images/debian\.squashfs`, 120*time.Second)
	vm.Expect(`rootfs: .*squashfs \(zstd\), .* digest from http://192\.0\.2\.1:8080/images/debian\.squashfs\.sha256`, 30*time.Second)
	vm.Expect(`rootfs: sha256 `+r.SHA256+` matches`, 300*time.Second)
	vm.Expect(`switch_root: /newroot, exec /sbin/init`, 60*time.Second)
	t.Logf("option 224 to switch_root: %v", time.Since(t0).Round(time.Millisecond))
	vm.Expect(`(?i)systemd .* running in system mode`, 60*time.Second)
	lab.WaitLog(t, srv, 0, 10*time.Second, "image downloaded", func(e lab.LogLine) bool {
		return e.Msg() == "http" && e.Str("path") == "/images/debian.squashfs"
	})
	// The status page has the download on the node's own record.
	body, err := lab.Get(l.NS, "http://192.0.2.1:8080/status.json")
	var st struct {
		Nodes []struct {
			MAC   string
			Steps []struct{ Stage, Detail string }
		}
	}
	if err != nil || json.Unmarshal([]byte(body), &st) != nil {
		t.Fatalf("status.json: %v\n%s", err, body)
	}
	downloaded := false
	for _, n := range st.Nodes {
		for _, s := range n.Steps {
			if n.MAC == "52:54:00:12:34:56" && s.Stage == "image downloaded" && strings.Contains(s.Detail, "images/debian.squashfs: "+strconv.FormatInt(r.Size, 10)+" bytes") {
				downloaded = true
			}
		}
	}
	if !downloaded {
		t.Errorf("the status page has no finished image download on the node 52:54:00:12:34:56:\n%s", body)
	}
	// The init's own reports: switch_root was flushed before the point
	// of no return.
	l.NodeReports(t, "http://192.0.2.1:8080", "52:54:00:12:34:56", 10*time.Second, "network-up", "action", "downloaded", "switch_root")
	l.MetricsHave(t, "http://192.0.2.1:8080",
		`ramboot_node_stage\{mac="52:54:00:12:34:56",node="node-7",source="node",stage="switch_root"\} 1`,
		`ramboot_reports_total\{stage="switch_root"\} [1-9]`)
	used := realOS(t, l, vm, srv, "192.0.2.120", "node-7", "/dev/null")
	t.Logf("node memory in use after boot: %.1f MB (image %.1f MB)", float64(used)/1e6, float64(r.Size)/1e6)
}

// TestRamRootUserTarball: a user's root from a tarball as `docker export`
// writes one (no leading ./, gzip'd), with a marker of its own, boots the
// same way, fetched over TFTP.
func TestRamRootUserTarball(t *testing.T) {
	lab.Skip(t)
	src, _ := cache.Image(t, "virt")
	deb := cache.RootImage(t, "virt", "", "debian")
	// The user's root: Debian's, with a file of the user's own.
	dir := filepath.Join(t.TempDir(), "root")
	os.MkdirAll(dir, 0o755)
	lab.Run(t, "tar", "--numeric-owner", "-xpf", deb.Tarball, "-C", dir)
	if err := os.WriteFile(filepath.Join(dir, "etc", "user-root-marker"), []byte("user-root-marker\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	args := []string{"--numeric-owner", "-czf", filepath.Join(t.TempDir(), "myroot.tar.gz"), "-C", dir}
	for _, e := range ents {
		args = append(args, e.Name())
	}
	lab.Run(t, "tar", args...)
	r := cache.RootImage(t, "virt", args[2], "myroot")
	if filepath.Base(r.Image) != "myroot.squashfs" {
		t.Errorf("image name %s, want myroot.squashfs", r.Image)
	}
	l := lab.New(t)
	l.Dnsmasq(t, "--dhcp-range=192.0.2.100,192.0.2.150,12h", "--dhcp-host=52:54:00:12:34:56,192.0.2.121,user-1")
	srv := l.Serve(t, src, "--dhcp", "off")
	// Over TFTP this time (serve's, windowsize 64), with the digest and
	// an overlay size in the URL's fragment.
	vm := l.Boot(t, src, "ramboot.224=tftp://192.0.2.1/images/myroot.squashfs#sha256="+r.SHA256+"&overlay=256M")
	vm.Expect(`rootfs: tftp://192\.0\.2\.1/images/myroot\.squashfs: squashfs \(zstd\), [\d.]+ MB; .*digest from the URL's #sha256=`, 120*time.Second)
	vm.Expect(`rootfs: sha256 `+r.SHA256+` matches`, 300*time.Second)
	vm.Expect(`RAM overlay \(256M\)`, 30*time.Second)
	realOS(t, l, vm, srv, "192.0.2.121", "user-1", "/etc/user-root-marker")
}

// TestRamRootPC: the amd64 Debian image on a BIOS PC: its PXE ROM loads
// iPXE, iPXE serve's script, the script the kernel with option 224 on its
// command line, and the init the image.
func TestRamRootPC(t *testing.T) {
	lab.Skip(t)
	dir, _ := cache.Image(t, "pc")
	r := cache.RootImage(t, "pc", "", "debian")
	l := lab.New(t)
	router := l.Peer(t, "192.0.2.2")
	const mac = "52:54:00:12:34:60"
	l.DnsmasqOn(t, router, "--dhcp-range=192.0.2.100,192.0.2.150,12h", "--dhcp-host="+mac+",192.0.2.122", "--no-ping")
	srv := l.ServeNode(t, dir, mac, "pc-1", "http://{{.Server}}:8080/images/debian.squashfs", "--dhcp", "proxy")
	t0 := time.Now()
	vm := l.BootPC(t, mac, false)
	vm.Expect(`224: chain http://192\.0\.2\.1:8080/images/debian\.squashfs \(from kernel command line`, 240*time.Second)
	vm.Expect(`rootfs: sha256 `+r.SHA256+` matches`, 300*time.Second)
	vm.Expect(`switch_root: /newroot, exec /sbin/init`, 60*time.Second)
	t.Logf("PC: power-on to switch_root %v", time.Since(t0).Round(time.Millisecond))
	realOS(t, l, vm, srv, "192.0.2.122", "pc-1", "/dev/null")
}

// squashDir packs dir into a squashfs with the real mksquashfs.
func squashDir(t testing.TB, dir string) []byte {
	t.Helper()
	lab.Need(t, "mksquashfs", "squashfs-tools")
	out := filepath.Join(t.TempDir(), "img.squashfs")
	lab.Run(t, "mksquashfs", dir, out, "-noappend", "-quiet", "-no-progress", "-comp", "zstd")
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestRamRootBadInputs: every way a root image can fail before the point
// of no return ends in the provisioning shell with the reason on the
// console, and nothing of it left mounted.
func TestRamRootBadInputs(t *testing.T) {
	lab.Skip(t)
	src, _ := cache.Image(t, "virt")

	// A valid image with padding (so that half of it is more than the
	// init's first read), one without an init, one with an x86 init.
	mk := func(files map[string][]byte) []byte {
		d := t.TempDir()
		for name, data := range files {
			p := filepath.Join(d, name)
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, data, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		return squashDir(t, d)
	}
	noise := make([]byte, 4<<20)
	for i := range noise {
		noise[i] = byte(i*7919 ^ i>>9)
	}
	x86init, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	good := mk(map[string][]byte{"etc/os-release": []byte("ID=test\n"), "var/noise": noise})
	noInit := good
	x86 := mk(map[string][]byte{"etc/os-release": []byte("ID=test\n"), "sbin/init": x86init})
	mux := http.NewServeMux()
	serve := func(name string, body []byte) {
		mux.HandleFunc("/"+name, func(w http.ResponseWriter, r *http.Request) {
			http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(body))
		})
	}
	serve("good.squashfs", good)
	serve("x86.squashfs", x86)
	serve("trunc.squashfs", good[:len(good)/2])
	serve("notimage.bin", noise[:1<<20])
	mux.HandleFunc("/gone.squashfs", func(w http.ResponseWriter, r *http.Request) {
		// Says the whole length, sends half, and goes.
		w.Header().Set("Content-Length", strconv.Itoa(len(good)))
		w.WriteHeader(http.StatusOK)
		w.Write(good[:len(good)/2])
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
			c.Close()
		}
	})
	mux.HandleFunc("/hang.ipxe", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("#!ipxe\necho hanging\nsleep 4294967295\n"))
	})
	mux.HandleFunc("/big.squashfs", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(8<<30))
		w.WriteHeader(http.StatusOK)
		w.Write(good[:64<<10])
		time.Sleep(5 * time.Second)
	})
	l := lab.New(t)
	base := l.HTTP(t, mux)
	l.Dnsmasq(t, "--dhcp-range=192.0.2.100,192.0.2.150,12h")
	zero := strings.Repeat("0", 64)

	for _, tc := range []struct{ name, value, want string }{
		{"404", base + "/missing.squashfs#sha256=" + zero, `GET http://192\.0\.2\.1:8080/missing\.squashfs: 404 Not Found`},
		{"refused", "http://192.0.2.1:8081/x.squashfs#sha256=" + zero, `connection refused: is the server running`},
		{"server gone", base + "/gone.squashfs#sha256=" + hexSum(good), `download broke off at [\d.]+ MB of [\d.]+ MB \(server gone or network down\?\)`},
		{"truncated", base + "/trunc.squashfs#sha256=" + hexSum(good), `truncated on the server: the file is \d+ bytes, its squashfs superblock says \d+`},
		{"digest mismatch", base + "/good.squashfs#sha256=" + zero, `SHA-256 mismatch: got ` + hexSum(good) + `, the URL's #sha256= says 0{64}`},
		{"no digest", base + "/good.squashfs", `no digest to check http://192\.0\.2\.1:8080/good\.squashfs against: .*404 Not Found; add #sha256=HEX`},
		{"not an image", base + "/notimage.bin#sha256=" + zero, `is not a root image \(no squashfs magic`},
		{"too big", base + "/big.squashfs#sha256=none", `is too big for this node's RAM: 8589\.9 MB, but only [\d.]+ MB of [\d.]+ MB is available`},
		{"no init", base + "/good.squashfs#sha256=" + hexSum(noInit), `the new root cannot be started: no /sbin/init in the new root`},
		{"wrong architecture", base + "/x86.squashfs#sha256=none", `the new root cannot be started: /sbin/init is an amd64 program; this machine is arm64`},
		// Not an image: a script that would sleep for 136 years, under a
		// 20 s deadline.
		{"hung boot script", base + "/hang.ipxe ramboot.deadline=20s", `^224: the boot action did not finish within 20s \(ramboot\.deadline=\): provisioning shell`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vm := l.Boot(t, src, "ramboot.224="+tc.value)
			vm.Expect(`224: chain `, 120*time.Second)
			want := `224: chain .* failed: .*` + tc.want
			if strings.HasPrefix(tc.want, "^") {
				want = tc.want[1:]
			}
			vm.Expect(want, 90*time.Second)
			vm.ShellRoundTrip()
			vm.Send("cat /proc/mounts; echo END-$((40+2))-MOUNTS\n")
			m := vm.Expect(`(?s)cat /proc/mounts(.*?)END-42-MOUNTS`, 20*time.Second)
			for _, left := range []string{"/run/ramboot", "/newroot", "/dev/loop"} {
				if strings.Contains(m[1], left) {
					t.Errorf("%s left mounted after the failure:\n%s", left, m[1])
				}
			}
			if strings.Contains(vm.Output(), "switch_root: /newroot") {
				t.Errorf("a bad image got past the checks to switch_root")
			}
			vm.NoPanic()
		})
	}
}
