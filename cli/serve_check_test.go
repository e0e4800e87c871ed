package cli

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeTree writes a small tree as make image lays it out: the files and a
// manifest.json listing them with their sizes.
func fakeTree(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "virt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"Image": "kernel", "rootfs.cpio.gz": "initramfs", "cmdline.txt": "console=ttyAMA0\n"}
	type fi struct {
		Name string `json:"name"`
		Size int    `json:"size"`
	}
	var list []fi
	for _, n := range []string{"Image", "cmdline.txt", "rootfs.cpio.gz"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(files[n]), 0o644); err != nil {
			t.Fatal(err)
		}
		list = append(list, fi{n, len(files[n])})
	}
	m, _ := json.Marshal(map[string]any{"board": "virt", "arch": "arm64", "kernel_file": "Image", "files": list})
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), m, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// loopback is the test's loopback interface and its address: --check runs
// against a real interface without serving on it.
func loopback(t *testing.T) string {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback == 0 {
			continue
		}
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(net.IPv4(127, 0, 0, 1)) {
				return i.Name
			}
		}
	}
	t.Skip("no loopback interface with 127.0.0.1 in this network namespace")
	return ""
}

// sockets counts this process's open sockets.
func sockets(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

func TestServeCheckOK(t *testing.T) {
	lo := loopback(t)
	tree := fakeTree(t)
	nodes := writeFile(t, "nodes.yaml", `defaults:
  option224: shell
nodes:
  - mac: 52:54:00:00:00:01
    hostname: n1
    address: 127.0.0.10
  - mac: 52:54:00:00:00:02
    hostname: n2
    address: 127.0.0.150
  - serial: 9ffefdef
    hostname: pi1
`)
	// The listen addresses are in use by this test: a --check that bound
	// them would fail.
	tl, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	hl, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hl.Close()
	cfg := writeFile(t, "serve.yaml", fmt.Sprintf("root: %s\ninterface: %s\nnodes: %s\ntftp: %s\nhttp: %s\ndhcp: full\nrange: 127.0.0.100-127.0.0.200\nlease-file: %s\n",
		tree, lo, nodes, tl.LocalAddr(), hl.Addr(), filepath.Join(t.TempDir(), "leases.json")))
	before := sockets(t)
	code, out, stderr := runCLI(t, "serve", "--config", cfg, "--check")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
	}
	for _, w := range []string{"config: " + cfg, "tree: " + tree + ": board virt (arm64, kernel Image), 3 files",
		"interface: " + lo + ", 127.0.0.1/8", "dhcp: full on " + lo, "range 127.0.0.100-127.0.0.200 (101 addresses)",
		"inventory: " + nodes + ", 3 nodes, option 224 parsed as the init parses it for 4, defaults with option 224, 2 fixed addresses (1 inside the range, kept out of the dynamic pool; 1 outside it)",
		"tftp: " + tl.LocalAddr().String(), "http: " + hl.Addr().String(), "ok: "} {
		if !strings.Contains(out, w) {
			t.Errorf("summary lacks %q:\n%s", w, out)
		}
	}
	if after := sockets(t); after != before {
		t.Errorf("--check left %d sockets open (before %d)", after, before)
	}
	// Proxy mode with the same inventory: the addresses are Kea's to give.
	code, out, _ = runCLI(t, "serve", "--check", "--root", tree, "--interface", lo, "--nodes", nodes, "--tftp", tl.LocalAddr().String(), "--http", hl.Addr().String())
	if code != 0 || !strings.Contains(out, "dhcp: proxy on "+lo+", ports 67 and 4011") || !strings.Contains(out, "warning: "+nodes+": 2 nodes with a fixed address, which only --dhcp full hands out") {
		t.Errorf("proxy: exit %d\n%s", code, out)
	}
}

func TestServeCheckProblems(t *testing.T) {
	lo := loopback(t)
	tree := fakeTree(t)
	// A listed file of the wrong size, one missing.
	if err := os.WriteFile(filepath.Join(tree, "cmdline.txt"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(tree, "rootfs.cpio.gz")); err != nil {
		t.Fatal(err)
	}
	nodes := writeFile(t, "nodes.yaml", `nodes:
  - mac: 52:54:00:00:00:01
    hostname: n1
    address: 192.0.2.10
  - mac: 52:54:00:00:00:01
    hostname: n1
    address: 127.0.0.1
  - mac: 52:54:00:00:00:03
    hostname: n3
    address: 127.255.255.255
`)
	ok := writeFile(t, "nodes.yaml", "nodes:\n  - mac: 52:54:00:00:00:01\n    address: 192.0.2.10\n  - mac: 52:54:00:00:00:02\n    address: 127.0.0.1\n  - mac: 52:54:00:00:00:03\n    address: 127.255.255.255\n")
	// A typo in a scheme, a local: target that is no /dev path: values the
	// inventory takes as text, the init refuses.
	bad224 := writeFile(t, "nodes.yaml", "defaults:\n  option224: \"local:sda1\"\nnodes:\n  - mac: 52:54:00:00:00:01\n    hostname: n1\n    option224: \"nsf://192.0.2.1/srv/root\"\n  - mac: 52:54:00:00:00:02\n    hostname: n2\n    option224: \"http://192.0.2.1:8080/boot/n2.ipxe\"\n")
	cfg := writeFile(t, "serve.yaml", "interfce: "+lo+"\nhttp-max-conns: many\n")
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"config and settings", []string{"--config", cfg, "--dhcp", "fast"}, []string{
			`unknown key "interfce": did you mean interface?`, "http-max-conns: want an integer",
			"--root: name the built tree", "--interface: name the one interface", `--dhcp "fast": use proxy, full or off`}},
		{"tree", []string{"--root", tree, "--interface", lo, "--dhcp", "off", "--tftp", "127.0.0.1:0", "--http", "127.0.0.1:0"}, []string{
			"cmdline.txt has 7 bytes, its manifest says 16", "rootfs.cpio.gz is listed in manifest.json but missing", "board virt has no rootfs.cpio.gz"}},
		{"not a tree", []string{"--root", t.TempDir(), "--interface", lo}, []string{"no manifest.json: not a built tree"}},
		{"no root", []string{"--root", filepath.Join(tree, "nope"), "--interface", lo}, []string{"nope: not a directory"}},
		{"interface", []string{"--root", tree, "--interface", "rbnosuch0"}, []string{"--interface rbnosuch0", "ip link"}},
		{"inventory duplicates", []string{"--root", tree, "--interface", lo, "--nodes", nodes}, []string{
			"mac 52:54:00:00:00:01 is already on line 2", "line 5: hostname n1 is already on line 2"}},
		{"fixed addresses", []string{"--root", tree, "--interface", lo, "--nodes", ok, "--dhcp", "full", "--range", "127.0.0.100-127.0.0.200", "--lease-file", filepath.Join(t.TempDir(), "l.json"), "--tftp", "127.0.0.1:0", "--http", "127.0.0.1:0"}, []string{
			"address 192.0.2.10 is outside " + lo + "'s network 127.0.0.0/8", "address 127.0.0.1 is the server's own", "address 127.255.255.255 is 127.0.0.0/8's network or broadcast address"}},
		{"range", []string{"--root", tree, "--interface", lo, "--dhcp", "full", "--range", "127.0.0.1-127.0.0.9", "--lease-file", "/nonexistent-dir/leases.json"}, []string{
			"holds the server's own address 127.0.0.1", "directory /nonexistent-dir does not exist"}},
		{"range outside", []string{"--root", tree, "--interface", lo, "--dhcp", "full", "--range", "192.0.2.9-192.0.2.1"}, []string{"the first not above the second"}},
		{"range in proxy", []string{"--root", tree, "--interface", lo, "--range", "127.0.0.2-127.0.0.9"}, []string{"--range is for --dhcp full"}},
		{"listen", []string{"--root", tree, "--interface", lo, "--tftp", "192.0.2.1:69", "--http", "localhost:80"}, []string{
			"--tftp 192.0.2.1:69: not an address of --interface " + lo, `--http "localhost:80": give an IP address`}},
		{"log format", []string{"--root", tree, "--interface", lo, "--log-format", "xml"}, []string{`--log-format "xml"`}},
		{"option 224", []string{"--root", tree, "--interface", lo, "--nodes", bad224}, []string{
			`line 4 (n1): its option 224 "nsf://192.0.2.1/srv/root" would be refused by the node's init`,
			`defaults: its option 224 "local:sda1" would be refused by the node's init`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := runCLI(t, append([]string{"serve", "--check"}, tc.args...)...)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if !strings.Contains(out, "problem(s):") || !strings.Contains(stderr, "serve --check found problems") {
				t.Errorf("no problem list:\nstdout:\n%s\nstderr:\n%s", out, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestServeConfigWithoutCheck: a bad config file stops serve before
// anything listens, with every problem listed and usage's exit status.
func TestServeConfigWithoutCheck(t *testing.T) {
	cfg := writeFile(t, "serve.yaml", "root: /srv\nlease_time: 1h\n")
	code, _, stderr := runCLI(t, "serve", "--config", cfg)
	if code != 2 || !strings.Contains(stderr, "serve.yaml:2: unknown key \"lease_time\": did you mean lease-time?") {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	code, out, _ := runCLI(t, "help", "serve")
	if code != 0 || !strings.Contains(out, "--config") || !strings.Contains(out, "--check") || !strings.Contains(out, "interface: eth1") {
		t.Fatalf("help serve: exit %d\n%s", code, out)
	}
}

// TestServeCheckStateDirectory: under systemd's StateDirectory= the lease
// file defaults to it (the tree's parent is read-only in the unit's
// sandbox); --lease-file still wins.
func TestServeCheckStateDirectory(t *testing.T) {
	lo := loopback(t)
	tree := fakeTree(t)
	state := t.TempDir()
	t.Setenv("STATE_DIRECTORY", state+":/elsewhere")
	args := []string{"serve", "--check", "--root", tree, "--interface", lo, "--dhcp", "full", "--range", "127.0.0.100-127.0.0.101", "--tftp", "127.0.0.1:0", "--http", "127.0.0.1:0"}
	code, out, _ := runCLI(t, args...)
	if code != 0 || !strings.Contains(out, "leases in "+filepath.Join(state, "leases.json")) {
		t.Fatalf("exit %d\n%s", code, out)
	}
	other := filepath.Join(t.TempDir(), "l.json")
	code, out, _ = runCLI(t, append(args, "--lease-file", other)...)
	if code != 0 || !strings.Contains(out, "leases in "+other) {
		t.Fatalf("exit %d\n%s", code, out)
	}
}

// TestServeCheckMixedTree: a mixed tree (make image BOARD=rpi4,pc) has a
// root manifest naming its boards and one manifest per board directory;
// --check reads them all.
func TestServeCheckMixedTree(t *testing.T) {
	lo := loopback(t)
	root := t.TempDir()
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("bootcode.bin", "boot")
	write("manifest.json", `{"boards": ["rpi4", "pc"], "files": [{"name": "bootcode.bin", "size": 4}]}`)
	write("rpi4/Image", "k")
	write("rpi4/rootfs.cpio.gz", "r")
	write("rpi4/manifest.json", `{"board": "rpi4", "arch": "arm64", "kernel_file": "Image", "files": [{"name": "bootcode.bin", "size": 4}, {"name": "rpi4/Image", "size": 1}, {"name": "rpi4/rootfs.cpio.gz", "size": 1}]}`)
	write("pc/vmlinuz", "k")
	write("pc/rootfs.cpio.gz", "r")
	write("pc/manifest.json", `{"board": "pc", "arch": "amd64", "kernel_file": "vmlinuz", "files": [{"name": "pc/vmlinuz", "size": 1}, {"name": "pc/rootfs.cpio.gz", "size": 1}]}`)
	args := []string{"serve", "--check", "--root", root, "--interface", lo, "--tftp", "127.0.0.1:0", "--http", "127.0.0.1:0"}
	code, out, _ := runCLI(t, args...)
	if code != 0 || !strings.Contains(out, "tree: "+root+": mixed, boards rpi4 (arm64), pc (amd64)") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	// A board directory without its kernel, another without a manifest,
	// firmware at the root changed.
	os.Remove(filepath.Join(root, "pc", "vmlinuz"))
	os.Remove(filepath.Join(root, "rpi4", "manifest.json"))
	write("bootcode.bin", "other")
	code, out, _ = runCLI(t, args...)
	for _, w := range []string{"pc/vmlinuz is listed in pc/manifest.json but missing", "board pc has no kernel pc/vmlinuz", "no rpi4/manifest.json: not a built tree",
		"bootcode.bin has 5 bytes, its manifest says 4"} {
		if code != 1 || !strings.Contains(out, w) {
			t.Errorf("exit %d; output lacks %q:\n%s", code, w, out)
		}
	}
}
