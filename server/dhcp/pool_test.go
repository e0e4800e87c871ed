package dhcp

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func testPool(t *testing.T, from, to, file string) (*Pool, *clock) {
	t.Helper()
	p, err := OpenPool(net.ParseIP(from), net.ParseIP(to), file)
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	p.Now, p.LeaseTime = clk.Now, time.Hour
	return p, clk
}

func hw(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	m, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// lease runs DISCOVER then REQUEST for mac, as a client does.
func lease(t *testing.T, p *Pool, mac string, static net.IP) net.IP {
	t.Helper()
	ip, err := p.Offer(hw(t, mac), nil, static)
	if err != nil {
		t.Fatalf("offer to %s: %v", mac, err)
	}
	if _, err := p.Ack(hw(t, mac), ip, "", static != nil); err != nil {
		t.Fatalf("ack to %s of %s: %v", mac, ip, err)
	}
	return ip
}

// checkNoDoubles fails if two MACs hold one address in the pool or the file.
func checkNoDoubles(t *testing.T, ls []Lease) {
	t.Helper()
	seen := map[string]string{}
	for _, l := range ls {
		if o, ok := seen[l.IP]; ok {
			t.Fatalf("%s held by both %s and %s", l.IP, o, l.MAC)
		}
		seen[l.IP] = l.MAC
	}
}

func TestPoolExpiryAndReassignment(t *testing.T) {
	p, clk := testPool(t, "192.0.2.100", "192.0.2.101", "")
	a := lease(t, p, "02:00:00:00:00:01", nil)
	b := lease(t, p, "02:00:00:00:00:02", nil)
	if a.Equal(b) {
		t.Fatalf("both got %v", a)
	}
	// Exhausted: a clear error, no offer.
	if ip, err := p.Offer(hw(t, "02:00:00:00:00:03"), nil, nil); !errors.Is(err, ErrPoolFull) || ip != nil ||
		!strings.Contains(err.Error(), "192.0.2.100-192.0.2.101 (2 addresses") {
		t.Fatalf("full pool: %v %v", ip, err)
	}
	// A REQUEST for a held address by another MAC is refused.
	if _, err := p.Ack(hw(t, "02:00:00:00:00:03"), a, "", false); err == nil || !strings.Contains(err.Error(), "leased to 02:00:00:00:00:01") {
		t.Fatalf("ack of a held address: %v", err)
	}
	// 1 renews; 2 lets its lease run out.
	clk.Add(40 * time.Minute)
	if _, err := p.Ack(hw(t, "02:00:00:00:00:01"), a, "", false); err != nil {
		t.Fatal(err)
	}
	clk.Add(30 * time.Minute)
	c := lease(t, p, "02:00:00:00:00:03", nil)
	if !c.Equal(b) {
		t.Fatalf("after 2's lease ended, 3 got %v, want %v", c, b)
	}
	// 2 comes back: its old address is 3's now, and the pool is full.
	if ip, err := p.Offer(hw(t, "02:00:00:00:00:02"), b, nil); err == nil {
		t.Fatalf("2 was offered %v (its old address, now 3's)", ip)
	}
	if _, err := p.Ack(hw(t, "02:00:00:00:00:02"), b, "", false); err == nil {
		t.Fatal("2 was granted its old address, now 3's")
	}
	checkNoDoubles(t, p.Leases())
	if len(p.Leases()) != 2 {
		t.Fatalf("leases %+v: 2's record should be gone with its address", p.Leases())
	}
}

func TestPoolReoffersExpiredButFree(t *testing.T) {
	p, clk := testPool(t, "192.0.2.100", "192.0.2.110", "")
	a := lease(t, p, "02:00:00:00:00:01", nil)
	clk.Add(2 * time.Hour) // expired, nobody took it
	if ip, err := p.Offer(hw(t, "02:00:00:00:00:01"), nil, nil); err != nil || !ip.Equal(a) {
		t.Fatalf("returning client offered %v %v, want its old %v", ip, err, a)
	}
	// A new client gets another address meanwhile (fresh ones first).
	if ip, err := p.Offer(hw(t, "02:00:00:00:00:02"), nil, nil); err != nil || ip.Equal(a) {
		t.Fatalf("new client offered %v %v", ip, err)
	}
	// A released address goes back too, and to its client first.
	c := lease(t, p, "02:00:00:00:00:03", nil)
	p.Release(hw(t, "02:00:00:00:00:03"), c)
	if l := p.Leases(); l[len(l)-1].MAC != "02:00:00:00:00:03" || l[len(l)-1].Expires.After(clk.Now()) {
		t.Fatalf("after release the leases are %+v", l)
	}
	if ip, _ := p.Offer(hw(t, "02:00:00:00:00:03"), nil, nil); !ip.Equal(c) {
		t.Fatalf("after release offered %v, want %v", ip, c)
	}
}

func TestPoolFixedAddressInsideRange(t *testing.T) {
	file := filepath.Join(t.TempDir(), "leases.json")
	// A lease file from before the inventory fixed .101 for node-7.
	if err := os.WriteFile(file, []byte(`[{"mac":"02:00:00:00:00:05","ip":"192.0.2.101","expires":"2030-01-01T00:50:00Z"}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	p, clk := testPool(t, "192.0.2.100", "192.0.2.102", file)
	p.Reserved = func() map[string]string { return map[string]string{"192.0.2.101": "node-7"} }
	node, fixed := "02:00:00:00:00:07", net.ParseIP("192.0.2.101")
	// The other client still holds it: the node is offered nothing, and told why.
	if ip, err := p.Offer(hw(t, node), nil, fixed); ip != nil || err == nil || !strings.Contains(err.Error(), "leased to 02:00:00:00:00:05") {
		t.Fatalf("node's fixed address while held: %v %v", ip, err)
	}
	// The holder's renewal is refused (the address is reserved now), which ends its lease.
	if _, err := p.Ack(hw(t, "02:00:00:00:00:05"), fixed, "", false); err == nil || !strings.Contains(err.Error(), "reserved for inventory node node-7") {
		t.Fatalf("renewal of a reserved address: %v", err)
	}
	if got := lease(t, p, node, fixed); !got.Equal(fixed) {
		t.Fatalf("node got %v", got)
	}
	// Dynamic clients never get .101, even once it expires; two fit.
	for i, mac := range []string{"02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:05"} {
		ip, err := p.Offer(hw(t, mac), fixed, nil)
		if i == 2 {
			if err == nil {
				t.Fatalf("third dynamic client offered %v", ip)
			}
			if !strings.Contains(err.Error(), "1 of them reserved for inventory nodes") {
				t.Errorf("exhaustion message %q", err)
			}
			break
		}
		if err != nil || ip.Equal(fixed) {
			t.Fatalf("%s offered %v %v", mac, ip, err)
		}
		if _, err := p.Ack(hw(t, mac), ip, "", false); err != nil {
			t.Fatal(err)
		}
	}
	clk.Add(2 * time.Hour)
	for _, mac := range []string{"02:00:00:00:00:09", "02:00:00:00:00:0a", "02:00:00:00:00:0b"} {
		if ip, err := p.Offer(hw(t, mac), nil, nil); err == nil && ip.Equal(fixed) {
			t.Fatalf("%s offered the reserved %v after expiry", mac, ip)
		}
		if _, err := p.Ack(hw(t, mac), fixed, "", false); err == nil {
			t.Fatalf("%s granted the reserved %v", mac, fixed)
		}
	}
	// The inventory drops the node: .101 joins the dynamic pool.
	p.Reserved = func() map[string]string { return map[string]string{} }
	var got []string
	for _, mac := range []string{"02:00:00:00:00:0c", "02:00:00:00:00:0d", "02:00:00:00:00:0e"} {
		if ip, err := p.Offer(hw(t, mac), nil, nil); err == nil {
			got = append(got, ip.String())
		}
	}
	if !strings.Contains(strings.Join(got, " "), "192.0.2.101") {
		t.Fatalf("after the reservation ended the offers were %v", got)
	}
}

func TestPoolDeclineQuarantine(t *testing.T) {
	p, clk := testPool(t, "192.0.2.100", "192.0.2.101", "")
	p.DeclineHold = 10 * time.Minute
	a := lease(t, p, "02:00:00:00:00:01", nil)
	// Someone who neither holds nor was offered it cannot decline it.
	if _, err := p.Decline(hw(t, "02:00:00:00:00:02"), a); err == nil {
		t.Fatal("a stranger's DECLINE was honoured")
	}
	if d, err := p.Decline(hw(t, "02:00:00:00:00:01"), a); err != nil || d.Hold != 10*time.Minute {
		t.Fatalf("decline: %+v %v", d, err)
	}
	// Set aside: neither the decliner nor anyone else gets it.
	b, err := p.Offer(hw(t, "02:00:00:00:00:01"), a, nil)
	if err != nil || b.Equal(a) {
		t.Fatalf("after decline offered %v %v", b, err)
	}
	if ip, err := p.Offer(hw(t, "02:00:00:00:00:02"), a, nil); err == nil && ip.Equal(a) {
		t.Fatalf("declined address offered: %v", ip)
	}
	if _, err := p.Ack(hw(t, "02:00:00:00:00:02"), a, "", false); err == nil || !strings.Contains(err.Error(), "set aside") {
		t.Fatalf("declined address granted: %v", err)
	}
	// After the hold it is free again.
	clk.Add(11 * time.Minute)
	if ip, err := p.Offer(hw(t, "02:00:00:00:00:02"), a, nil); err != nil || !ip.Equal(a) {
		t.Fatalf("after the hold offered %v %v, want %v", ip, err, a)
	}
}

func TestPoolRestartFromFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "leases.json")
	p, _ := testPool(t, "192.0.2.100", "192.0.2.120", file)
	acked := map[string]string{}
	for _, mac := range []string{"02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03"} {
		acked[mac] = lease(t, p, mac, nil).String()
	}
	// A lease written but whose ACK was never sent: it may be there or not.
	p.Offer(hw(t, "02:00:00:00:00:04"), nil, nil)
	if _, c, err := p.Grant(hw(t, "02:00:00:00:00:04"), net.ParseIP("192.0.2.110"), "", false); err != nil || p.Wait(c) != nil {
		t.Fatal(err)
	}
	// The crash: p is never closed; a half-written temp file lies around.
	os.WriteFile(filepath.Join(filepath.Dir(file), "."+filepath.Base(file)+".tmp-0123456789ab"), []byte(`[{"mac": "02:`), 0o644)

	q, _ := testPool(t, "192.0.2.100", "192.0.2.120", file)
	ls := q.Leases()
	checkNoDoubles(t, ls)
	got := map[string]string{}
	for _, l := range ls {
		got[l.MAC] = l.IP
	}
	for mac, ip := range acked {
		if got[mac] != ip {
			t.Errorf("after restart %s has %q, was ACKed %s", mac, got[mac], ip)
		}
		if again, _ := q.Offer(hw(t, mac), nil, nil); again.String() != ip {
			t.Errorf("after restart %s offered %v, holds %s", mac, again, ip)
		}
	}
	n := lease(t, q, "02:00:00:00:00:05", nil)
	for _, ip := range acked {
		if n.String() == ip {
			t.Fatalf("new client got %s, held by another", n)
		}
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
}

// A wide range and many clients: every lookup is by map, so this takes
// milliseconds; a scan of the range or the leases per DISCOVER would take
// minutes.
func TestPoolScales(t *testing.T) {
	p, _ := testPool(t, "10.0.0.1", "10.0.255.254", "")
	start := time.Now()
	seen := make(map[string]bool, 20000)
	for i := 0; i < 20000; i++ {
		mac := net.HardwareAddr{2, 0, 0, 0, byte(i >> 8), byte(i)}
		ip, err := p.Offer(mac, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if seen[ip.String()] {
			t.Fatalf("%v offered twice", ip)
		}
		seen[ip.String()] = true
		if _, _, err := p.Grant(mac, ip, "", false); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("20000 leases took %v", d)
	}
}

// The group commit: grants made while a write is under way share the next
// write, and none is reported durable before its write is done.
func TestPoolGroupCommit(t *testing.T) {
	file := filepath.Join(t.TempDir(), "leases.json")
	p, _ := testPool(t, "192.0.2.100", "192.0.2.199", file)
	release := make(chan struct{})
	var mu sync.Mutex
	syncs := 0
	p.SyncFile = func(f *os.File) error {
		mu.Lock()
		syncs++
		first := syncs == 1
		mu.Unlock()
		if first {
			<-release
		}
		return f.Sync()
	}
	const n = 30
	type result struct {
		mac string
		err error
	}
	results := make(chan result, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			mac := net.HardwareAddr{2, 0, 0, 0, 0, byte(i + 1)}
			_, c, err := p.Grant(mac, net.IPv4(192, 0, 2, byte(100+i)), "", false)
			if err != nil {
				results <- result{mac.String(), err}
				return
			}
			p.Durable(c, func(err error) { results <- result{mac.String(), err} })
		}(i)
	}
	wg.Wait()
	// All granted, the first write stalled: nothing is durable yet, and the
	// pool still answers.
	select {
	case r := <-results:
		t.Fatalf("%s reported durable (%v) while the write is stalled", r.mac, r.err)
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := p.Offer(hw(t, "02:00:00:00:01:00"), nil, nil); err != nil {
		t.Fatal(err)
	}
	close(release)
	for i := 0; i < n; i++ {
		r := <-results
		if r.err != nil {
			t.Fatal(r.err)
		}
		data, _ := os.ReadFile(file)
		if !strings.Contains(string(data), r.mac) {
			t.Fatalf("%s reported durable but not in the file", r.mac)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if syncs > 2 {
		t.Errorf("%d grants took %d writes, want 2 (one stalled, then one for the rest)", n, syncs)
	}
}

// An expired lease's address, once offered to another client, is not the
// old holder's to be offered any more.
func TestPoolNoReofferOfAnAddressOfferedToAnother(t *testing.T) {
	p, clk := testPool(t, "192.0.2.100", "192.0.2.101", "")
	a := lease(t, p, "02:00:00:00:00:01", nil)
	clk.Add(time.Minute)
	lease(t, p, "02:00:00:00:00:02", nil)
	clk.Add(2 * time.Hour) // both expired; 1's first
	c, err := p.Offer(hw(t, "02:00:00:00:00:03"), nil, nil)
	if err != nil || !c.Equal(a) {
		t.Fatalf("new client offered %v %v, want the longest free %v", c, err, a)
	}
	if ip, err := p.Offer(hw(t, "02:00:00:00:00:01"), nil, nil); err != nil || ip.Equal(a) {
		t.Fatalf("1 offered %v %v while its old address is offered to 3", ip, err)
	}
	// An offer is a soft hold: the first REQUEST wins the address (1's,
	// say after a reboot), and 3, NAKed, starts over and gets another.
	if _, err := p.Ack(hw(t, "02:00:00:00:00:01"), a, "", false); err != nil {
		t.Fatalf("1's REQUEST for its old address, offered to 3 but leased to nobody: %v", err)
	}
	if _, err := p.Ack(hw(t, "02:00:00:00:00:03"), a, "", false); err == nil || !strings.Contains(err.Error(), "leased to 02:00:00:00:00:01") {
		t.Fatalf("3 granted the address 1 won: %v", err)
	}
	checkNoDoubles(t, p.Leases())
}

// A flood of DISCOVERs from made-up MACs: offers are soft holds, the
// oldest reclaimed once nothing else is free, so the range never runs dry
// of offers; a real client's DISCOVER then REQUEST succeeds during the
// flood even after its offer was reclaimed; leases are never reclaimed;
// the pool's state stays bounded by the range, not by the flood.
func TestPoolOfferFloodReclaims(t *testing.T) {
	p, clk := testPool(t, "192.0.2.100", "192.0.2.109", "") // 10 addresses
	p.Reserved = func() map[string]string { return map[string]string{"192.0.2.109": "node-9"} }
	flood := func(run, n int) map[string]bool {
		got := map[string]bool{}
		for i := range n {
			mac := net.HardwareAddr{2, 0x66, byte(run), 0, byte(i >> 8), byte(i)}
			ip, err := p.Offer(mac, nil, nil)
			if err != nil {
				t.Fatalf("flood DISCOVER %d: %v", i, err)
			}
			got[ip.String()] = true
			clk.Add(time.Millisecond)
		}
		return got
	}
	// Three clients hold leases.
	var leased []string
	for i := 1; i <= 3; i++ {
		leased = append(leased, lease(t, p, fmt.Sprintf("02:00:00:00:00:%02x", i), nil).String())
	}
	offered := flood(1, 2000)
	for _, a := range leased {
		if offered[a] {
			t.Fatalf("the flood was offered %s, leased to a real client", a)
		}
	}
	if offered["192.0.2.109"] {
		t.Fatal("the flood was offered the inventory's 192.0.2.109")
	}
	if len(offered) != 6 {
		t.Errorf("the flood was offered %d distinct addresses, want the 6 free ones", len(offered))
	}

	// A real client: DISCOVER, the flood goes on and reclaims its offer,
	// then its REQUEST; it gets the address it was offered.
	real := hw(t, "02:00:00:00:00:aa")
	ip, err := p.Offer(real, nil, nil)
	if err != nil {
		t.Fatalf("a real client during the flood: %v", err)
	}
	if again, err := p.Offer(real, nil, nil); err != nil || !again.Equal(ip) {
		t.Fatalf("its DISCOVER sent again was offered %v %v, want the same %v", again, err, ip)
	}
	flood(2, 50)
	if _, err := p.Ack(real, ip, "", false); err != nil {
		t.Fatalf("the real client's REQUEST for %v after the flood reclaimed its offer: %v", ip, err)
	}
	// Now leased: the flood never gets it.
	if offered := flood(3, 500); offered[ip.String()] {
		t.Fatalf("the flood was offered %v, leased to the real client", ip)
	}
	checkNoDoubles(t, p.Leases())
	if n := len(p.Leases()); n != 4 {
		t.Fatalf("%d leases after the flood, want the 4 real clients'", n)
	}
	// A flood MAC whose offer was reclaimed and that does REQUEST: the
	// first REQUEST for an address wins, the other client's is refused.
	a := hw(t, "02:00:00:00:00:b1")
	ipa, _ := p.Offer(a, nil, nil)
	var b net.HardwareAddr
	for i := 0; ; i++ { // new MACs reclaim the older offers, then a's
		b = net.HardwareAddr{2, 0, 0, 0, 0xb2, byte(i)}
		ipb, err := p.Offer(b, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if ipb.Equal(ipa) {
			break
		}
		if i > 10 {
			t.Fatalf("%v never reclaimed from a", ipa)
		}
	}
	if _, err := p.Ack(a, ipa, "", false); err != nil {
		t.Fatalf("a's REQUEST after its offer went to b: %v", err)
	}
	if _, err := p.Ack(b, ipa, "", false); err == nil {
		t.Fatalf("b granted %v, leased to a", ipa)
	}
	checkNoDoubles(t, p.Leases())
	// Bounded: offers by the range's size, their queue and the timers by a
	// small multiple, whatever the flood's size.
	if len(p.offers) > 10 || len(p.offerIP) > 10 {
		t.Errorf("%d offers outstanding in a range of 10", len(p.offers))
	}
	if q := len(p.offerQ) - p.offerHead; q > 1024+2*10 {
		t.Errorf("%d offers queued for reclaiming", q)
	}
	if len(p.timers) > 1024+4*20 {
		t.Errorf("%d timers queued", len(p.timers))
	}
	// Leases all taken: a clear error, no offer reclaimed from a lease.
	for i := 0; ; i++ {
		mac := net.HardwareAddr{2, 0x77, 0, 0, 0, byte(i)}
		ip, err := p.Offer(mac, nil, nil)
		if errors.Is(err, ErrPoolFull) {
			break
		}
		if err != nil || i > 10 {
			t.Fatalf("offer %d: %v %v", i, ip, err)
		}
		if _, err := p.Ack(mac, ip, "", false); err != nil {
			t.Fatal(err)
		}
	}
	checkNoDoubles(t, p.Leases())
	if n := len(p.Leases()); n != 9 {
		t.Fatalf("%d leases in a full range of 9 dynamic addresses", n)
	}
}
