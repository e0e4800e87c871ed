package boot

import (
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ramboot/ramboot/e2e/cache"
	"github.com/ramboot/ramboot/e2e/client"
	"github.com/ramboot/ramboot/e2e/lab"
)

// These scenarios boot the virt image in a Lab: the guest's DHCP client
// talks to real dnsmasq instances on a bridge inside a network namespace.

// TestLabDHCPShell: dnsmasq hands out an address and option 224 "shell".
func TestLabDHCPShell(t *testing.T) {
	dir, _ := cache.Image(t, "virt")
	l := lab.New(t)
	d := l.Dnsmasq(t, "--dhcp-range=192.0.2.100,192.0.2.150,12h", `--dhcp-option=224,"shell"`)
	vm := l.Boot(t, dir, "")
	vm.Expect(`net: \S+ 52:54:00:12:34:56 192\.0\.2\.1[0-4][0-9]/24`, 120*time.Second)
	vm.Expect(`224: option 224 says shell`, 30*time.Second)
	vm.ShellRoundTrip()
	d.Expect(`DHCPACK\(br0\) 192\.0\.2\.1[0-5][0-9] 52:54:00:12:34:56`, 10*time.Second)
	// The shell sees the lease.
	vm.Send("ip -4 addr show dev eth0\n")
	vm.Expect(`inet 192\.0\.2\.1[0-5][0-9]/24`, 20*time.Second)
	vm.NoPanic()
}

// TestLabDHCPChain: option 224 is an http URL of an iPXE script that
// kexecs the same kernel (gunzipped) and initramfs, marked.
func TestLabDHCPChain(t *testing.T) {
	dir, _ := cache.Image(t, "virt")
	l := lab.New(t)
	plain := lab.Gunzip(t, filepath.Join(dir, "Image"))
	mux := http.NewServeMux()
	mux.HandleFunc("/Image", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(plain)))
		w.Write(plain)
	})
	mux.HandleFunc("/rootfs.cpio.gz", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join(dir, "rootfs.cpio.gz"))
	})
	mux.HandleFunc("/chain.ipxe", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "#!ipxe\n"+
			"kernel http://192.0.2.1:8080/Image console=ttyAMA0 panic=-1 ramboot.224=shell ramboot.marker=second\n"+
			"initrd http://192.0.2.1:8080/rootfs.cpio.gz\n"+
			"boot\n")
	})
	l.HTTP(t, mux)
	l.Dnsmasq(t, "--dhcp-range=192.0.2.100,192.0.2.150,12h", `--dhcp-option=224,"http://192.0.2.1:8080/chain.ipxe"`)
	vm := l.Boot(t, dir, "")
	vm.Expect(`224: chain http://192\.0\.2\.1:8080/chain\.ipxe`, 120*time.Second)
	vm.Expect(`kexec: loaded; booting`, 120*time.Second)
	vm.Expect(`cmdline: .*ramboot\.marker=second`, 120*time.Second)
	vm.Expect(`224: option 224 says shell`, 30*time.Second)
	vm.ShellRoundTrip()
	vm.NoPanic()
}

// dnsmasqVersion is dnsmasq's (major, minor) version.
func dnsmasqVersion(t testing.TB) (int, int) {
	t.Helper()
	lab.Need(t, "dnsmasq", "dnsmasq")
	out, err := exec.Command("dnsmasq", "--version").Output()
	if err != nil {
		t.Fatalf("dnsmasq --version: %v", err)
	}
	m := regexp.MustCompile(`version (\d+)\.(\d+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("dnsmasq --version: no version in %q", out)
	}
	a, _ := strconv.Atoi(m[1])
	b, _ := strconv.Atoi(m[2])
	return a, b
}

// proxyArgs are a proxyDHCP dnsmasq's arguments that try to send option
// 224 (value) to the client.
//
// Why --dhcp-option=224 is not enough: in proxy mode (dhcp-range=<net>,
// proxy) dnsmasq (rfc2131.c) answers only a DISCOVER (or a REQUEST to port
// 4011) whose vendor class (option 60) starts with "PXEClient" and that
// carries option 93, and only while PXE is enabled (--pxe-service or
// --pxe-prompt); every other client is ignored, whatever --dhcp-option
// says. Its answer is built from scratch: message type, server id, the
// class "PXEClient", PXE vendor options (43) and the boot file and next
// server of --dhcp-boot; it never adds the --dhcp-option list, so option
// 224 is not in it. dnsmasq 2.91 added --dhcp-option-pxe, whose options do
// go into proxy answers. With 2.90 (Debian 12) a proxy cannot send option
// 224 to any client, PXE or not: all it can pass is the boot file name
// (--dhcp-boot=<value>,,<server>), which ramboot's netup reports as
// Result.BootFile (128 bytes at most). And only with --pxe-prompt: with a
// single --pxe-service for the client's (EFI) architecture, dnsmasq's
// UEFI workaround leaves the boot file out of the DISCOVER answer and
// gives it only to a REQUEST on port 4011.
func proxyArgs(t testing.TB, value string) (args []string, sends224 bool) {
	major, minor := dnsmasqVersion(t)
	args = []string{"--dhcp-range=192.0.2.0,proxy,255.255.255.0",
		`--pxe-prompt="ramboot",0`,
		`--dhcp-option=224,"` + value + `"`,
		"--dhcp-boot=" + value + ",,192.0.2.2",
	}
	if major > 2 || (major == 2 && minor >= 91) {
		args = append(args, `--dhcp-option-pxe=224,"`+value+`"`)
		return args, true
	}
	return args, false
}

// TestLabProxyDHCPAnswers checks, without a guest, what a proxyDHCP
// dnsmasq on the guest's network sends: nothing to a client whose vendor
// class is not "PXEClient…", and to a PXE client an offer with no address
// whose option 224 is there only if this dnsmasq can put it there (see
// proxyArgs).
func TestLabProxyDHCPAnswers(t *testing.T) {
	l := lab.New(t)
	proxy := l.Peer(t, "192.0.2.2")
	const url = "http://192.0.2.1:8080/proxy.ipxe"
	args, sends224 := proxyArgs(t, url)
	l.DnsmasqOn(t, proxy, args...)
	probe := l.Peer(t, "192.0.2.9")

	if o, err := client.DHCPProbeErr(probe, "ramboot", 6*time.Second); err == nil {
		t.Errorf("the proxy answered a client whose vendor class is not PXEClient:\n%s", o.Summary())
	}
	o := client.DHCPProbe(t, probe, "PXEClient:Arch:00011:UNDI:003000")
	if !o.YourIPAddr.IsUnspecified() {
		t.Errorf("proxy offer with an address %v", o.YourIPAddr)
	}
	got := client.Opt224(o)
	switch {
	case sends224 && got != url:
		t.Errorf("dnsmasq with --dhcp-option-pxe: proxy offer has option 224 %q, want %s:\n%s", got, url, o.Summary())
	case !sends224 && got != "":
		t.Errorf("dnsmasq < 2.91 put option 224 %q in a proxy offer after all: update proxyArgs' comment:\n%s", got, o.Summary())
	}
	if !sends224 {
		t.Logf("dnsmasq < 2.91: proxy offer carries no option 224 (boot file %q): %s", o.BootFileName, o.Summary())
	}
	if bf := strings.TrimRight(o.BootFileName, "\x00"); bf != url {
		t.Errorf("proxy offer's boot file is %q, want %s (--dhcp-boot)", bf, url)
	}
	// dnsmasq sends the boot file only to PXE clients too, and not in the
	// --pxe-service single-service case: see proxyArgs.
}

// TestLabProxyDHCP: one dnsmasq hands out addresses without option 224,
// a second one in proxy mode, on another host of the same network, names
// an iPXE script. The guest must take its address from the first and the
// script from the second; the script echoes a marker and asks for the
// shell. The init sends the vendor class "PXEClient:ramboot" and option
// 93, so the proxy answers; with dnsmasq 2.91+ the URL comes as option 224
// (--dhcp-option-pxe), with 2.90 as the proxy's boot file name (see
// proxyArgs), which the init takes when no option 224 came.
func TestLabProxyDHCP(t *testing.T) {
	dir, _ := cache.Image(t, "virt")
	l := lab.New(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/proxy.ipxe", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "#!ipxe\necho PROXY-224-OK ${mac:hexhyp}\nshell\n")
	})
	l.HTTP(t, mux)
	main := l.Dnsmasq(t, "--dhcp-range=192.0.2.100,192.0.2.150,12h")
	proxy := l.Peer(t, "192.0.2.2")
	args, _ := proxyArgs(t, "http://192.0.2.1:8080/proxy.ipxe")
	p := l.DnsmasqOn(t, proxy, args...)
	vm := l.Boot(t, dir, "")
	vm.Expect(`network: eth0: proxyDHCP offer \(no address\) from 192\.0\.2\.2`, 120*time.Second)
	vm.Expect(`224: chain http://192\.0\.2\.1:8080/proxy\.ipxe`, 30*time.Second)
	vm.Expect(`PROXY-224-OK 52-54-00-12-34-56`, 30*time.Second)
	// The banner comes after the script ran.
	vm.Expect(`net: \S+ 52:54:00:12:34:56 192\.0\.2\.1[0-5][0-9]/24`, 30*time.Second)
	vm.ShellRoundTrip()
	main.Expect(`DHCPACK\(br0\) 192\.0\.2\.1[0-5][0-9] 52:54:00:12:34:56`, 10*time.Second)
	p.Expect(`PXE\(eth0\) 52:54:00:12:34:56 proxy`, 10*time.Second)
	vm.NoPanic()
}
