package client

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/ramboot/ramboot/boards"
	"github.com/ramboot/ramboot/e2e/lab"
	"github.com/ramboot/ramboot/eeprom"
	"github.com/ramboot/ramboot/internal/netnstest"
	"github.com/ramboot/ramboot/tree"
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
	DHCPTries, Files int // Files: fetched byte-exact (TFTP or HTTP)
	DHCP, Total      time.Duration
	Bytes            int64
	Err              error // nil: booted byte-exact
}

func (r PiResult) String() string {
	if r.Err != nil {
		return "NO: " + r.Err.Error()
	}
	return fmt.Sprintf("yes (DHCP %d sends %.1fs, %d files %.1f MB byte-exact, %.1fs)",
		r.DHCPTries, r.DHCP.Seconds(), r.Files, float64(r.Bytes)/1e6, r.Total.Seconds())
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
	if r.DHCPTries, r.Err = pi.dhcp(deadline); r.Err != nil {
		return r
	}
	r.DHCP = time.Since(t0)
	pi.tftp(deadline, &r)
	return r
}

// BootHTTP runs the Pi's HTTP boot (BOOT_ORDER nibble 7, HTTP_HOST the
// lab's server, HTTP_PORT port, HTTP_PATH path; notes/rpi-netboot.md)
// within budget: the same DHCP as Boot, then GET /PATH/boot.sig and
// /PATH/boot.img with the bootloader's User-Agent, each byte-exact
// against the served tree's dir (the tree's root for ""), and the checks
// the bootloader makes before it boots: boot.img's SHA-256 is boot.sig's
// first line and the signature verifies with pub. No redirect is
// followed (the bootloader follows none). It may run in a goroutine.
func (pi *Pi) BootHTTP(port int, path, dir string, pub *rsa.PublicKey, budget time.Duration) (r PiResult) {
	t0 := time.Now()
	deadline := t0.Add(budget)
	defer func() { r.Total = time.Since(t0) }()
	if r.DHCPTries, r.Err = pi.dhcp(deadline); r.Err != nil {
		return r
	}
	r.DHCP = time.Since(t0)
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return netnstest.Dial(pi.Peer.NS, &net.Dialer{Timeout: 5 * time.Second}, network, addr)
	}}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: time.Until(deadline),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	got := map[string][]byte{}
	for _, f := range []string{tree.BootSigName, tree.BootImgName} {
		u := fmt.Sprintf("http://%s/%s/%s", net.JoinHostPort(lab.Addr, strconv.Itoa(port)), path, f)
		req, err := http.NewRequest(http.MethodGet, u, nil)
		if err != nil {
			r.Err = err
			return r
		}
		req.Header.Set("User-Agent", PiHTTPAgent)
		resp, err := c.Do(req)
		if err != nil {
			r.Err = fmt.Errorf("GET %s: %w", u, err)
			return r
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			r.Err = fmt.Errorf("GET %s: %s, %d bytes, %v; want 200", u, resp.Status, len(body), err)
			return r
		}
		want, err := os.ReadFile(filepath.Join(pi.src, dir, f))
		if err != nil {
			r.Err = err
			return r
		}
		if !bytes.Equal(body, want) {
			r.Err = fmt.Errorf("GET %s: %d bytes (sha256 %.12s), want the tree's %d (sha256 %.12s)", u, len(body), lab.SHA256Hex(body), len(want), lab.SHA256Hex(want))
			return r
		}
		got[f] = body
		r.Files++
		r.Bytes += int64(len(body))
	}
	if pub == nil {
		r.Err = checkDigest(got[tree.BootImgName], got[tree.BootSigName])
		return r
	}
	if err := eeprom.VerifySig(got[tree.BootImgName], got[tree.BootSigName], pub); err != nil {
		r.Err = fmt.Errorf("boot.sig: %w", err)
	}
	return r
}

// checkDigest checks boot.sig's sha256 line against boot.img.
func checkDigest(img, sigFile []byte) error {
	sig, err := eeprom.ParseSig(sigFile)
	if err != nil {
		return err
	}
	if sum := sha256.Sum256(img); hex.EncodeToString(sum[:]) != sig.SHA256 {
		return fmt.Errorf("boot.img's sha256 %x is not boot.sig's %s", sum, sig.SHA256)
	}
	return nil
}

// dhcp is the Pi's DISCOVER (and, in full mode, REQUEST), the answer
// checked; it returns the sends it took.
func (pi *Pi) dhcp(deadline time.Time) (tries int, err error) {
	mac, _ := net.ParseMAC(PiMAC)
	disc, err := dhcpv4.NewDiscovery(mac, pi.mods...)
	if err != nil {
		return 0, err
	}
	offer, n, err := pi.exchange(disc, dhcpv4.MessageTypeOffer, deadline)
	tries += n
	if err != nil {
		return tries, fmt.Errorf("DISCOVER: %w", err)
	}
	if got := offer.Options.Get(dhcpv4.OptionVendorSpecificInformation); !bytes.Equal(got, mustHexQuiet(DnsmasqPiOpt43)) {
		return tries, fmt.Errorf("offer option 43 = %x, want the Pi boot menu %s", got, DnsmasqPiOpt43)
	}
	if got := offer.Options.Get(dhcpv4.OptionClientMachineIdentifier); !bytes.Equal(got, mustHexQuiet(PiOpt97)) {
		return tries, fmt.Errorf("offer option 97 = %x, want %s echoed", got, PiOpt97)
	}
	if !pi.full {
		if !offer.YourIPAddr.IsUnspecified() {
			return tries, fmt.Errorf("proxy offer with address %v", offer.YourIPAddr)
		}
		return tries, nil
	}
	if !offer.YourIPAddr.Equal(net.ParseIP(pi.addr)) {
		return tries, fmt.Errorf("offer yiaddr %v, want the inventory's %s", offer.YourIPAddr, pi.addr)
	}
	req, err := dhcpv4.NewRequestFromOffer(offer, pi.mods...)
	if err != nil {
		return tries, err
	}
	ack, n, err := pi.exchange(req, dhcpv4.MessageTypeAck, deadline)
	tries += n
	if err != nil {
		return tries, fmt.Errorf("REQUEST: %w", err)
	}
	if !ack.YourIPAddr.Equal(net.ParseIP(pi.addr)) {
		return tries, fmt.Errorf("ACK yiaddr %v, want %s", ack.YourIPAddr, pi.addr)
	}
	return tries, nil
}

// tftp is the Pi's TFTP sequence: the size probe, the fetch list
// byte-exact, the ERROR for pieeprom.sig.
func (pi *Pi) tftp(deadline time.Time, r *PiResult) {
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
		return
	}
	res, err := get(probe, PiSerial+"/start4.elf")
	if err != nil || res.Tsize() != st.Size() {
		r.Err = fmt.Errorf("size probe %s/start4.elf: %v, OACK %v ERROR %d %q; want tsize %d", PiSerial, err, res.OACK, res.ErrCode, res.ErrMsg, st.Size())
		return
	}
	for _, f := range pi.files {
		want, err := os.ReadFile(filepath.Join(pi.src, f))
		if err != nil {
			r.Err = err
			return
		}
		res, err := get(pc, PiSerial+"/"+f)
		if err != nil || res.ErrCode != -1 {
			r.Err = fmt.Errorf("tftp %s/%s: %v, ERROR %d %q", PiSerial, f, err, res.ErrCode, res.ErrMsg)
			return
		}
		if !bytes.Equal(res.Data, want) {
			r.Err = fmt.Errorf("tftp %s/%s: %d bytes (sha256 %.12s), want %d (sha256 %.12s)", PiSerial, f, len(res.Data), lab.SHA256Hex(res.Data), len(want), lab.SHA256Hex(want))
			return
		}
		r.Files++
		r.Bytes += int64(len(res.Data))
	}
	if res, err := get(pc, PiSerial+"/pieeprom.sig"); err != nil || res.ErrCode != 1 {
		r.Err = fmt.Errorf("tftp %s/pieeprom.sig: %v, ERROR %d %q; want ERROR 1", PiSerial, err, res.ErrCode, res.ErrMsg)
	}
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
