//go:build linux

// Package netup brings up IPv4 networking for ramboot's init: it sets the
// wired links up, waits (bounded) for a carrier, runs DHCPv4 on a raw socket
// (github.com/insomniacslk/dhcp/dhcpv4/nclient4) and applies the lease:
// address, default route, /etc/resolv.conf and host name.
//
// Besides the usual options it asks for ramboot's private option 224 (a
// boot URL or script) and understands proxyDHCP: after the first OFFER it
// keeps collecting offers for Config.OfferWindow, takes the address from
// an ordinary offer (yiaddr != 0) and option 224 from the ACK or, if the
// ACK lacks it, from whichever offer carried it, e.g. a proxyDHCP
// server's (yiaddr 0.0.0.0).
//
// dnsmasq in proxy mode (--dhcp-range=<net>,proxy) answers only when PXE
// is enabled (--pxe-prompt or --pxe-service), only to clients whose vendor
// class (option 60) starts with "PXEClient" and that send option 93, and
// its reply carries only PXE fields: --dhcp-option=224,... is NOT sent.
// dnsmasq 2.91 added --dhcp-option-pxe=224,... for that; with 2.90
// (Debian 12) a proxy can only pass a URL as the boot file
// (--dhcp-boot=<url>,,<server>), which Result.BootFile reports. Set
// Config.VendorClass to "PXEClient:ramboot" on such networks; Up then
// also sends option 93.
package netup

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Defaults for the zero values of Config.
const (
	DefaultLinkTimeout    = 10 * time.Second
	DefaultCarrierTimeout = 10 * time.Second
	DefaultDHCPTimeout    = 15 * time.Second
	DefaultOfferWindow    = 1500 * time.Millisecond
	DefaultVendorClass    = "ramboot"
)

// Config says which links to bring up and how; the zero value works.
type Config struct {
	// Interfaces to try, in parallel. Empty means every wired Ethernet
	// interface: physical NICs and veth (for tests); not lo, wireless,
	// bridges, bonds, VLANs, tun/tap or other virtual links.
	Interfaces []string
	// LinkTimeout bounds the wait for a wired interface to appear when
	// there is none yet: USB Ethernet (a Pi 3's, a USB adapter's)
	// registers only after the USB bus has enumerated, a second or two
	// after its driver loads (default 10s).
	LinkTimeout time.Duration
	// CarrierTimeout bounds the wait for a carrier after setting a link
	// up (default 10s).
	CarrierTimeout time.Duration
	// DHCPTimeout bounds the whole DHCP exchange on one link, retries
	// included, counted from when it has a carrier (default 15s).
	DHCPTimeout time.Duration
	// OfferWindow is how long offers are still collected after the first
	// one, so that a proxyDHCP offer and an ordinary one can both be seen
	// (default 1.5s).
	OfferWindow time.Duration
	// VendorClass is sent as option 60 (default "ramboot"). dnsmasq's
	// proxyDHCP mode only answers a class starting with "PXEClient".
	VendorClass string
	// Log receives progress and non-fatal problems; nil discards them.
	// Calls made by one Up (or Renew, KeepRenewed) are serialized.
	Log func(format string, args ...any)

	// The apply steps. nil means the default, which changes the running
	// system; tests swap them.

	// ConfigureLink sets the address and the default route (default:
	// netlink AddrReplace + RouteReplace). A failure fails Up.
	ConfigureLink func(iface string, lc LinkConfig) error
	// WriteResolvConf writes the resolv.conf content (default: to
	// /etc/resolv.conf). Not called when the lease has neither DNS
	// servers nor a domain. A failure is logged.
	WriteResolvConf func(content []byte) error
	// SetHostname sets the host name from option 12 (default:
	// sethostname(2)). Not called when the lease has none. A failure is
	// logged.
	SetHostname func(name string) error
}

// Result is the lease that Up applied.
type Result struct {
	Interface  string
	MAC        net.HardwareAddr
	IP         net.IPNet // address and prefix
	Router     net.IP    // nil if the server sent none
	DNS        []net.IP
	NTP        []net.IP
	Hostname   string
	Domain     string   // option 15
	Search     []string // option 119, else Domain
	ServerID   net.IP   // the DHCP server that leased the address
	NextServer net.IP   // siaddr, nil if 0.0.0.0
	BootFile   string   // option 67, else the file field
	// Option224 is ramboot's private option, trailing NULs removed; ""
	// if no server sent it. Option224From is the server identifier of
	// the packet it came from (the proxyDHCP server's, if it came from a
	// proxy offer).
	Option224     string
	Option224From net.IP
	Lease         time.Duration

	link LinkConfig  // what apply sets
	st   *leaseState // for Renew; nil in a Result built by hand
}

func (c Config) withDefaults() Config {
	if c.LinkTimeout <= 0 {
		c.LinkTimeout = DefaultLinkTimeout
	}
	if c.CarrierTimeout <= 0 {
		c.CarrierTimeout = DefaultCarrierTimeout
	}
	if c.DHCPTimeout <= 0 {
		c.DHCPTimeout = DefaultDHCPTimeout
	}
	if c.OfferWindow <= 0 {
		c.OfferWindow = DefaultOfferWindow
	}
	if c.VendorClass == "" {
		c.VendorClass = DefaultVendorClass
	}
	if c.Log == nil {
		c.Log = func(string, ...any) {}
	} else {
		// Links run in parallel: serialize the caller's Log.
		var mu sync.Mutex
		log := c.Log
		c.Log = func(f string, a ...any) {
			mu.Lock()
			defer mu.Unlock()
			log(f, a...)
		}
	}
	if c.ConfigureLink == nil {
		c.ConfigureLink = configureLink
	}
	if c.WriteResolvConf == nil {
		c.WriteResolvConf = writeResolvConf
	}
	if c.SetHostname == nil {
		c.SetHostname = func(name string) error { return unix.Sethostname([]byte(name)) }
	}
	return c
}

// Up brings the network up: links up, carrier, DHCP on every link with a
// carrier (in parallel, the first complete lease wins), then applies the
// lease. On failure the error says, in plain words, what happened on each
// link.
func Up(ctx context.Context, cfg Config) (*Result, error) {
	cfg = cfg.withDefaults()
	ifaces := cfg.Interfaces
	if len(ifaces) == 0 {
		var err error
		if ifaces, err = waitInterfaces(ctx, cfg); err != nil {
			return nil, err
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type outcome struct {
		res *Result
		err error
	}
	ch := make(chan outcome, len(ifaces))
	var wg sync.WaitGroup
	for _, name := range ifaces {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var o outcome
			func() {
				defer func() {
					if r := recover(); r != nil {
						o = outcome{err: fmt.Errorf("%s: BUG: %v", name, r)}
					}
				}()
				o.res, o.err = upLink(ctx, cfg, name)
			}()
			ch <- o
		}()
	}
	var win *Result
	var errs []error
	for range ifaces {
		o := <-ch
		if o.err == nil {
			win = o.res
			cancel() // stop the other links
			break
		}
		errs = append(errs, o.err)
	}
	wg.Wait() // the others return promptly once ctx is canceled
	if win == nil {
		if len(errs) == 1 {
			return nil, errs[0]
		}
		return nil, errors.Join(errs...)
	}
	return win, apply(cfg, win)
}

// upLink sets one link up, waits for its carrier and gets a lease on it.
func upLink(ctx context.Context, cfg Config, name string) (*Result, error) {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("%s: no such network interface (%v)", name, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("%s: cannot set the link up: %v", name, err)
	}
	start := time.Now()
	if err := waitCarrier(ctx, link.Attrs().Index, cfg.CarrierTimeout); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w", name, ctx.Err())
		}
		err = fmt.Errorf("%s: no carrier after %v (is the cable in?)", name, cfg.CarrierTimeout)
		cfg.Log("%v", err)
		return nil, err
	}
	cfg.Log("%s: carrier after %v", name, time.Since(start).Round(time.Millisecond))
	return dhcp(ctx, cfg, name)
}

// carrierPoll is how often waitCarrier looks at the link.
const carrierPoll = 25 * time.Millisecond

func waitCarrier(ctx context.Context, index int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for i := 0; i <= int(timeout/carrierPoll)+1; i++ {
		l, err := netlink.LinkByIndex(index)
		if err == nil && l.Attrs().RawFlags&unix.IFF_LOWER_UP != 0 {
			return nil
		}
		if !time.Now().Before(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(carrierPoll):
		}
	}
	return errors.New("no carrier")
}

// linkInfo is what pickInterfaces needs to know about a link.
type linkInfo struct {
	Name     string
	Type     string // netlink kind: "device" for a NIC, "veth", "bridge", ...
	Encap    string // "ether", "loopback", ...
	Loopback bool
	Wireless bool // has /sys/class/net/X/wireless or phy80211
	MAC      net.HardwareAddr
}

// pickInterfaces chooses the wired Ethernet links, sorted by name.
func pickInterfaces(links []linkInfo) []string {
	var out []string
	for _, l := range links {
		if l.Loopback || l.Wireless || l.Encap != "ether" || len(l.MAC) != 6 {
			continue
		}
		if l.Type != "device" && l.Type != "veth" {
			continue
		}
		out = append(out, l.Name)
	}
	slices.Sort(out)
	return out
}

// sysClassNet is where wiredInterfaces looks for wireless markers.
var sysClassNet = "/sys/class/net"

func wiredInterfaces() ([]string, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("cannot list network interfaces: %v", err)
	}
	var infos []linkInfo
	var all []string
	for _, l := range links {
		a := l.Attrs()
		all = append(all, a.Name)
		infos = append(infos, linkInfo{
			Name:     a.Name,
			Type:     l.Type(),
			Encap:    a.EncapType,
			Loopback: a.Flags&net.FlagLoopback != 0,
			Wireless: exists(filepath.Join(sysClassNet, a.Name, "wireless")) ||
				exists(filepath.Join(sysClassNet, a.Name, "phy80211")),
			MAC: a.HardwareAddr,
		})
	}
	names := pickInterfaces(infos)
	if len(names) == 0 {
		return nil, fmt.Errorf("no wired network interface found (have: %s); is the network driver loaded?", strings.Join(all, ", "))
	}
	return names, nil
}

// waitInterfaces is wiredInterfaces, waiting up to cfg.LinkTimeout for
// the first one to appear.
func waitInterfaces(ctx context.Context, cfg Config) ([]string, error) {
	deadline := time.Now().Add(cfg.LinkTimeout)
	start := time.Now()
	for logged := false; ; {
		names, err := wiredInterfaces()
		if err == nil {
			if logged {
				cfg.Log("%s appeared after %v", strings.Join(names, ", "), time.Since(start).Round(time.Millisecond))
			}
			return names, nil
		}
		if !time.Now().Before(deadline) {
			return nil, fmt.Errorf("%v (waited %v)", err, cfg.LinkTimeout)
		}
		if !logged {
			cfg.Log("no wired interface yet; waiting up to %v (USB Ethernet appears after the USB bus enumerates)", cfg.LinkTimeout)
			logged = true
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
