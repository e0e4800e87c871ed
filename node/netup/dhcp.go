//go:build linux

package netup

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	mrand "math/rand/v2"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/insomniacslk/dhcp/iana"
)

// Option224 is ramboot's private DHCP option.
const Option224 = dhcpv4.GenericOptionCode(224)

// requestedOptions is the parameter request list (option 55).
var requestedOptions = []dhcpv4.OptionCode{
	dhcpv4.OptionSubnetMask,          // 1
	dhcpv4.OptionRouter,              // 3
	dhcpv4.OptionDomainNameServer,    // 6
	dhcpv4.OptionHostName,            // 12
	dhcpv4.OptionDomainName,          // 15
	dhcpv4.OptionBroadcastAddress,    // 28
	dhcpv4.OptionNTPServers,          // 42
	dhcpv4.OptionIPAddressLeaseTime,  // 51
	dhcpv4.OptionServerIdentifier,    // 54
	dhcpv4.OptionTFTPServerName,      // 66
	dhcpv4.OptionBootfileName,        // 67
	dhcpv4.OptionDNSDomainSearchList, // 119
	Option224,                        // 224
}

var (
	errNoOffer     = errors.New("no DHCP offer")
	errOnlyProxy   = errors.New("got only proxyDHCP offers, no address: is there a DHCP server on this network?")
	errNoAddrInAck = errors.New("the DHCP server acknowledged without an address")
)

// retransmit is the wait before each retransmission of a DISCOVER or
// REQUEST; the last value repeats. Everything is bounded by DHCPTimeout.
var retransmit = []time.Duration{2 * time.Second, 4 * time.Second}

// maxSends bounds the transmissions of one message.
const maxSends = 30

func modifiers(cfg Config) []dhcpv4.Modifier {
	m := []dhcpv4.Modifier{
		dhcpv4.WithRequestedOptions(requestedOptions...),
		dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(nclient4.MaxMessageSize)),
	}
	if cfg.VendorClass != "" {
		m = append(m, dhcpv4.WithOption(dhcpv4.OptClassIdentifier(cfg.VendorClass)))
	}
	if strings.HasPrefix(cfg.VendorClass, "PXEClient") {
		// dnsmasq's proxyDHCP answers only PXE clients that send their
		// architecture (option 93, RFC 4578).
		m = append(m, dhcpv4.WithOption(dhcpv4.OptClientArch(clientArch(runtime.GOARCH))))
	}
	return m
}

// clientArch is the RFC 4578 architecture code sent as option 93 by a
// "PXEClient" vendor class: the EFI code of the CPU architecture.
func clientArch(goarch string) iana.Arch {
	switch goarch {
	case "arm64":
		return iana.EFI_ARM64
	case "arm":
		return iana.EFI_ARM32
	case "amd64":
		return iana.EFI_X86_64
	case "386":
		return iana.EFI_IA32
	case "riscv64":
		return iana.EFI_RISCV64
	}
	return iana.INTEL_X86PC
}

// newClient opens a raw-socket DHCP client on iface. Timeouts and
// retransmissions are done by sendRetrying, so the client tries once and
// waits as long as the context lets it.
func newClient(iface string, cfg Config) (*nclient4.Client, error) {
	c, err := nclient4.New(iface,
		nclient4.WithTimeout(cfg.DHCPTimeout+time.Minute),
		nclient4.WithRetry(1))
	if err != nil {
		return nil, fmt.Errorf("%s: cannot open a DHCP socket: %v", iface, err)
	}
	return c, nil
}

// sendRetrying sends p and waits for a packet that match accepts,
// retransmitting on the retransmit schedule until ctx ends.
func sendRetrying(ctx context.Context, c *nclient4.Client, p *dhcpv4.DHCPv4, match nclient4.Matcher) (*dhcpv4.DHCPv4, error) {
	for i := 0; i < maxSends; i++ {
		wait := retransmit[min(i, len(retransmit)-1)]
		tctx, cancel := context.WithTimeout(ctx, wait)
		resp, err := c.SendAndRead(tctx, c.RemoteAddr(), p, match)
		cancel()
		if err == nil {
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nclient4.ErrNoResponse) {
			return nil, err
		}
	}
	return nil, nclient4.ErrNoResponse
}

// collectOffers broadcasts discover and collects OFFERs: an offer with
// both an address and option 224 ends it at once; otherwise after the
// first one it waits window longer; if by then no offer has an address it stops
// at the first one that has. It returns what it got when ctx ends.
func collectOffers(ctx context.Context, c *nclient4.Client, discover *dhcpv4.DHCPv4, window time.Duration, log func(string, ...any), iface string) ([]*dhcpv4.DHCPv4, error) {
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	var (
		mu       sync.Mutex
		offers   []*dhcpv4.DHCPv4
		timer    *time.Timer
		windowUp bool
	)
	match := func(p *dhcpv4.DHCPv4) bool {
		if p.MessageType() != dhcpv4.MessageTypeOffer {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		offers = append(offers, p)
		log("%s: %s", iface, describeOffer(p))
		if isAddressOffer(p) && len(p.Options.Get(Option224)) > 0 {
			// An address and option 224 from one server: nothing a
			// proxy could add, so no need to wait for one.
			return true
		}
		if timer == nil {
			timer = time.AfterFunc(window, func() {
				mu.Lock()
				windowUp = true
				done := slices.ContainsFunc(offers, isAddressOffer)
				mu.Unlock()
				if done {
					stop()
				}
			})
		}
		return windowUp && isAddressOffer(p)
	}
	_, err := sendRetrying(wctx, c, discover, match)
	mu.Lock()
	if timer != nil {
		timer.Stop()
	}
	got := offers
	mu.Unlock()
	if err != nil && ctx.Err() == nil && wctx.Err() != nil {
		err = nil // the window ended with an address offer
	}
	return got, err
}

func describeOffer(p *dhcpv4.DHCPv4) string {
	var b strings.Builder
	if isAddressOffer(p) {
		fmt.Fprintf(&b, "offer of %v from %v", p.YourIPAddr, serverID(p))
	} else {
		fmt.Fprintf(&b, "proxyDHCP offer (no address) from %v", serverID(p))
	}
	if v := decodeOption224(p.Options.Get(Option224)); v != "" {
		fmt.Fprintf(&b, " with option 224 %q", v)
	}
	return b.String()
}

// dhcp runs DISCOVER/OFFER(s)/REQUEST/ACK on iface, which is up with a
// carrier, and returns the lease (not yet applied).
func dhcp(ctx context.Context, cfg Config, iface string) (*Result, error) {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, cfg.DHCPTimeout)
	defer cancel()
	c, err := newClient(iface, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	mods := modifiers(cfg)
	mac := c.InterfaceAddr()

	timeoutErr := func(offers []*dhcpv4.DHCPv4) error {
		if parent.Err() != nil {
			return fmt.Errorf("%s: %w", iface, parent.Err())
		}
		if _, _, _, err := chooseOffers(offers); errors.Is(err, errOnlyProxy) {
			return fmt.Errorf("%s: %w (waited %v)", iface, errOnlyProxy, cfg.DHCPTimeout)
		}
		return fmt.Errorf("no DHCP answer on %s after %v", iface, cfg.DHCPTimeout)
	}

	var lastErr error
	var allOffers []*dhcpv4.DHCPv4
	// A NAK sends us back to DISCOVER; a few rounds at most.
	for round := 0; round < 3; round++ {
		discover := newDiscovery(mac, mods...)
		cfg.Log("%s: DHCP DISCOVER (vendor class %q)", iface, cfg.VendorClass)
		offers, err := collectOffers(ctx, c, discover, cfg.OfferWindow, cfg.Log, iface)
		allOffers = append(allOffers, offers...)
		if err != nil {
			if lastErr != nil && parent.Err() == nil {
				return nil, lastErr
			}
			return nil, timeoutErr(allOffers)
		}
		addr, opt224, from, err := chooseOffers(offers)
		if err != nil { // cannot happen: collectOffers ends early only with an address offer
			return nil, fmt.Errorf("%s: %w", iface, err)
		}
		req := newRequestFromOffer(addr, mods...)
		sid := serverID(addr)
		cfg.Log("%s: DHCP REQUEST %v from %v", iface, addr.YourIPAddr, sid)
		ack, err := sendRetrying(ctx, c, req, nclient4.IsAll(
			nclient4.IsCorrectServer(sid),
			nclient4.IsMessageType(dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak)))
		if err != nil {
			if parent.Err() != nil {
				return nil, fmt.Errorf("%s: %w", iface, parent.Err())
			}
			return nil, fmt.Errorf("%s: DHCP server %v offered %v but did not answer our REQUEST within %v",
				iface, sid, addr.YourIPAddr, cfg.DHCPTimeout)
		}
		if ack.MessageType() == dhcpv4.MessageTypeNak {
			lastErr = fmt.Errorf("%s: DHCP server %v refused our REQUEST for %v (NAK %q)", iface, sid, addr.YourIPAddr, ack.Message())
			cfg.Log("%v; starting over", lastErr)
			continue
		}
		res, err := resultFrom(iface, mac, ack, opt224, from, offers)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", iface, err)
		}
		res.st = &leaseState{lease: &nclient4.Lease{Offer: addr, ACK: ack, CreationTime: time.Now()}}
		cfg.Log("%s: lease %v from %v for %v, router %v, option 224 %q (from %v)",
			iface, &res.IP, res.ServerID, res.Lease, res.Router, res.Option224, res.Option224From)
		return res, nil
	}
	return nil, lastErr
}

// packet builds a client message as dhcpv4.New does, but with a
// transaction id that never waits for the kernel's entropy. dhcpv4.New
// reads crypto/rand, which blocks until the kernel's random number
// generator is seeded: on a PC with no hardware RNG and no firmware seed
// (legacy BIOS under QEMU, some older boards) that takes minutes, and
// DHCP would wait with it. The id only has to differ between clients and
// boots; math/rand/v2 is seeded by the Go runtime from the kernel's
// AT_RANDOM bytes, which never block.
func packet(mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	d := &dhcpv4.DHCPv4{
		OpCode:        dhcpv4.OpcodeBootRequest,
		HWType:        iana.HWTypeEthernet,
		ClientHWAddr:  make(net.HardwareAddr, 6),
		TransactionID: newXID(),
		ClientIPAddr:  net.IPv4zero,
		YourIPAddr:    net.IPv4zero,
		ServerIPAddr:  net.IPv4zero,
		GatewayIPAddr: net.IPv4zero,
		Options:       make(dhcpv4.Options),
	}
	for _, m := range mods {
		m(d)
	}
	return d
}

// newXID is a transaction id from math/rand/v2 (see packet).
func newXID() dhcpv4.TransactionID {
	var xid dhcpv4.TransactionID
	binary.BigEndian.PutUint32(xid[:], mrand.Uint32())
	return xid
}

// baseOptions are the options dhcpv4's constructors ask for.
var baseOptions = dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter,
	dhcpv4.OptionDomainName, dhcpv4.OptionDomainNameServer)

// newDiscovery is dhcpv4.NewDiscovery without the entropy wait.
func newDiscovery(mac net.HardwareAddr, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	return packet(dhcpv4.PrependModifiers(mods,
		dhcpv4.WithHwAddr(mac), baseOptions, dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover))...)
}

// newRequestFromOffer is dhcpv4.NewRequestFromOffer without the entropy
// wait (the REQUEST keeps the offer's transaction id).
func newRequestFromOffer(offer *dhcpv4.DHCPv4, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	return packet(dhcpv4.PrependModifiers(mods,
		dhcpv4.WithReply(offer),
		dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithClientIP(offer.ClientIPAddr),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr)),
		dhcpv4.WithOptionCopied(offer, dhcpv4.OptionServerIdentifier),
		baseOptions)...)
}

// newRenewFromAck is dhcpv4.NewRenewFromAck with a fresh transaction id
// and without the entropy wait.
func newRenewFromAck(ack *dhcpv4.DHCPv4, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	return packet(append(dhcpv4.PrependModifiers(mods,
		dhcpv4.WithReply(ack),
		dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithClientIP(ack.YourIPAddr),
		dhcpv4.WithBroadcast(false),
		baseOptions), dhcpv4.WithTransactionID(newXID()))...)
}

// isAddressOffer tells an ordinary offer from a proxyDHCP one.
func isAddressOffer(p *dhcpv4.DHCPv4) bool {
	ip := p.YourIPAddr.To4()
	return ip != nil && !ip.Equal(net.IPv4zero)
}

// serverID is the server identifier (option 54), else siaddr, else nil.
func serverID(p *dhcpv4.DHCPv4) net.IP {
	if ip := p.ServerIdentifier(); ip != nil && !ip.IsUnspecified() {
		return ip
	}
	if ip := p.ServerIPAddr; ip != nil && !ip.IsUnspecified() {
		return ip
	}
	return nil
}

// decodeOption224 reads option 224 as a string without trailing NULs.
func decodeOption224(b []byte) string {
	return strings.TrimRight(string(b), "\x00")
}

// chooseOffers picks, among the OFFERs collected for one DISCOVER, the
// one whose address to request and option 224. The address offer is the
// first ordinary offer (yiaddr != 0) carrying option 224, else the first
// ordinary offer. Option 224 is the address offer's, else that of the
// first offer carrying it (typically a proxyDHCP offer); from is the
// server identifier of the offer it came from. Packets that are not
// OFFERs are ignored. err is errOnlyProxy when only proxyDHCP offers came,
// errNoOffer when none did.
func chooseOffers(offers []*dhcpv4.DHCPv4) (addr *dhcpv4.DHCPv4, opt224 string, from net.IP, err error) {
	var proxies int
	for _, o := range offers {
		if o == nil || o.MessageType() != dhcpv4.MessageTypeOffer {
			continue
		}
		if !isAddressOffer(o) {
			proxies++
			continue
		}
		if addr == nil || (!has224(addr) && has224(o)) {
			addr = o
		}
	}
	if addr == nil {
		if proxies > 0 {
			return nil, "", nil, errOnlyProxy
		}
		return nil, "", nil, errNoOffer
	}
	if has224(addr) {
		return addr, decodeOption224(addr.Options.Get(Option224)), serverID(addr), nil
	}
	for _, o := range offers {
		if o != nil && o.MessageType() == dhcpv4.MessageTypeOffer && has224(o) {
			return addr, decodeOption224(o.Options.Get(Option224)), serverID(o), nil
		}
	}
	return addr, "", nil, nil
}

func has224(p *dhcpv4.DHCPv4) bool {
	return decodeOption224(p.Options.Get(Option224)) != ""
}

// resultFrom builds the Result from the ACK; opt224/from come from
// chooseOffers and are used when the ACK has no option 224. Boot server
// and file fall back to the offers (a proxy's) when the ACK has none.
func resultFrom(iface string, mac net.HardwareAddr, ack *dhcpv4.DHCPv4, opt224 string, from net.IP, offers []*dhcpv4.DHCPv4) (*Result, error) {
	lc, err := linkConfig(ack)
	if err != nil {
		return nil, err
	}
	r := &Result{
		Interface:     iface,
		MAC:           mac,
		IP:            lc.Addr,
		Router:        lc.Gateway,
		DNS:           ack.DNS(),
		NTP:           ack.NTPServers(),
		Hostname:      strings.TrimRight(ack.HostName(), "\x00"),
		Domain:        strings.TrimRight(ack.DomainName(), "\x00"),
		ServerID:      serverID(ack),
		Option224:     opt224,
		Option224From: from,
		Lease:         ack.IPAddressLeaseTime(0),
		link:          lc,
	}
	if v := decodeOption224(ack.Options.Get(Option224)); v != "" {
		r.Option224, r.Option224From = v, serverID(ack)
	}
	// No host name from the address server: take the one a proxy sent
	// (ramboot serve names nodes from its inventory in proxy mode).
	for _, p := range offers {
		if r.Hostname != "" {
			break
		}
		if p != nil && !isAddressOffer(p) {
			r.Hostname = strings.TrimRight(p.HostName(), "\x00")
		}
	}
	if l := ack.DomainSearch(); l != nil && len(l.Labels) > 0 {
		r.Search = l.Labels
	} else if r.Domain != "" {
		r.Search = []string{r.Domain}
	}
	// Boot server and file as a pair from one packet: the ACK, else the
	// first offer with a boot file (e.g. a proxyDHCP offer).
	for _, p := range append([]*dhcpv4.DHCPv4{ack}, offers...) {
		if p == nil {
			continue
		}
		f := strings.TrimRight(p.BootFileNameOption(), "\x00")
		if f == "" {
			f = strings.TrimRight(p.BootFileName, "\x00")
		}
		if f != "" {
			r.BootFile, r.NextServer = f, nonZero(p.ServerIPAddr)
			break
		}
	}
	if r.BootFile == "" {
		r.NextServer = nonZero(ack.ServerIPAddr)
	}
	return r, nil
}

func nonZero(ip net.IP) net.IP {
	if ip == nil || ip.IsUnspecified() {
		return nil
	}
	return ip
}
