package e2e

import (
	"path/filepath"
	"testing"
	"time"
)

// TestServeInitProxy224 is the whole product on the virt image: a QEMU
// guest boots ramboot's init in the lab, dnsmasq (on another host of the
// network) hands out the address without option 224, and `ramboot serve`
// in proxy mode sends option 224 from nodes.yaml to the init (vendor
// class "PXEClient:ramboot").
func TestServeInitProxy224(t *testing.T) {
	if testing.Short() {
		t.Skip("lab scenarios are end-to-end tests: not in -short")
	}
	src, _ := image(t, "virt")

	setup := func(t *testing.T, option224 string) (*Lab, *Proc, *VM) {
		l := NewLab(t)
		router := l.Peer(t, "192.0.2.2")
		l.DnsmasqOn(t, router, "--dhcp-range=192.0.2.100,192.0.2.150,12h", "--no-ping")
		nodes := filepath.Join(l.Dir, "nodes.yaml")
		svWrite(t, nodes, "nodes:\n  - mac: 52:54:00:12:34:56\n    hostname: node-7\n    option224: \""+option224+"\"\n")
		srv := svStart(t, l, src, "--dhcp", "proxy", "--nodes", nodes)
		return l, srv, l.Boot(t, src, "")
	}
	offerLogged := func(t *testing.T, srv *Proc, detail string) {
		t.Helper()
		e, _ := svWaitLog(t, srv, 0, 10*time.Second, "dhcp offer to the init", func(e svLogLine) bool {
			return e.msg() == "dhcp" && e.str("mac") == "52:54:00:12:34:56" && e.str("event") == "offer"
		})
		if e.str("kind") != "ramboot-init" || e.str("detail") != detail {
			t.Errorf("serve's log for the init's DISCOVER: %v; want kind ramboot-init, detail %s", e, detail)
		}
	}

	t.Run("shell", func(t *testing.T) {
		_, srv, vm := setup(t, "shell")
		t0 := time.Now()
		vm.Expect(`network: eth0: proxyDHCP offer \(no address\) from 192\.0\.2\.1`, 120*time.Second)
		vm.Expect(`lease 192\.0\.2\.1[0-5][0-9]/24 from 192\.0\.2\.2 .*option 224 "shell" \(from 192\.0\.2\.1\)`, 30*time.Second)
		vm.Expect(`host: node-7`, 30*time.Second) // the name from serve's proxy offer
		vm.Expect(`224: option 224 says shell`, 30*time.Second)
		shellRoundTrip(t, vm)
		t.Logf("guest: shell from serve's option 224 in %v", time.Since(t0).Round(time.Millisecond))
		offerLogged(t, srv, `option 224 "shell"`)
		noPanic(t, vm)
	})

	t.Run("chain", func(t *testing.T) {
		_, srv, vm := setup(t, "http://{{.Server}}:8080/boot/{{.MACHyphen}}.ipxe")
		t0 := time.Now()
		vm.Expect(`224: chain http://192\.0\.2\.1:8080/boot/52-54-00-12-34-56\.ipxe \(from DHCP option 224 from 192\.0\.2\.1\)`, 120*time.Second)
		vm.Expect(`kexec: loaded; booting`, 120*time.Second)
		vm.Expect(`cmdline: console=ttyAMA0 ramboot\.board=virt ramboot\.224=shell ramboot\.hostname=node-7`, 120*time.Second)
		vm.Expect(`host: node-7`, 30*time.Second) // from ramboot.hostname=
		vm.Expect(`224: option 224 says shell`, 30*time.Second)
		shellRoundTrip(t, vm)
		t.Logf("guest: second kernel's shell in %v", time.Since(t0).Round(time.Millisecond))
		offerLogged(t, srv, `option 224 "http://192.0.2.1:8080/boot/52-54-00-12-34-56.ipxe"`)
		svWaitLog(t, srv, 0, 5*time.Second, "ipxe-script event", func(e svLogLine) bool {
			return e.msg() == "http" && e.str("event") == "ipxe-script" && e.str("mac") == "52:54:00:12:34:56"
		})
		for _, p := range []string{"/Image", "/rootfs.cpio.gz"} {
			svWaitLog(t, srv, 0, 5*time.Second, "GET "+p, func(e svLogLine) bool {
				return e.msg() == "http" && e.str("path") == p && e.str("range") == ""
			})
		}
		noPanic(t, vm)
	})
}
