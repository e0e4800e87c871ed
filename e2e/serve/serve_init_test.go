package serve

import (
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/ramboot/ramboot/e2e/cache"
	"github.com/ramboot/ramboot/e2e/lab"
	"github.com/ramboot/ramboot/e2e/qemu"
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
	src, _ := cache.Image(t, "virt")

	// rack: nodes.yaml has the status page test's 1,000 nodes
	// (statuspage_test.go) besides the guest.
	setup := func(t *testing.T, option224 string, rack bool) (*lab.Lab, *lab.Proc, *qemu.VM) {
		l := lab.New(t)
		router := l.Peer(t, "192.0.2.2")
		l.DnsmasqOn(t, router, "--dhcp-range=192.0.2.100,192.0.2.150,12h", "--no-ping")
		nodes := filepath.Join(l.Dir, "nodes.yaml")
		defaults, more := "", ""
		if rack {
			defaults, more = statusPageNodes(t, l.Dir)
		}
		lab.WriteFile(t, nodes, defaults+"nodes:\n  - mac: 52:54:00:12:34:56\n    hostname: node-7\n    option224: \""+option224+"\"\n"+more)
		srv := l.Serve(t, src, "--dhcp", "proxy", "--nodes", nodes)
		return l, srv, l.Boot(t, src, "")
	}
	offerLogged := func(t *testing.T, srv *lab.Proc, detail string) {
		t.Helper()
		e, _ := lab.WaitLog(t, srv, 0, 10*time.Second, "dhcp offer to the init", func(e lab.LogLine) bool {
			return e.Msg() == "dhcp" && e.Str("mac") == "52:54:00:12:34:56" && e.Str("event") == "offer"
		})
		if e.Str("kind") != "ramboot-init" || e.Str("detail") != detail {
			t.Errorf("serve's log for the init's DISCOVER: %v; want kind ramboot-init, detail %s", e, detail)
		}
	}

	t.Run("shell", func(t *testing.T) {
		l, srv, vm := setup(t, "shell", true)
		t0 := time.Now()
		vm.Expect(`network: eth0: proxyDHCP offer \(no address\) from 192\.0\.2\.1`, 120*time.Second)
		vm.Expect(`lease 192\.0\.2\.1[0-5][0-9]/24 from 192\.0\.2\.2 .*option 224 "shell" \(from 192\.0\.2\.1\)`, 30*time.Second)
		vm.Expect(`host: node-7`, 30*time.Second) // the name from serve's proxy offer
		vm.Expect(`224: option 224 says shell`, 30*time.Second)
		vm.ShellRoundTrip()
		t.Logf("guest: shell from serve's option 224 in %v", time.Since(t0).Round(time.Millisecond))
		offerLogged(t, srv, `option 224 "shell"`)
		// The init's own reports, on its record and in the metrics.
		l.NodeReports(t, "http://192.0.2.1:8080", "52:54:00:12:34:56", 10*time.Second, "network-up", "action", "shell")
		// Its hardware facts (virt: 2 vCPUs, 1 GiB, no disk, virtio-net).
		if hw := l.Hardware(t, "52:54:00:12:34:56", 15*time.Second); !regexp.MustCompile(`^linux,dummy-virt; 2 cores \(arm,cortex-a72\); [0-9]+ MB; disks: -; NICs: eth0 virtio_net`).MatchString(hw) {
			t.Errorf("the guest's facts on the status board: %q", hw)
		}
		l.MetricsHave(t, "http://192.0.2.1:8080",
			`ramboot_dhcp_replies_total\{kind="ramboot-init",type="offer"\} [1-9]`,
			`ramboot_node_stage\{mac="52:54:00:12:34:56",node="node-7",source="node",stage="shell"\} 1`,
			`ramboot_node_last_seen_timestamp_seconds\{mac="52:54:00:12:34:56",node="node-7"\} `)
		checkStatusPage(t, l, filepath.Join(l.Dir, "nodes.yaml"))
		vm.NoPanic()
	})

	t.Run("chain", func(t *testing.T) {
		l, srv, vm := setup(t, "http://{{.Server}}:8080/boot/{{.MACHyphen}}.ipxe", false)
		t0 := time.Now()
		vm.Expect(`224: chain http://192\.0\.2\.1:8080/boot/52-54-00-12-34-56\.ipxe \(from DHCP option 224 from 192\.0\.2\.1\)`, 120*time.Second)
		vm.Expect(`kexec: loaded; booting`, 120*time.Second)
		vm.Expect(`cmdline: console=ttyAMA0 ramboot\.board=virt ramboot\.224=shell ramboot\.hostname=node-7`, 120*time.Second)
		vm.Expect(`host: node-7`, 30*time.Second) // from ramboot.hostname=
		vm.Expect(`224: option 224 says shell`, 30*time.Second)
		vm.ShellRoundTrip()
		t.Logf("guest: second kernel's shell in %v", time.Since(t0).Round(time.Millisecond))
		offerLogged(t, srv, `option 224 "http://192.0.2.1:8080/boot/52-54-00-12-34-56.ipxe"`)
		lab.WaitLog(t, srv, 0, 5*time.Second, "ipxe-script event", func(e lab.LogLine) bool {
			return e.Msg() == "http" && e.Str("event") == "ipxe-script" && e.Str("mac") == "52:54:00:12:34:56"
		})
		for _, p := range []string{"/Image", "/rootfs.cpio.gz"} {
			lab.WaitLog(t, srv, 0, 5*time.Second, "GET "+p, func(e lab.LogLine) bool {
				return e.Msg() == "http" && e.Str("path") == p && e.Str("range") == ""
			})
		}
		// The first kernel's init reported its kexec (flushed before it),
		// the second's its shell (to ramboot.report= from the script).
		got := l.NodeReports(t, "http://192.0.2.1:8080", "52:54:00:12:34:56", 10*time.Second, "network-up", "action", "kexec", "shell")
		if i := slices.Index(got, "kexec"); i < 0 || !slices.Contains(got[i:], "shell") {
			t.Errorf("reports %q: no shell after the kexec", got)
		}
		l.MetricsHave(t, "http://192.0.2.1:8080",
			`ramboot_reports_total\{stage="kexec"\} [1-9]`,
			`ramboot_http_transfers_total\{result="completed"\} ([3-9]|[1-9][0-9]+)$`,
			// The second init's shell or, its network coming up behind
			// the shell, its network-up.
			`ramboot_node_stage\{mac="52:54:00:12:34:56",node="node-7",source="node",stage="(shell|network-up)"\} 1`)
		vm.NoPanic()
	})
}
