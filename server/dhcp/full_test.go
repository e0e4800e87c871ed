package dhcp

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// events collects what a server logs.
type events struct {
	mu sync.Mutex
	l  []Event
}

func (e *events) log(ev Event) { e.mu.Lock(); e.l = append(e.l, ev); e.mu.Unlock() }
func (e *events) all() []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Event(nil), e.l...)
}

func TestFullModeDecline(t *testing.T) {
	s := fullServer(t, "")
	a := doora(t, s, "dc:a6:32:00:00:01")
	hwa, _ := net.ParseMAC("dc:a6:32:00:00:01")
	dec, _ := dhcpv4.New(dhcpv4.WithHwAddr(hwa), dhcpv4.WithMessageType(dhcpv4.MessageTypeDecline),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(s.ServerIP)),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(a)))
	resp, ev := s.Handle(dec)
	if resp != nil || ev.Type != "decline" || !ev.Address.Equal(a) || !strings.Contains(ev.Detail, "set aside for 10m0s") {
		t.Fatalf("decline: %v %+v", resp, ev)
	}
	if b := doora(t, s, "dc:a6:32:00:00:01"); b.Equal(a) {
		t.Fatalf("the declined %v was offered again", a)
	}
	// Proxy mode has no pool: a DECLINE is nothing to it.
	p := &Server{Mode: Proxy, ServerIP: s.ServerIP}
	if resp, ev := p.Handle(dec); resp != nil || ev.Type != "ignored" {
		t.Fatalf("proxy decline: %+v", ev)
	}
}

func TestFullModeRefusesOtherSubnetsRelays(t *testing.T) {
	s := fullServer(t, "")
	var evs events
	for i := 0; i < 3; i++ {
		d := initDiscover(t, "dc:a6:32:00:00:07", 1)
		d.GatewayIPAddr = net.IPv4(198, 51, 100, 1)
		resp, ev := s.Handle(d)
		evs.log(ev)
		if resp != nil {
			t.Fatalf("relayed client from 198.51.100.1 offered %v", resp.YourIPAddr)
		}
	}
	l := evs.all()
	if l[0].Type != "no-address" || !strings.Contains(l[0].Detail, "relayed by 198.51.100.1: no address pool for that subnet") ||
		!strings.Contains(l[0].Detail, "192.0.2.0/24") {
		t.Fatalf("first refusal %+v", l[0])
	}
	if l[1].Type != "ignored" || l[2].Type != "ignored" {
		t.Fatalf("later refusals logged as %q %q, want ignored", l[1].Type, l[2].Type)
	}
	if len(s.Pool.Leases()) != 0 {
		t.Fatalf("leases %+v", s.Pool.Leases())
	}
}

func TestFullModeFixedAddressHeldByAnother(t *testing.T) {
	s := fullServer(t, "")
	// Leased before the inventory gave .101 to the node.
	if _, err := s.Pool.Ack(hw(t, "dc:a6:32:00:00:01"), net.IPv4(192, 0, 2, 101), "", false); err != nil {
		t.Fatal(err)
	}
	s.Pool.Reserved = func() map[string]string { return map[string]string{"192.0.2.101": "static-9"} }
	s.Decide = func(c Client, ip net.IP) Decision {
		if c.MAC.String() == "dc:a6:32:00:00:09" {
			return Decision{Address: net.IPv4(192, 0, 2, 101), Hostname: "static-9"}
		}
		return Decision{}
	}
	resp, ev := s.Handle(initDiscover(t, "dc:a6:32:00:00:09", 1))
	if resp != nil || ev.Type != "no-address" || ev.Err == nil || !strings.Contains(ev.Err.Error(), "fixed address 192.0.2.101 is leased to dc:a6:32:00:00:01") {
		t.Fatalf("node whose address is held: %v %+v", resp, ev)
	}
}

// redirectConn is the server's socket on 127.0.0.1: every reply goes to
// the test's client, and where it was meant to go is kept.
type redirectConn struct {
	net.PacketConn
	to net.Addr
	mu sync.Mutex
	at map[uint32]string // transaction id -> intended destination of the last reply
}

func (c *redirectConn) WriteTo(b []byte, dst net.Addr) (int, error) {
	if m, err := dhcpv4.FromBytes(b); err == nil {
		c.mu.Lock()
		c.at[uint32(m.TransactionID[0])<<24|uint32(m.TransactionID[1])<<16|uint32(m.TransactionID[2])<<8|uint32(m.TransactionID[3])] = dst.String()
		c.mu.Unlock()
	}
	return c.PacketConn.WriteTo(b, c.to)
}

func (c *redirectConn) dst(x dhcpv4.TransactionID) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.at[uint32(x[0])<<24|uint32(x[1])<<16|uint32(x[2])<<8|uint32(x[3])]
}

type received struct {
	m  *dhcpv4.DHCPv4
	at time.Time
}

// serveOnLoopback runs s on a 127.0.0.1 socket; send writes to it,
// replies come on the channel.
func serveOnLoopback(t *testing.T, s *Server) (send func(*dhcpv4.DHCPv4), replies <-chan received, rc *redirectConn) {
	t.Helper()
	spc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cpc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rc = &redirectConn{PacketConn: spc, to: cpc.LocalAddr(), at: map[uint32]string{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, rc) }()
	ch := make(chan received, 256)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := cpc.ReadFrom(buf)
			if err != nil {
				close(ch)
				return
			}
			if m, err := dhcpv4.FromBytes(buf[:n]); err == nil {
				ch <- received{m, time.Now()}
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		cpc.Close()
	})
	send = func(m *dhcpv4.DHCPv4) {
		if _, err := cpc.WriteTo(m.ToBytes(), spc.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	return send, ch, rc
}

func recv(t *testing.T, ch <-chan received, within time.Duration) (received, bool) {
	t.Helper()
	select {
	case r, ok := <-ch:
		return r, ok
	case <-time.After(within):
		return received{}, false
	}
}

// TestFullModeGroupCommit: N clients REQUEST at once while the disk is
// slow. No ACK goes out before the lease it grants is in the file; the
// server answers another client's DISCOVER meanwhile; the N leases share
// few writes.
func TestFullModeGroupCommit(t *testing.T) {
	file := filepath.Join(t.TempDir(), "leases.json")
	p, err := OpenPool(net.IPv4(192, 0, 2, 100), net.IPv4(192, 0, 2, 199), file)
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var mu sync.Mutex
	syncs := 0
	p.SyncFile = func(f *os.File) error {
		mu.Lock()
		syncs++
		first := syncs == 1
		mu.Unlock()
		if first {
			<-release // the first write stalls
		}
		return f.Sync()
	}
	var evs events
	s := &Server{Mode: Full, ServerIP: net.IPv4(192, 0, 2, 1), Pool: p, Log: evs.log,
		Decide: func(Client, net.IP) Decision { return Decision{Option224: "shell"} }}
	send, replies, rc := serveOnLoopback(t, s)

	const n = 20
	macs := map[dhcpv4.TransactionID]string{}
	for i := 0; i < n; i++ {
		mac := net.HardwareAddr{2, 0, 0, 0, 1, byte(i)}
		req, err := dhcpv4.New(dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(s.ServerIP)),
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(192, 0, 2, byte(100+i)))))
		if err != nil {
			t.Fatal(err)
		}
		macs[req.TransactionID] = mac.String()
		send(req)
	}
	disc := initDiscover(t, "02:00:00:00:02:00", 1)
	send(disc)
	// The DISCOVER is answered while every REQUEST waits for the disk.
	r, ok := recv(t, replies, 5*time.Second)
	if !ok || r.m.TransactionID != disc.TransactionID || r.m.MessageType() != dhcpv4.MessageTypeOffer {
		t.Fatalf("while the lease file write stalls, got %v (ok %v), want the OFFER", r.m, ok)
	}
	if r, ok := recv(t, replies, 200*time.Millisecond); ok {
		t.Fatalf("%v sent while its lease was not on disk", r.m.MessageType())
	}
	close(release)
	for i := 0; i < n; i++ {
		r, ok := recv(t, replies, 5*time.Second)
		if !ok {
			t.Fatalf("%d ACKs of %d", i, n)
		}
		mac := macs[r.m.TransactionID]
		if r.m.MessageType() != dhcpv4.MessageTypeAck || mac == "" {
			t.Fatalf("got %v for %q", r.m.MessageType(), mac)
		}
		data, err := os.ReadFile(file)
		if err != nil || !strings.Contains(string(data), `"mac": "`+mac+`",
    "ip": "`+r.m.YourIPAddr.String()+`"`) {
			t.Fatalf("ACK of %s to %s arrived before the lease file had it:\n%s", r.m.YourIPAddr, mac, data)
		}
		if d := rc.dst(r.m.TransactionID); d != "255.255.255.255:68" {
			t.Errorf("ACK to %s", d)
		}
	}
	mu.Lock()
	if syncs > 2 {
		t.Errorf("%d REQUESTs took %d writes, want at most 2 (the stalled one, then one for the rest)", n, syncs)
	}
	mu.Unlock()
	acks := 0
	for _, e := range evs.all() {
		if e.Type == "ack" {
			acks++
		}
	}
	if acks != n {
		t.Errorf("%d acks logged, want %d", acks, n)
	}
	// After a crash (no Close), every ACKed lease is in the file, once.
	q, err := OpenPool(net.IPv4(192, 0, 2, 100), net.IPv4(192, 0, 2, 199), file)
	if err != nil {
		t.Fatal(err)
	}
	if ls := q.Leases(); len(ls) != n {
		t.Fatalf("after restart %d leases, want %d", len(ls), n)
	}
	checkNoDoubles(t, q.Leases())
}

// TestFullModeOverSocket: a NAK is broadcast though the client has a
// ciaddr; a client behind another subnet's relay gets nothing, logged once.
func TestFullModeOverSocket(t *testing.T) {
	s := fullServer(t, "")
	var evs events
	s.Log = evs.log
	send, replies, rc := serveOnLoopback(t, s)

	req, _ := dhcpv4.New(dhcpv4.WithHwAddr(hw(t, "dc:a6:32:00:00:05")), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithClientIP(net.IPv4(192, 0, 2, 150))) // renewing an address that is not the pool's
	send(req)
	r, ok := recv(t, replies, 5*time.Second)
	if !ok || r.m.MessageType() != dhcpv4.MessageTypeNak {
		t.Fatalf("want a NAK, got %v", r.m)
	}
	if d := rc.dst(req.TransactionID); d != "255.255.255.255:68" {
		t.Fatalf("NAK sent to %s, want broadcast", d)
	}

	for i := 0; i < 3; i++ {
		d := initDiscover(t, "dc:a6:32:00:00:07", 1)
		d.GatewayIPAddr = net.IPv4(198, 51, 100, 1)
		send(d)
	}
	if r, ok := recv(t, replies, 300*time.Millisecond); ok {
		t.Fatalf("a client behind 198.51.100.1 got %v %v", r.m.MessageType(), r.m.YourIPAddr)
	}
	refused := 0
	for _, e := range evs.all() {
		if e.Type == "no-address" && strings.Contains(e.Detail, "relayed by 198.51.100.1") {
			refused++
		}
	}
	if refused != 1 {
		t.Fatalf("refusal logged %d times, want once: %+v", refused, evs.all())
	}
}

// A flood of packets that do not parse, and of requests through relays
// with no pool, is logged once per sender (relay) a minute, the rest held
// back and counted; never an offer from the wrong subnet.
func TestFloodsLoggedOncePerClient(t *testing.T) {
	s := fullServer(t, "")
	var logged, held events
	s.Log, s.Held = logged.log, held.log
	send, replies, rc := serveOnLoopback(t, s)
	raw, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for i := range 20 {
		if _, err := raw.WriteTo([]byte{1, 1, 6, 0, byte(i)}, rc.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		for _, relay := range []net.IP{net.IPv4(198, 51, 100, 1), net.IPv4(203, 0, 113, 1)} {
			d := initDiscover(t, fmt.Sprintf("dc:a6:32:00:01:%02x", i), 1)
			d.GatewayIPAddr = relay
			send(d)
		}
	}
	// The loop is one: once this OFFER comes, all of the above was handled.
	d := initDiscover(t, "dc:a6:32:00:00:01", 1)
	send(d)
	r, ok := recv(t, replies, 5*time.Second)
	if !ok || r.m.TransactionID != d.TransactionID || r.m.MessageType() != dhcpv4.MessageTypeOffer {
		t.Fatalf("after the floods: %v %v, want the local client's OFFER", ok, r.m)
	}
	count := func(l []Event) map[string]int {
		m := map[string]int{}
		for _, e := range l {
			m[e.Type]++
		}
		return m
	}
	if got := count(logged.all()); got["bad-packet"] != 1 || got["no-address"] != 2 || got["ignored"] != 0 {
		t.Errorf("logged %v, want 1 bad-packet and 2 no-address (one per relay)", got)
	}
	if got := count(held.all()); got["bad-packet"] != 19 || got["ignored"] != 4 || len(got) != 2 {
		t.Errorf("held back %v, want 19 bad-packet and 4 ignored", got)
	}
	for _, e := range logged.all() {
		if e.Type == "no-address" && !strings.Contains(e.Detail, "no address pool for that subnet") {
			t.Errorf("relay refusal says %q", e.Detail)
		}
	}
	if len(s.Pool.Leases()) != 0 {
		t.Fatalf("leases %+v", s.Pool.Leases())
	}
}
