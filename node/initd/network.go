//go:build linux

package initd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/ramboot/ramboot/bootspec"
	"github.com/ramboot/ramboot/internal/report"
	"github.com/ramboot/ramboot/node/facts"
	"github.com/ramboot/ramboot/node/netup"
)

// vendorClass is what the init sends as option 60. It starts with
// "PXEClient" because a dnsmasq in proxy mode answers nothing else (and
// then only sends a boot file name, not option 224); ramboot serve knows
// the ":ramboot" suffix and sends option 224.
const vendorClass = "PXEClient:ramboot"

// network brings up the wired interfaces and runs DHCP. It returns the
// value to act on (option 224, or a proxy's boot-file URL when no 224
// came), where it came from, and fills env with the lease's facts for
// iPXE scripts.
func (in *Init) network(ctx context.Context, env map[string]string) (value, source string, err error) {
	cfg := netup.Config{
		VendorClass: vendorClass,
		// A proxyDHCP server answers as fast as the DHCP server does (it
		// checks nothing); 750 ms after the first offer is plenty for it
		// and halves the default wait when there is no proxy.
		OfferWindow: 750 * time.Millisecond,
		Log:         func(f string, a ...any) { in.stage("network: "+f, a...) },
	}
	if h, _ := bootspec.CmdlineParam(in.cmdline, "ramboot.hostname"); h != "" {
		// The command line's name wins over DHCP's.
		cfg.SetHostname = func(string) error { return nil }
	}
	res, err := netup.Up(ctx, cfg)
	if err != nil {
		return "", "", err
	}
	in.lease.Store(res)
	in.stage("network: %s (server %v)", describeLease(res), res.ServerID)
	in.startReports(res)
	up := report.Report{Stage: report.NetworkUp, Detail: report.Clip(describeLease(res), report.MaxDetail)}
	if d, ok := parseBootImgDigest(readDT(bootImgDigestDT)); ok {
		up.BootImg = d
	}
	in.rep.send(up)
	go in.rep.sendFacts(facts.Gather("/", res.MAC.String()), in.stage)
	go netup.KeepRenewed(context.Background(), cfg, res)

	env["mac"] = res.MAC.String()
	env["ip"] = res.IP.IP.String()
	env["netmask"] = net.IP(res.IP.Mask).String()
	if res.Router != nil {
		env["gateway"] = res.Router.String()
	}
	if len(res.DNS) > 0 {
		env["dns"] = res.DNS[0].String()
	}
	if res.Hostname != "" {
		env["hostname"] = res.Hostname
	}
	if res.NextServer != nil {
		env["next-server"] = res.NextServer.String()
	}
	env["filename"] = res.BootFile
	env["224"] = res.Option224
	env["ramboot-224"] = res.Option224

	if res.Option224 != "" {
		return res.Option224, fmt.Sprintf("DHCP option 224 from %v", res.Option224From), nil
	}
	// A proxyDHCP server that cannot send option 224 (dnsmasq before
	// 2.91) can still send a URL as the boot file name.
	if bf := strings.TrimRight(res.BootFile, "\x00"); bf != "" {
		if spec, err := bootspec.Parse(bf); err == nil && spec.Kind != bootspec.Shell {
			return bf, fmt.Sprintf("DHCP boot file from %v (no option 224)", res.NextServer), nil
		}
	}
	return "", "DHCP (no option 224)", nil
}

// serial is the Pi's serial number from the device tree, if any.
func serial() string {
	if b := readDT("serial-number"); b != nil {
		return strings.TrimLeft(strings.TrimRight(string(b), "\x00\n"), "0")
	}
	return ""
}

// bootImgDigestDT is where a Pi bootloader (2025-01-22 and later, with
// signed boot on) leaves the SHA-256 of the boot.img it loaded and
// verified.
const bootImgDigestDT = "chosen/bootloader/boot_img_sha256"

// readDT reads a device tree property (nil if there is none), at most
// 4 KiB of it.
func readDT(prop string) []byte {
	for _, dir := range []string{"/proc/device-tree/", "/sys/firmware/devicetree/base/"} {
		f, err := os.Open(dir + prop)
		if err != nil {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(f, 4096))
		f.Close()
		if err == nil {
			return b
		}
	}
	return nil
}

// parseBootImgDigest reads the boot_img_sha256 property: the release
// notes do not say its encoding, so both are taken, 32 bytes of digest or
// its 64 hex digits as a string (NUL-terminated or not, either case).
func parseBootImgDigest(b []byte) (string, bool) {
	if len(b) == sha256.Size {
		return hex.EncodeToString(b), true
	}
	s := strings.ToLower(strings.TrimRight(string(b), "\x00\n "))
	if report.IsSHA256(s) {
		return s, true
	}
	return "", false
}

// describeLease is "eth0 52:54:00:12:34:56 192.0.2.101/24 via 192.0.2.1".
func describeLease(l *netup.Result) string {
	ones, _ := l.IP.Mask.Size()
	s := fmt.Sprintf("%s %s %s/%d", l.Interface, l.MAC, l.IP.IP, ones)
	if l.Router != nil {
		s += " via " + l.Router.String()
	}
	return s
}
