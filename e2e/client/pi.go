package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/ramboot/ramboot/boards"
	"github.com/ramboot/ramboot/e2e/lab"
)

// PiFetched is what board's bootloader fetches over TFTP after its size
// probe, in order: the profile's `fetched` list (boards/<board>.yaml),
// the one the builder's manifest and `make bench` count too. For rpi4:
// config.txt, start4cd.elf, fixup4cd.dat, bl31.bin, the DTB, cmdline.txt,
// rootfs.cpio.gz, Image.
func PiFetched(t testing.TB, board string) []string {
	t.Helper()
	b, err := boards.Lookup(board)
	if err != nil {
		t.Fatalf("board %s: %v", board, err)
	}
	if len(b.Fetched) == 0 {
		t.Fatalf("board %s: its profile (%s) lists no fetched files", board, b.Source)
	}
	return b.Fetched
}

// Pi is a Raspberry Pi 4 bootloader replay (notes/rpi-netboot.md) on a
// lab peer: its DISCOVER (and in full mode REQUEST) with the Pi's
// options, the answer checked against dnsmasq's proxy reply, then its
// TFTP sequence with this package's client: the size probe of start4.elf
// (tsize, early terminate) and the profile's fetch list, each file
// byte-exact against the tree served, and the ERROR for pieeprom.sig.
//
//	pi := NewPi(t, l, tree, "192.0.2.50", false)
//	if r := pi.Boot(40 * time.Second); r.Err != nil { ... }
type Pi struct {
	Peer  *lab.Peer
	c     *nclient4.Client
	src   string   // the tree served, for byte-exact comparison
	addr  string   // its address (a router's lease, or the inventory's)
	full  bool     // serve is the DHCP server (the Pi is in nodes.yaml at addr)
	files []string // what the EEPROM fetches, in order, after the size probe
	mods  []dhcpv4.Modifier
}

// PiResult is how a Pi's boot went.
type PiResult struct {
	DHCPTries, TFTPFiles int
	DHCP, Total          time.Duration
	Bytes                int64
	Err                  error // nil: booted byte-exact
}

func (r PiResult) String() string {
	if r.Err != nil {
		return "NO: " + r.Err.Error()
	}
	return fmt.Sprintf("yes (DHCP %d sends %.1fs, %d files %.1f MB byte-exact, %.1fs)",
		r.DHCPTries, r.DHCP.Seconds(), r.TFTPFiles, float64(r.Bytes)/1e6, r.Total.Seconds())
}

// NewPi adds the Pi's namespace to lab l: MAC PiMAC, address addr (in
// proxy mode a router's DHCP gave it; in full mode, full set, serve gives
// the same one from nodes.yaml, checked in its ACK). src is the rpi4
// tree served.
func NewPi(t testing.TB, l *lab.Lab, src, addr string, full bool) *Pi {
	t.Helper()
	p, c := DHCPPeer(t, l, "192.0.2.250", PiMAC)
	lab.Run(t, "ip", "-n", p.NS, "addr", "add", addr+"/24", "dev", p.Iface)
	return &Pi{Peer: p, c: c, src: src, addr: addr, full: full, mods: PiDHCPMods(t), files: PiFetched(t, "rpi4")}
}

// exchange sends m until an answer of type want from the lab's server
// comes, or the deadline.
func (pi *Pi) exchange(m *dhcpv4.DHCPv4, want dhcpv4.MessageType, deadline time.Time) (*dhcpv4.DHCPv4, int, error) {
	lab := net.ParseIP(lab.Addr)
	for tries := 1; ; tries++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		p, err := pi.c.SendAndRead(ctx, nclient4.DefaultServers, m, func(p *dhcpv4.DHCPv4) bool {
			return p.MessageType() == want && p.ServerIdentifier().Equal(lab)
		})
		cancel()
		if err == nil {
			return p, tries, nil
		}
		if time.Now().After(deadline) {
			return nil, tries, fmt.Errorf("no %s from serve after %d tries: %v", want, tries, err)
		}
	}
}

// Boot runs the Pi's DHCP and TFTP sequence within budget. It may run in
// a goroutine: it reports, never fails the test itself.
func (pi *Pi) Boot(budget time.Duration) (r PiResult) {
	t0 := time.Now()
	deadline := t0.Add(budget)
	defer func() { r.Total = time.Since(t0) }()
	mac, _ := net.ParseMAC(PiMAC)
	disc, err := dhcpv4.NewDiscovery(mac, pi.mods...)
	if err != nil {
		r.Err = err
		return r
	}
	offer, n, err := pi.exchange(disc, dhcpv4.MessageTypeOffer, deadline)
	r.DHCPTries += n
	if err != nil {
		r.Err = fmt.Errorf("DISCOVER: %w", err)
		return r
	}
	if got := offer.Options.Get(dhcpv4.OptionVendorSpecificInformation); !bytes.Equal(got, mustHexQuiet(DnsmasqPiOpt43)) {
		r.Err = fmt.Errorf("offer option 43 = %x, want the Pi boot menu %s", got, DnsmasqPiOpt43)
		return r
	}
	if got := offer.Options.Get(dhcpv4.OptionClientMachineIdentifier); !bytes.Equal(got, mustHexQuiet(PiOpt97)) {
		r.Err = fmt.Errorf("offer option 97 = %x, want %s echoed", got, PiOpt97)
		return r
	}
	if pi.full {
		if !offer.YourIPAddr.Equal(net.ParseIP(pi.addr)) {
			r.Err = fmt.Errorf("offer yiaddr %v, want the inventory's %s", offer.YourIPAddr, pi.addr)
			return r
		}
		req, err := dhcpv4.NewRequestFromOffer(offer, pi.mods...)
		if err != nil {
			r.Err = err
			return r
		}
		ack, n, err := pi.exchange(req, dhcpv4.MessageTypeAck, deadline)
		r.DHCPTries += n
		if err != nil {
			r.Err = fmt.Errorf("REQUEST: %w", err)
			return r
		}
		if !ack.YourIPAddr.Equal(net.ParseIP(pi.addr)) {
			r.Err = fmt.Errorf("ACK yiaddr %v, want %s", ack.YourIPAddr, pi.addr)
			return r
		}
	} else if !offer.YourIPAddr.IsUnspecified() {
		r.Err = fmt.Errorf("proxy offer with address %v", offer.YourIPAddr)
		return r
	}
	r.DHCP = time.Since(t0)

	pc := TFTP{NS: pi.Peer.NS, Server: lab.Addr + ":69", Blksize: 1024, Tsize: true}
	probe := pc
	probe.EarlyTerminate = true
	get := func(c TFTP, name string) (Result, error) {
		for {
			res, err := c.Get(name)
			// "server busy" (a limit) is worth trying again, as the
			// EEPROM does; anything else is the answer.
			if err == nil && res.ErrCode == 0 && strings.HasPrefix(res.ErrMsg, "server busy") && time.Now().Before(deadline) {
				time.Sleep(500 * time.Millisecond)
				continue
			}
			return res, err
		}
	}
	st, err := os.Stat(filepath.Join(pi.src, "start4.elf"))
	if err != nil {
		r.Err = err
		return r
	}
	res, err := get(probe, PiSerial+"/start4.elf")
	if err != nil || res.Tsize() != st.Size() {
		r.Err = fmt.Errorf("size probe %s/start4.elf: %v, OACK %v ERROR %d %q; want tsize %d", PiSerial, err, res.OACK, res.ErrCode, res.ErrMsg, st.Size())
		return r
	}
	for _, f := range pi.files {
		want, err := os.ReadFile(filepath.Join(pi.src, f))
		if err != nil {
			r.Err = err
			return r
		}
		res, err := get(pc, PiSerial+"/"+f)
		if err != nil || res.ErrCode != -1 {
			r.Err = fmt.Errorf("tftp %s/%s: %v, ERROR %d %q", PiSerial, f, err, res.ErrCode, res.ErrMsg)
			return r
		}
		if !bytes.Equal(res.Data, want) {
			r.Err = fmt.Errorf("tftp %s/%s: %d bytes (sha256 %.12s), want %d (sha256 %.12s)", PiSerial, f, len(res.Data), lab.SHA256Hex(res.Data), len(want), lab.SHA256Hex(want))
			return r
		}
		r.TFTPFiles++
		r.Bytes += int64(len(res.Data))
	}
	if res, err := get(pc, PiSerial+"/pieeprom.sig"); err != nil || res.ErrCode != 1 {
		r.Err = fmt.Errorf("tftp %s/pieeprom.sig: %v, ERROR %d %q; want ERROR 1", PiSerial, err, res.ErrCode, res.ErrMsg)
	}
	return r
}

// mustHexQuiet decodes a constant of this package (no testing.TB in a
// goroutine).
func mustHexQuiet(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}
