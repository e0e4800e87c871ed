//go:build linux

package netup

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/insomniacslk/dhcp/iana"
)

var (
	dhcpSrv  = net.IPv4(192, 0, 2, 1).To4()
	proxySrv = net.IPv4(192, 0, 2, 2).To4()
	otherSrv = net.IPv4(198, 51, 100, 1).To4()
	mac      = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
)

// pkt builds a server reply of type mt from server sid offering yiaddr.
func pkt(t *testing.T, mt dhcpv4.MessageType, sid net.IP, yiaddr string, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	base := []dhcpv4.Modifier{
		dhcpv4.WithHwAddr(mac),
		dhcpv4.WithMessageType(mt),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(sid)),
	}
	if yiaddr != "" {
		base = append(base, dhcpv4.WithYourIP(net.ParseIP(yiaddr)))
	}
	p, err := dhcpv4.New(append(base, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	p.OpCode = dhcpv4.OpcodeBootReply
	// Round-trip through the wire format, as received packets are.
	q, err := dhcpv4.FromBytes(p.ToBytes())
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func with224(v string) dhcpv4.Modifier { return dhcpv4.WithGeneric(Option224, []byte(v)) }

func TestChooseOffers(t *testing.T) {
	offer := dhcpv4.MessageTypeOffer
	plain := pkt(t, offer, dhcpSrv, "192.0.2.100")
	plain224 := pkt(t, offer, dhcpSrv, "192.0.2.100", with224("http://192.0.2.1/a"))
	other224 := pkt(t, offer, otherSrv, "198.51.100.7", with224("http://198.51.100.1/b"))
	proxy := pkt(t, offer, proxySrv, "", with224("http://192.0.2.2/p\x00"))
	proxyNo224 := pkt(t, offer, otherSrv, "")
	ack := pkt(t, dhcpv4.MessageTypeAck, dhcpSrv, "192.0.2.100", with224("ack"))

	for _, tc := range []struct {
		name   string
		offers []*dhcpv4.DHCPv4
		addr   *dhcpv4.DHCPv4
		opt    string
		from   net.IP
		err    error
	}{
		{"ordinary with 224", []*dhcpv4.DHCPv4{plain224}, plain224, "http://192.0.2.1/a", dhcpSrv, nil},
		{"ordinary without 224", []*dhcpv4.DHCPv4{plain}, plain, "", nil, nil},
		{"proxy first", []*dhcpv4.DHCPv4{proxy, plain}, plain, "http://192.0.2.2/p", proxySrv, nil},
		{"proxy second", []*dhcpv4.DHCPv4{plain, proxy}, plain, "http://192.0.2.2/p", proxySrv, nil},
		{"proxy without 224 skipped", []*dhcpv4.DHCPv4{proxyNo224, plain, proxy}, plain, "http://192.0.2.2/p", proxySrv, nil},
		{"own 224 beats the proxy's", []*dhcpv4.DHCPv4{proxy, plain224}, plain224, "http://192.0.2.1/a", dhcpSrv, nil},
		{"ordinary offer with 224 preferred", []*dhcpv4.DHCPv4{plain, other224}, other224, "http://198.51.100.1/b", otherSrv, nil},
		{"first ordinary when none has 224", []*dhcpv4.DHCPv4{plain, pkt(t, offer, otherSrv, "198.51.100.7")}, plain, "", nil, nil},
		{"non-offers ignored", []*dhcpv4.DHCPv4{ack, nil, plain}, plain, "", nil, nil},
		{"only proxies", []*dhcpv4.DHCPv4{proxy, proxyNo224}, nil, "", nil, errOnlyProxy},
		{"nothing", nil, nil, "", nil, errNoOffer},
		{"only an ack", []*dhcpv4.DHCPv4{ack}, nil, "", nil, errNoOffer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, opt, from, err := chooseOffers(tc.offers)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if addr != tc.addr {
				t.Errorf("address offer = %v, want %v", addr, tc.addr)
			}
			if opt != tc.opt || !from.Equal(tc.from) {
				t.Errorf("option 224 %q from %v, want %q from %v", opt, from, tc.opt, tc.from)
			}
		})
	}
}

func TestErrorWords(t *testing.T) {
	if want := "got only proxyDHCP offers, no address: is there a DHCP server on this network?"; errOnlyProxy.Error() != want {
		t.Errorf("errOnlyProxy = %q", errOnlyProxy)
	}
}

func TestDecodeOption224(t *testing.T) {
	for in, want := range map[string]string{
		"":                     "",
		"\x00":                 "",
		"http://x/boot.ipxe":   "http://x/boot.ipxe",
		"http://x/a\x00\x00":   "http://x/a",
		"shell\x00tail\x00":    "shell\x00tail",
		"nfs:192.0.2.1:/srv/r": "nfs:192.0.2.1:/srv/r",
	} {
		if got := decodeOption224([]byte(in)); got != want {
			t.Errorf("decodeOption224(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLinkConfig(t *testing.T) {
	ack := dhcpv4.MessageTypeAck
	mask := func(s string) dhcpv4.Modifier {
		return dhcpv4.WithNetmask(net.IPMask(net.ParseIP(s).To4()))
	}
	router := func(s ...string) dhcpv4.Modifier {
		var ips []net.IP
		for _, x := range s {
			ips = append(ips, net.ParseIP(x))
		}
		return dhcpv4.WithRouter(ips...)
	}
	ipnet := func(s string) net.IPNet {
		ip, n, _ := net.ParseCIDR(s)
		return net.IPNet{IP: ip.To4(), Mask: n.Mask}
	}
	for _, tc := range []struct {
		name string
		p    *dhcpv4.DHCPv4
		want LinkConfig
		err  string
	}{
		{"usual", pkt(t, ack, dhcpSrv, "192.0.2.100", mask("255.255.255.0"), router("192.0.2.1")),
			LinkConfig{Addr: ipnet("192.0.2.100/24"), Broadcast: net.ParseIP("192.0.2.255").To4(), Gateway: dhcpSrv}, ""},
		{"broadcast option", pkt(t, ack, dhcpSrv, "192.0.2.100", mask("255.255.255.128"),
			dhcpv4.WithOption(dhcpv4.OptBroadcastAddress(net.ParseIP("192.0.2.127")))),
			LinkConfig{Addr: ipnet("192.0.2.100/25"), Broadcast: net.ParseIP("192.0.2.127").To4()}, ""},
		{"no mask: classful", pkt(t, ack, dhcpSrv, "198.51.100.9"),
			LinkConfig{Addr: ipnet("198.51.100.9/24"), Broadcast: net.ParseIP("198.51.100.255").To4()}, ""},
		{"router outside the subnet: onlink", pkt(t, ack, dhcpSrv, "192.0.2.100", mask("255.255.255.255"), router("192.0.2.1")),
			LinkConfig{Addr: ipnet("192.0.2.100/32"), Broadcast: net.ParseIP("192.0.2.100").To4(), Gateway: dhcpSrv, GatewayOnLink: true}, ""},
		{"zero and own routers skipped", pkt(t, ack, dhcpSrv, "192.0.2.100", mask("255.255.255.0"), router("0.0.0.0", "192.0.2.100", "192.0.2.254")),
			LinkConfig{Addr: ipnet("192.0.2.100/24"), Broadcast: net.ParseIP("192.0.2.255").To4(), Gateway: net.ParseIP("192.0.2.254").To4()}, ""},
		{"no address", pkt(t, ack, dhcpSrv, ""), LinkConfig{}, "without an address"},
		{"bad mask", pkt(t, ack, dhcpSrv, "192.0.2.100", mask("255.0.255.0")), LinkConfig{}, "unusable subnet mask 255.0.255.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := linkConfig(tc.p)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("linkConfig (-want +got):\n%s", d)
			}
		})
	}
}

func TestResultFrom(t *testing.T) {
	full := pkt(t, dhcpv4.MessageTypeAck, dhcpSrv, "192.0.2.100",
		dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
		dhcpv4.WithRouter(dhcpSrv),
		dhcpv4.WithDNS(net.ParseIP("192.0.2.53"), net.ParseIP("192.0.2.54")),
		dhcpv4.WithOption(dhcpv4.OptNTPServers(net.ParseIP("192.0.2.123"))),
		dhcpv4.WithOption(dhcpv4.OptHostName("pi7")),
		dhcpv4.WithOption(dhcpv4.OptDomainName("example.test")),
		dhcpv4.WithLeaseTime(3600),
		dhcpv4.WithServerIP(dhcpSrv),
	)
	proxy := pkt(t, dhcpv4.MessageTypeOffer, proxySrv, "", with224("http://192.0.2.2/p"),
		dhcpv4.WithServerIP(proxySrv),
		func(d *dhcpv4.DHCPv4) { d.BootFileName = "http://192.0.2.2/file" })

	r, err := resultFrom("eth0", mac, full, "http://192.0.2.2/p", proxySrv, []*dhcpv4.DHCPv4{proxy})
	if err != nil {
		t.Fatal(err)
	}
	want := &Result{
		Interface:     "eth0",
		MAC:           mac,
		IP:            net.IPNet{IP: net.ParseIP("192.0.2.100").To4(), Mask: net.CIDRMask(24, 32)},
		Router:        dhcpSrv,
		DNS:           []net.IP{net.ParseIP("192.0.2.53").To4(), net.ParseIP("192.0.2.54").To4()},
		NTP:           []net.IP{net.ParseIP("192.0.2.123").To4()},
		Hostname:      "pi7",
		Domain:        "example.test",
		Search:        []string{"example.test"},
		ServerID:      dhcpSrv,
		NextServer:    proxySrv, // paired with the proxy's boot file
		BootFile:      "http://192.0.2.2/file",
		Option224:     "http://192.0.2.2/p",
		Option224From: proxySrv,
		Lease:         time.Hour,
	}
	opts := cmp.Options{cmp.AllowUnexported(Result{}), cmp.Comparer(func(a, b net.IP) bool { return a.Equal(b) }),
		cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".link" || p.Last().String() == ".st" }, cmp.Ignore())}
	if d := cmp.Diff(want, r, opts); d != "" {
		t.Errorf("resultFrom (-want +got):\n%s", d)
	}
	if r.link.Gateway == nil || !r.link.Gateway.Equal(dhcpSrv) {
		t.Errorf("link config gateway = %v", r.link.Gateway)
	}

	// The ACK's own option 224 wins over the offers'; its boot file too;
	// option 119 gives the search list.
	ack224 := pkt(t, dhcpv4.MessageTypeAck, dhcpSrv, "192.0.2.100", with224("from-ack\x00"),
		dhcpv4.WithServerIP(dhcpSrv),
		dhcpv4.WithOption(dhcpv4.OptBootFileName("ack.ipxe")),
		dhcpv4.WithOption(dhcpv4.OptDomainName("example.test")),
		dhcpv4.WithDomainSearchList("a.example.test", "b.example.test"))
	r, err = resultFrom("eth0", mac, ack224, "http://192.0.2.2/p", proxySrv, []*dhcpv4.DHCPv4{proxy})
	if err != nil {
		t.Fatal(err)
	}
	if r.Option224 != "from-ack" || !r.Option224From.Equal(dhcpSrv) {
		t.Errorf("option 224 %q from %v, want the ACK's", r.Option224, r.Option224From)
	}
	if r.BootFile != "ack.ipxe" || !r.NextServer.Equal(dhcpSrv) {
		t.Errorf("boot %v %q, want the ACK's", r.NextServer, r.BootFile)
	}
	if d := cmp.Diff([]string{"a.example.test", "b.example.test"}, r.Search); d != "" {
		t.Errorf("search: %s", d)
	}

	if _, err := resultFrom("eth0", mac, pkt(t, dhcpv4.MessageTypeAck, dhcpSrv, ""), "", nil, nil); !errors.Is(err, errNoAddrInAck) {
		t.Errorf("ACK without address: err = %v", err)
	}
}

func TestResolvConf(t *testing.T) {
	got := string(resolvConf(
		[]net.IP{net.ParseIP("192.0.2.53"), net.ParseIP("192.0.2.54"), net.ParseIP("192.0.2.55"), net.ParseIP("192.0.2.56")},
		[]string{"a.test", "b.test"}))
	want := "# written by ramboot init from DHCP\nsearch a.test b.test\nnameserver 192.0.2.53\nnameserver 192.0.2.54\nnameserver 192.0.2.55\n"
	if got != want {
		t.Errorf("resolvConf:\n%s\nwant:\n%s", got, want)
	}
}

func TestPickInterfaces(t *testing.T) {
	m := net.HardwareAddr{2, 0, 0, 0, 0, 9}
	got := pickInterfaces([]linkInfo{
		{Name: "lo", Type: "device", Encap: "loopback", Loopback: true},
		{Name: "wlan0", Type: "device", Encap: "ether", Wireless: true, MAC: m},
		{Name: "eth1", Type: "device", Encap: "ether", MAC: m},
		{Name: "eth0", Type: "device", Encap: "ether", MAC: m},
		{Name: "veth0", Type: "veth", Encap: "ether", MAC: m},
		{Name: "br0", Type: "bridge", Encap: "ether", MAC: m},
		{Name: "bond0", Type: "bond", Encap: "ether", MAC: m},
		{Name: "eth0.10", Type: "vlan", Encap: "ether", MAC: m},
		{Name: "tap0", Type: "tuntap", Encap: "ether", MAC: m},
		{Name: "dummy0", Type: "dummy", Encap: "ether", MAC: m},
		{Name: "can0", Type: "device", Encap: "can"},
		{Name: "usb0", Type: "device", Encap: "ether"}, // no MAC
	})
	if d := cmp.Diff([]string{"eth0", "eth1", "veth0"}, got); d != "" {
		t.Errorf("pickInterfaces (-want +got):\n%s", d)
	}
}

func TestModifiers(t *testing.T) {
	for _, tc := range []struct {
		vc   string
		arch bool
	}{{"ramboot", false}, {"PXEClient:ramboot", true}} {
		d, err := dhcpv4.NewDiscovery(mac, modifiers(Config{VendorClass: tc.vc})...)
		if err != nil {
			t.Fatal(err)
		}
		for _, code := range []uint8{1, 3, 6, 12, 15, 28, 42, 51, 54, 66, 67, 224} {
			if !d.IsOptionRequested(dhcpv4.GenericOptionCode(code)) {
				t.Errorf("%s: option %d not requested", tc.vc, code)
			}
		}
		if got := d.ClassIdentifier(); got != tc.vc {
			t.Errorf("vendor class %q, want %q", got, tc.vc)
		}
		if has := d.Options.Has(dhcpv4.OptionClientSystemArchitectureType); has != tc.arch {
			t.Errorf("%s: option 93 sent = %v, want %v", tc.vc, has, tc.arch)
		}
	}
	if clientArch("arm64") != iana.EFI_ARM64 || clientArch("amd64") != iana.EFI_X86_64 || clientArch("mips") != iana.INTEL_X86PC {
		t.Errorf("clientArch mapping")
	}
}

func TestDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	if c.CarrierTimeout != 10*time.Second || c.DHCPTimeout != 15*time.Second || c.OfferWindow != 1500*time.Millisecond || c.VendorClass != "ramboot" {
		t.Errorf("defaults: %+v", c)
	}
	if c.Log == nil || c.ConfigureLink == nil || c.WriteResolvConf == nil || c.SetHostname == nil {
		t.Errorf("nil hooks after withDefaults")
	}
}

func TestApply(t *testing.T) {
	lc := LinkConfig{Addr: net.IPNet{IP: net.ParseIP("192.0.2.100").To4(), Mask: net.CIDRMask(24, 32)}, Gateway: dhcpSrv}
	r := &Result{Interface: "eth0", IP: lc.Addr, DNS: []net.IP{net.ParseIP("192.0.2.53")}, Hostname: "pi7", link: lc}
	var gotLC LinkConfig
	var gotResolv, gotHost string
	var logs []string
	cfg := Config{
		ConfigureLink:   func(iface string, c LinkConfig) error { gotLC = c; return nil },
		WriteResolvConf: func(b []byte) error { gotResolv = string(b); return nil },
		SetHostname:     func(n string) error { gotHost = n; return errors.New("EPERM") },
		Log:             func(f string, a ...any) { logs = append(logs, f) },
	}.withDefaults()
	if err := apply(cfg, r); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(lc, gotLC); d != "" {
		t.Errorf("ConfigureLink got (-want +got):\n%s", d)
	}
	if !strings.Contains(gotResolv, "nameserver 192.0.2.53\n") || gotHost != "pi7" {
		t.Errorf("resolv %q, hostname %q", gotResolv, gotHost)
	}
	if len(logs) != 1 { // the hostname failure is logged, not fatal
		t.Errorf("logs = %q", logs)
	}

	// Nothing to write: no resolv.conf, no hostname; a link failure fails.
	cfg.WriteResolvConf = func([]byte) error { t.Error("WriteResolvConf called"); return nil }
	cfg.SetHostname = func(string) error { t.Error("SetHostname called"); return nil }
	cfg.ConfigureLink = func(string, LinkConfig) error { return errors.New("EEXIST") }
	err := apply(cfg, &Result{Interface: "eth0", link: lc, IP: lc.Addr})
	if err == nil || err.Error() != "eth0: cannot configure 192.0.2.100/24: EEXIST" {
		t.Errorf("err = %v", err)
	}
}

// testLease makes a Result with a renewable lease of length d.
func testLease(t *testing.T, d time.Duration) *Result {
	ack := pkt(t, dhcpv4.MessageTypeAck, dhcpSrv, "192.0.2.100",
		dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(d)))
	return &Result{Interface: "eth0", st: &leaseState{lease: &nclient4.Lease{ACK: ack, Offer: ack, CreationTime: time.Now()}}}
}

func swapRenew(t *testing.T, f func(*Result, context.Context, Config) (time.Duration, error)) {
	old, oldMin := renewOnce, minRenewRetry
	renewOnce, minRenewRetry = f, 20*time.Millisecond
	t.Cleanup(func() { renewOnce, minRenewRetry = old, oldMin })
}

func TestKeepRenewed(t *testing.T) {
	t.Run("waits for T1, stops with ctx", func(t *testing.T) {
		var n atomic.Int32
		swapRenew(t, func(r *Result, ctx context.Context, cfg Config) (time.Duration, error) {
			n.Add(1)
			return 2 * time.Second, nil
		})
		ctx, cancel := context.WithTimeout(context.Background(), 900*time.Millisecond)
		defer cancel()
		done := make(chan struct{})
		go func() { KeepRenewed(ctx, Config{}, testLease(t, 2*time.Second)); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("KeepRenewed did not stop with its context")
		}
		// A 2s lease has T1 at 1s: no renewal within 900ms.
		if n.Load() != 0 {
			t.Errorf("renewed %d times before T1", n.Load())
		}
	})

	t.Run("short lease, failures retried", func(t *testing.T) {
		var n atomic.Int32
		swapRenew(t, func(r *Result, ctx context.Context, cfg Config) (time.Duration, error) {
			if n.Add(1)%2 == 1 {
				return 0, errors.New("no answer")
			}
			r.st.mu.Lock()
			r.st.lease = &nclient4.Lease{ACK: r.st.lease.ACK, CreationTime: time.Now()}
			r.st.mu.Unlock()
			return time.Second, nil
		})
		var logs atomic.Int32
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		// Option 51 has whole seconds: a 1s lease renews every 500ms.
		KeepRenewed(ctx, Config{Log: func(string, ...any) { logs.Add(1) }}, testLease(t, time.Second))
		if got := n.Load(); got < 2 || got > 8 {
			t.Errorf("%d renewals in 1.5s of a 1s lease, want 2..8", got)
		}
		if logs.Load() < n.Load() {
			t.Errorf("%d log lines for %d renewals", logs.Load(), n.Load())
		}
	})

	t.Run("never panics", func(t *testing.T) {
		swapRenew(t, func(*Result, context.Context, Config) (time.Duration, error) { panic("boom") })
		var logged atomic.Bool
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		KeepRenewed(ctx, Config{Log: func(f string, a ...any) {
			if strings.HasPrefix(f, "BUG") {
				logged.Store(true)
			}
		}}, testLease(t, time.Second))
		if !logged.Load() {
			t.Error("panic not logged")
		}
		KeepRenewed(ctx, Config{}, nil)
		KeepRenewed(ctx, Config{}, &Result{})
		if _, err := (&Result{}).Renew(ctx, Config{}); !errors.Is(err, errNoLease) {
			t.Errorf("Renew without lease: %v", err)
		}
		var nilRes *Result
		if _, err := nilRes.Renew(ctx, Config{}); !errors.Is(err, errNoLease) {
			t.Errorf("Renew on nil: %v", err)
		}
	})

	t.Run("infinite lease", func(t *testing.T) {
		swapRenew(t, func(*Result, context.Context, Config) (time.Duration, error) {
			t.Error("renewed an infinite lease")
			return 0, nil
		})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		KeepRenewed(ctx, Config{}, testLease(t, infiniteLease))
		if time.Since(start) > 500*time.Millisecond {
			t.Error("KeepRenewed waited on an infinite lease")
		}
	})
}

// TestResolvConfInjection: a domain name from DHCP cannot add lines.
func TestResolvConfInjection(t *testing.T) {
	got := string(resolvConf([]net.IP{net.IPv4(192, 0, 2, 53)}, []string{"lab.example", "x\nnameserver 6.6.6.6", "a b"}))
	want := "# written by ramboot init from DHCP\nsearch lab.example\nnameserver 192.0.2.53\n"
	if got != want {
		t.Errorf("resolv.conf:\n%s\nwant:\n%s", got, want)
	}
}
