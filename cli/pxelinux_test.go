package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakePCTree is the part of a BOARD=pc tree `ramboot pxelinux` reads.
func fakePCTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for name, data := range map[string]string{
		"manifest.json": `{"board": "pc", "arch": "amd64", "kernel_file": "vmlinuz"}`,
		"cmdline.txt":   "console=ttyS0,115200 ramboot.board=pc\n",
	} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestPXELinuxCommand(t *testing.T) {
	root := fakePCTree(t)
	nodes := filepath.Join(t.TempDir(), "nodes.yaml")
	if err := os.WriteFile(nodes, []byte("nodes:\n  - mac: 52:54:00:AA:BB:01\n    hostname: n1\n    option224: \"nfs://{{.Server}}/srv/nodes/{{.Hostname}}?vers=3\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), "test", []string{"pxelinux", "--root", root, "--nodes", nodes, "--server", "192.0.2.1", "--ipxe"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if want := "boot/52-54-00-aa-bb-01.ipxe\npxelinux.cfg/01-52-54-00-aa-bb-01\npxelinux.cfg/default\n"; out.String() != want {
		t.Errorf("wrote:\n%s\nwant:\n%s", out.String(), want)
	}
	b, err := os.ReadFile(filepath.Join(root, "pxelinux.cfg", "01-52-54-00-aa-bb-01"))
	if err != nil || !strings.Contains(string(b), "  APPEND initrd=rootfs.cpio.gz console=ttyS0,115200 ramboot.board=pc ramboot.224=nfs://192.0.2.1/srv/nodes/n1?vers=3 ramboot.hostname=n1\n") {
		t.Errorf("the node's file: %v\n%s", err, b)
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"pxelinux"}, 2, "no --root"},
		{[]string{"pxelinux", "--root", root, "--nodes", nodes}, 2, "need --server"},
		{[]string{"pxelinux", "--root", root, "--server", "fe80::1"}, 2, "want an IPv4 address"},
		{[]string{"pxelinux", "--root", t.TempDir()}, 1, "is not a ramboot tree"},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), "test", tc.args, &out, &errb)
		if code != tc.code || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%q: exit %d, %q; want exit %d saying %q", tc.args, code, errb.String(), tc.code, tc.want)
		}
	}
}
