package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/ramboot/ramboot/e2e/cache"
	"github.com/ramboot/ramboot/e2e/lab"
)

// nfsRootDir makes a root file system for the guest: /sbin/init is
// testdata/nfsinit built for arm64, plus the mount points switch_root
// moves /dev, /proc, /sys and /run to.
func nfsRootDir(t testing.TB) string { return nfsRootDirFor(t, "arm64") }

// nfsRootDirFor is nfsRootDir for a guest of architecture goarch.
func nfsRootDirFor(t testing.TB, goarch string) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	for _, d := range []string{"sbin", "dev", "proc", "sys", "run", "tmp", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "motd"), []byte("an NFS root served by the ramboot e2e lab\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := cache.NFSInit(t, goarch)
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "sbin", "init"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

// TestLab checks the harness without a guest: the namespace has no route
// out, dnsmasq starts on br0, the HTTP server answers inside the
// namespace and not outside it, and Ganesha's NFSv3 MOUNT service lists
// its export.
func TestLab(t *testing.T) {
	l := lab.New(t)
	if out, _ := l.Exec(t, 10*time.Second, "ip", "route", "show", "default"); strings.TrimSpace(out) != "" {
		t.Fatalf("the lab has a default route: %s", out)
	}
	d := l.Dnsmasq(t, "--dhcp-range=192.0.2.100,192.0.2.150,12h", `--dhcp-option=224,"shell"`)

	base := l.HTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "lab-http-ok") }))
	peer := l.Peer(t, "192.0.2.9")
	if out, err := lab.Get(peer.NS, base+"/"); err != nil || out != "lab-http-ok" {
		t.Fatalf("GET %s from a peer: %q, %v", base, out, err)
	}
	// Outside the namespace 192.0.2.1 is not there.
	c := http.Client{Timeout: 2 * time.Second}
	if resp, err := c.Get(base + "/"); err == nil {
		resp.Body.Close()
		t.Fatalf("the lab's HTTP server answered outside the lab namespace")
	}

	// dnsmasq answers a DHCP client on the bridge with option 224.
	offer := dhcpProbe(t, peer, "")
	if got := string(bytes.TrimRight(offer.Options.Get(dhcpv4.GenericOptionCode(224)), "\x00")); got != "shell" {
		t.Errorf("dnsmasq's offer has option 224 %q, want shell\n%s", got, offer.Summary())
	}
	d.Expect(`DHCPOFFER\(br0\)`, 10*time.Second)

	root := nfsRootDir(t)
	l.Ganesha(t, lab.Export{Path: root, Pseudo: "/export"}, lab.Export{Path: root, Pseudo: "/ro", RO: true})
	lab.Need(t, "showmount", "nfs-common")
	out, err := l.Exec(t, 20*time.Second, "showmount", "-e", lab.Addr)
	if err != nil {
		t.Fatalf("showmount: %v\n%s", err, out)
	}
	for _, want := range []string{"/export", "/ro"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(want) + `\s`).MatchString(out) {
			t.Errorf("showmount -e has no %s:\n%s", want, out)
		}
	}
	out, _ = l.Exec(t, 10*time.Second, "rpcinfo", "-p", lab.Addr)
	for _, want := range []string{`100003\s+3\s+tcp\s+2049\s+nfs`, `100003\s+4\s+tcp\s+2049\s+nfs`, `100005\s+3\s+tcp\s+\d+\s+mountd`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("rpcinfo -p has no %s:\n%s", want, out)
		}
	}
}

// nfsInitBinary is testdata/nfsinit for linux/arm64, built once per run.
func nfsInitBinary(t testing.TB) string { return cache.NFSInit(t, "arm64") }

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
