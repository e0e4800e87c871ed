package dhcp

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// madeUp is the i-th made-up MAC of a flood.
func madeUp(i int) string {
	return fmt.Sprintf("02:00:00:%02x:%02x:%02x", i>>16&0xff, i>>8&0xff, i&0xff)
}

// TestPoolDeclineBounded: a flood of made-up MACs, each taking an offer and
// declining it, sets aside at most a quarter of the range; a real client
// is still offered an address at once, and each address freed early is
// counted.
func TestPoolDeclineBounded(t *testing.T) {
	p, _ := testPool(t, "192.0.2.100", "192.0.2.139", "") // 40 addresses: at most 10 set aside
	const flood = 400
	for i := 0; i < flood; i++ {
		m := hw(t, madeUp(i))
		ip, err := p.Offer(m, nil, nil)
		if err != nil {
			t.Fatalf("offer %d during the flood: %v", i, err)
		}
		d, err := p.Decline(m, ip)
		if err != nil {
			t.Fatalf("decline %d: %v", i, err)
		}
		if d.Max != 10 {
			t.Fatalf("bound %d, want 10 (a quarter of 40)", d.Max)
		}
		if i >= 10 && d.FreedOldest == nil {
			t.Fatalf("decline %d: nothing freed with %d set aside", i, p.DeclineStats().Held)
		}
	}
	st := p.DeclineStats()
	if want := (DeclineStats{SetAside: flood, FreedOldest: flood - 10, Held: 10}); st != want {
		t.Fatalf("stats %+v, want %+v", st, want)
	}
	// The holds freed early leave no timers behind past a bound: the heap
	// follows what the pool holds, not how many DECLINEs came. (A flood
	// 10x longer, to pass the pruning floor.)
	for i := flood; i < 10*flood; i++ {
		m := hw(t, madeUp(i))
		ip, err := p.Offer(m, nil, nil)
		if err != nil {
			t.Fatalf("offer %d during the flood: %v", i, err)
		}
		if _, err := p.Decline(m, ip); err != nil {
			t.Fatalf("decline %d: %v", i, err)
		}
	}
	p.mu.Lock()
	timers, live := len(p.timers), len(p.byMAC)+len(p.offers)+len(p.quarantine)
	p.mu.Unlock()
	if timers > 1024+4*live+1 {
		t.Fatalf("%d timers after %d DECLINEs with %d leases, offers and holds: not pruned", timers, 10*flood, live)
	}
	// A real client: offered, and granted, with 30 addresses never set aside.
	for i := 0; i < 30; i++ {
		lease(t, p, fmt.Sprintf("dc:a6:32:00:01:%02x", i), nil)
	}

	// A lower bound set by the operator holds too.
	q, _ := testPool(t, "192.0.2.100", "192.0.2.139", "")
	q.MaxDeclined = 3
	for i := 0; i < 20; i++ {
		m := hw(t, madeUp(i))
		ip, _ := q.Offer(m, nil, nil)
		q.Decline(m, ip)
	}
	if held := q.DeclineStats().Held; held != 3 {
		t.Fatalf("%d set aside with MaxDeclined 3", held)
	}
}

// TestPoolDeclineOnePerClient: a client's next DECLINE frees the address
// it declined before: one MAC cannot walk the range.
func TestPoolDeclineOnePerClient(t *testing.T) {
	p, clk := testPool(t, "192.0.2.100", "192.0.2.199", "")
	m := hw(t, "02:00:00:00:00:01")
	var declined []net.IP
	for i := 0; i < 5; i++ {
		ip, err := p.Offer(m, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		d, err := p.Decline(m, ip)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && !d.FreedOwn.Equal(declined[len(declined)-1]) {
			t.Fatalf("decline %d freed %v, want the one before, %v", i, d.FreedOwn, declined[len(declined)-1])
		}
		declined = append(declined, ip)
	}
	st := p.DeclineStats()
	if st.Held != 1 || st.FreedOwn != 4 || st.SetAside != 5 {
		t.Fatalf("stats %+v: want 1 held, 4 freed early", st)
	}
	// The last one stays set aside for its hold; the earlier ones are free.
	last := declined[len(declined)-1]
	other := hw(t, "02:00:00:00:00:02")
	if _, err := p.Ack(other, last, "", false); err == nil || !strings.Contains(err.Error(), "set aside") {
		t.Fatalf("the address still declined was granted: %v", err)
	}
	if _, err := p.Ack(other, declined[0], "", false); err != nil {
		t.Fatalf("an address freed early was refused: %v", err)
	}
	// Its hold ends as before.
	clk.Add(11 * time.Minute)
	if _, err := p.Ack(hw(t, "02:00:00:00:00:03"), last, "", false); err != nil {
		t.Fatalf("after the hold: %v", err)
	}
	if st := p.DeclineStats(); st.Held != 0 {
		t.Fatalf("%d still held after the hold", st.Held)
	}
}

// TestFullModeDeclineFlood: DISCOVER then DECLINE from made-up MACs
// through the full DHCP server: the events say which addresses came back,
// and a real client still gets its lease.
func TestFullModeDeclineFlood(t *testing.T) {
	p, err := OpenPool(net.IPv4(192, 0, 2, 100), net.IPv4(192, 0, 2, 107), "") // 8 addresses: at most 2 set aside
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Mode: Full, ServerIP: net.IPv4(192, 0, 2, 1), Pool: p, Router: net.IPv4(192, 0, 2, 1),
		Decide: func(c Client, ip net.IP) Decision { return Decision{Option224: "shell"} }}
	var freed int
	for i := 0; i < 100; i++ {
		off, ev := s.Handle(initDiscover(t, madeUp(i), 1, 3, 224))
		if off == nil {
			t.Fatalf("flood DISCOVER %d not offered: %+v", i, ev)
		}
		hwa, _ := net.ParseMAC(madeUp(i))
		dec, _ := dhcpv4.New(dhcpv4.WithHwAddr(hwa), dhcpv4.WithMessageType(dhcpv4.MessageTypeDecline),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(s.ServerIP)),
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(off.YourIPAddr)))
		resp, ev := s.Handle(dec)
		if resp != nil || ev.Type != "decline" {
			t.Fatalf("decline %d: %+v", i, ev)
		}
		if strings.Contains(ev.Detail, "is free again (the pool sets aside at most 2 declined addresses)") {
			freed++
		}
	}
	if freed != 98 {
		t.Fatalf("%d declines said they freed the oldest, want 98", freed)
	}
	if st := p.DeclineStats(); st.Held != 2 || st.SetAside != 100 || st.FreedOldest != 98 {
		t.Fatalf("stats %+v", st)
	}
	for i := 0; i < 6; i++ {
		doora(t, s, fmt.Sprintf("dc:a6:32:00:02:%02x", i))
	}
}
