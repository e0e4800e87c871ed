package lab_test

import (
	"bytes"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/ramboot/ramboot/e2e/cache"
	"github.com/ramboot/ramboot/e2e/client"
	"github.com/ramboot/ramboot/e2e/lab"
)

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
	offer := client.DHCPProbe(t, peer, "")
	if got := string(bytes.TrimRight(offer.Options.Get(dhcpv4.GenericOptionCode(224)), "\x00")); got != "shell" {
		t.Errorf("dnsmasq's offer has option 224 %q, want shell\n%s", got, offer.Summary())
	}
	d.Expect(`DHCPOFFER\(br0\)`, 10*time.Second)

	root := cache.NFSRoot(t, "arm64")
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
