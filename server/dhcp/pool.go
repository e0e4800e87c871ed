package dhcp

import (
	"container/heap"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/ramboot/ramboot/internal/atomicfile"
	"net"
	"os"
	"reflect"
	"sort"
	"sync"
	"time"
)

// DefaultLeaseTime is how long a lease lasts unless --lease-time says
// otherwise.
const DefaultLeaseTime = 12 * time.Hour

// DefaultBootLease is how long a lease committed at the OFFER lasts (see
// Pool.BootLease).
const DefaultBootLease = 10 * time.Minute

const (
	defaultOfferHold   = 30 * time.Second
	defaultDeclineHold = 10 * time.Minute
	defaultMaxPending  = 4096
	maxLeaseTime       = time.Duration(0xfffffffe) * time.Second // option 51 is 32-bit seconds; ~0 means infinite
)

// Lease is one address bound to one MAC.
type Lease struct {
	MAC      string    `json:"mac"`
	IP       string    `json:"ip"`
	Expires  time.Time `json:"expires"`
	Hostname string    `json:"hostname,omitempty"`
	Static   bool      `json:"static,omitempty"`

	ip      uint32
	timerAt time.Time // when its expiry timer fires; zero: none queued
}

// Pool hands out addresses from a range and keeps leases in a file.
//
// Every lookup is by map (MAC, address); a new address comes from a cursor
// over never-used addresses, then from a queue of addresses that became
// free (expired, released, moved, set aside and back), each checked again
// when taken: no scan of the range or the leases per request.
//
// An address is never offered or granted while another MAC holds an
// unexpired lease on it, while it is set aside after a DHCPDECLINE, or, for
// a client that is not that node, while the inventory reserves it
// (Reserved). What DECLINEs set aside is bounded, so that made-up MACs
// (each DISCOVER, then DECLINE of its offer) cannot drain the range: one
// address per MAC at a time (its next DECLINE frees the one before), and
// MaxDeclined in all (the oldest is freed for a new one). A MAC is offered its previous address only while the lease
// on it is still that MAC's (valid, or expired and not yet reassigned).
//
// An offer is a soft hold, as in Kea and dnsmasq (RFC 2131 4.3.1 lets a
// server not reserve what it offers): it keeps its address from being
// offered to another client while any other address is free; once none
// is, the oldest offer not yet requested is reclaimed for the new client,
// so a flood of DISCOVERs from made-up MACs cannot hold the range. And the
// first REQUEST for an address nobody leases wins it, even if it was
// offered to another MAC since (that client's REQUEST is then NAKed and it
// starts over): a real client whose offer a flood reclaimed still gets the
// address it asks for.
//
// Leases are durable before the ACK that grants them, by group commit: one
// writer goroutine writes every change made so far (temp file, fsync,
// rename, fsync of the directory), and Durable calls back once the write
// holding a given change is done. Clients keep being served meanwhile, and
// many ACKs share one fsync. The file is always a consistent snapshot in
// which no address is held by two MACs, so a kill -9 at any point loses no
// ACKed lease and doubles none.
type Pool struct {
	Start, End net.IP
	LeaseTime  time.Duration // default DefaultLeaseTime
	// BootLease is how long a lease granted at the OFFER lasts, for a
	// client that never sends a REQUEST (the Pi 3B's boot ROM: the
	// address only has to last through its firmware's TFTP, and its
	// Linux asks for its own lease). Short, so that a flood of made-up
	// Pi 3 MACs cannot hold the range for a whole LeaseTime; default
	// DefaultBootLease, never more than LeaseTime.
	BootLease   time.Duration
	OfferHold   time.Duration // how long an offered address stays reserved; default 30s
	DeclineHold time.Duration // how long a declined address is set aside; default 10m
	// MaxDeclined bounds the addresses set aside at once after DECLINEs;
	// beyond it the oldest goes back to the pool. Default a quarter of the
	// range's dynamic addresses (at least 1).
	MaxDeclined int
	File        string // "" keeps leases in memory only
	Now         func() time.Time
	// Reserved, if set, returns the inventory's fixed addresses (address
	// -> the node, for messages). They are never given to another client,
	// so inventory addresses inside the range are out of the dynamic pool.
	// Return the same map until the inventory changes: the pool rereads a
	// map only when a different one comes back.
	Reserved func() map[string]string
	// SyncFile makes the written lease file durable; default (*os.File).Sync.
	// Tests slow it down.
	SyncFile func(*os.File) error
	// MaxPending bounds the grants waiting for the disk; beyond it a
	// REQUEST is dropped (the client sends it again). Default 4096.
	MaxPending int

	mu         sync.Mutex
	byMAC      map[string]*Lease
	byIP       map[uint32]*Lease
	offers     map[string]*offer // by MAC, not persisted
	offerIP    map[uint32]*offer
	quarantine map[uint32]*setAside // declined addresses
	declinedBy map[string]uint32    // MAC -> the address its DECLINE set aside
	declQ      []*setAside          // set aside, oldest first; stale entries skipped
	declHead   int
	declStats  DeclineStats
	timers     timerHeap
	next       uint64   // cursor: addresses from here to End never handed out since start
	free       []uint32 // addresses that became free, oldest first; checked again when taken
	freeHead   int
	inFree     map[uint32]bool
	reserved   map[uint32]string
	resSrc     any // the map Reserved last returned
	resInRange int
	offerQ     []offerRef // dynamic offers, oldest first: the next to reclaim; stale refs skipped
	offerHead  int
	reclaimed  uint64 // offers reclaimed for another client

	// persistence (group commit)
	seq, durable uint64 // changes made, changes on disk
	waiters      []waiter
	kick, stop   chan struct{}
	done         chan struct{}
	startWriter  sync.Once
	writeErr     error
}

// setAside is an address a client declined, set aside until until.
type setAside struct {
	ip    uint32
	mac   string
	until time.Time
}

// DeclineStats counts what DECLINEs did.
type DeclineStats struct {
	SetAside    uint64 // DECLINEs honoured: an address set aside
	FreedOwn    uint64 // addresses freed early by the same client's next DECLINE
	FreedOldest uint64 // addresses freed early to keep within MaxDeclined
	Held        int    // addresses set aside now
}

// Declined is what one DECLINE did.
type Declined struct {
	Hold time.Duration // how long the address is set aside
	// Addresses this DECLINE freed early to keep within the bounds: the
	// client's previous declined address, and the oldest one set aside
	// (by OldestMAC) when MaxDeclined were.
	FreedOwn, FreedOldest net.IP
	OldestMAC             string
	Max                   int // MaxDeclined in force
}

type offer struct {
	mac     string
	ip      uint32
	expires time.Time
	gen     uint32 // bumped when made again: only the newest offerRef counts
}

type offerRef struct {
	o   *offer
	gen uint32
}

type waiter struct {
	seq  uint64
	done func(error)
}

// Commit names a change to the leases; Durable tells when it is on disk.
type Commit uint64

var (
	// ErrPoolFull is returned when no address is free.
	ErrPoolFull = errors.New("address pool exhausted")
	// ErrBusy is returned when too many grants wait for the disk.
	ErrBusy = errors.New("too many leases waiting to be written")
)

// OpenPool checks the range and loads the lease file, if any.
func OpenPool(start, end net.IP, file string) (*Pool, error) {
	s, e := start.To4(), end.To4()
	if s == nil || e == nil || ip2u(s) > ip2u(e) {
		return nil, fmt.Errorf("--range %s-%s: want two IPv4 addresses, the first not above the second", start, end)
	}
	p := &Pool{Start: s, End: e, File: file,
		byMAC: map[string]*Lease{}, byIP: map[uint32]*Lease{},
		offers: map[string]*offer{}, offerIP: map[uint32]*offer{},
		quarantine: map[uint32]*setAside{}, declinedBy: map[string]uint32{}, inFree: map[uint32]bool{},
		next: uint64(ip2u(s)),
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	if file == "" {
		return p, nil
	}
	data, err := os.ReadFile(file)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return p, nil
	case err != nil:
		return nil, fmt.Errorf("lease file: %w", err)
	}
	var ls []*Lease
	if err := json.Unmarshal(data, &ls); err != nil {
		return nil, fmt.Errorf("lease file %s is damaged (%v): move it aside to start with no leases", file, err)
	}
	for i, l := range ls {
		ip := net.ParseIP(l.IP).To4()
		if ip == nil || l.MAC == "" {
			return nil, fmt.Errorf("lease file %s is damaged (entry %d: mac %q, ip %q): move it aside to start with no leases", file, i+1, l.MAC, l.IP)
		}
		l.ip = ip2u(ip)
		// Files written by this pool never hold an address or a MAC twice;
		// older ones might: the later lease wins.
		if o := p.byMAC[l.MAC]; o != nil {
			if !l.Expires.After(o.Expires) {
				continue
			}
			p.dropLease(o)
		}
		if o := p.byIP[l.ip]; o != nil {
			if !l.Expires.After(o.Expires) {
				continue
			}
			p.dropLease(o)
		}
		p.byMAC[l.MAC], p.byIP[l.ip] = l, l
	}
	for _, l := range p.byMAC {
		p.queueLease(l)
	}
	return p, nil
}

func ip2u(ip net.IP) uint32 { return binary.BigEndian.Uint32(ip.To4()) }
func u2ip(u uint32) net.IP {
	ip := make(net.IP, 4)
	binary.BigEndian.PutUint32(ip, u)
	return ip
}

func (p *Pool) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func (p *Pool) leaseTime() time.Duration {
	switch {
	case p.LeaseTime <= 0:
		return DefaultLeaseTime
	case p.LeaseTime > maxLeaseTime:
		return maxLeaseTime
	}
	return p.LeaseTime
}

// bootLease is BootLease, within (0, leaseTime].
func (p *Pool) bootLease() time.Duration {
	return min(orDefault(p.BootLease, DefaultBootLease), p.leaseTime())
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func (p *Pool) inRange(u uint32) bool { return u >= ip2u(p.Start) && u <= ip2u(p.End) }

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// tick brings the pool to now: expired leases, offers and quarantines
// give their addresses back, and a changed inventory is read.
func (p *Pool) tick(now time.Time) {
	p.refreshReserved()
	for len(p.timers) > 0 && !p.timers[0].at.After(now) {
		t := heap.Pop(&p.timers).(timer)
		switch {
		case t.lease != nil:
			l := t.lease
			if p.byMAC[l.MAC] != l || !t.at.Equal(l.timerAt) {
				continue // replaced, or a later timer stands
			}
			if l.Expires.After(now) {
				l.timerAt = l.Expires
				heap.Push(&p.timers, timer{at: l.Expires, lease: l})
				continue
			}
			// Expired: the address may go to another client. The record
			// stays, so the MAC gets it back if nobody took it meanwhile.
			l.timerAt = time.Time{}
			p.pushFree(l.ip)
		case t.offer != nil:
			o := t.offer
			if p.offers[o.mac] != o {
				continue
			}
			if o.expires.After(now) {
				heap.Push(&p.timers, timer{at: o.expires, offer: o})
				continue
			}
			p.dropOffer(o)
		default:
			a := t.aside
			if a == nil || p.quarantine[a.ip] != a {
				continue // freed early
			}
			p.unquarantine(a)
			p.pushFree(a.ip)
		}
	}
}

// refreshReserved reads the inventory's fixed addresses again if they
// changed; addresses no longer reserved become free.
func (p *Pool) refreshReserved() {
	if p.Reserved == nil {
		return
	}
	m := p.Reserved()
	if p.reserved != nil && reflect.ValueOf(m).UnsafePointer() == reflect.ValueOf(p.resSrc).UnsafePointer() {
		return
	}
	old := p.reserved
	p.reserved, p.resSrc, p.resInRange = make(map[uint32]string, len(m)), m, 0
	for a, who := range m {
		if ip := net.ParseIP(a).To4(); ip != nil {
			u := ip2u(ip)
			p.reserved[u] = who
			if p.inRange(u) {
				p.resInRange++
			}
		}
	}
	for u := range old {
		if _, still := p.reserved[u]; !still {
			p.pushFree(u)
		}
	}
}

func (p *Pool) pushFree(u uint32) {
	if !p.inRange(u) || p.inFree[u] {
		return
	}
	p.inFree[u] = true
	p.free = append(p.free, u)
}

// takenBy says who other than mac holds u, or "" if nobody does. Another
// MAC's offer counts when offers is set (for offering, not for granting:
// offers are soft holds).
func (p *Pool) takenBy(u uint32, mac string, now time.Time, offers bool) string {
	if a := p.quarantine[u]; a != nil && a.until.After(now) {
		return "set aside until " + stamp(a.until) + " (a client declined it: another host uses it)"
	}
	if l := p.byIP[u]; l != nil && l.MAC != mac && l.Expires.After(now) {
		return "leased to " + l.MAC + " until " + stamp(l.Expires)
	}
	if o := p.offerIP[u]; offers && o != nil && o.mac != mac && o.expires.After(now) {
		return "offered to " + o.mac
	}
	return ""
}

// dynamic reports whether u may be handed to mac from the dynamic range.
func (p *Pool) dynamic(u uint32, mac string, now time.Time) bool {
	if !p.inRange(u) {
		return false
	}
	if _, r := p.reserved[u]; r {
		return false
	}
	return p.takenBy(u, mac, now, true) == ""
}

// allocate takes a free address: a never-used one first, then the one
// free the longest (so a returning client likely finds its old one).
func (p *Pool) allocate(mac string, now time.Time) (uint32, bool) {
	for p.next <= uint64(ip2u(p.End)) {
		u := uint32(p.next)
		p.next++
		// An address with a lease record comes back through the queue
		// when that lease ends.
		if p.byIP[u] == nil && p.dynamic(u, mac, now) {
			return u, true
		}
	}
	for p.freeHead < len(p.free) {
		u := p.free[p.freeHead]
		p.freeHead++
		delete(p.inFree, u)
		if p.freeHead > 1024 && p.freeHead*2 > len(p.free) {
			p.free = append([]uint32(nil), p.free[p.freeHead:]...)
			p.freeHead = 0
		}
		// Not free after all (taken since, reserved, set aside): whatever
		// holds it now puts it back when it lets go.
		if p.dynamic(u, mac, now) {
			return u, true
		}
	}
	return 0, false
}

func (p *Pool) hold(mac string, u uint32, now time.Time) {
	exp := now.Add(orDefault(p.OfferHold, defaultOfferHold))
	o := p.offers[mac]
	switch {
	case o != nil && o.ip == u:
		o.expires = exp
		o.gen++ // asked again: the newest offer, the last to be reclaimed
	default:
		if o != nil {
			p.dropOffer(o)
		}
		if o := p.offerIP[u]; o != nil { // another MAC's, lapsed or reclaimed
			p.dropOffer(o)
		}
		o = &offer{mac: mac, ip: u, expires: exp}
		p.offers[mac], p.offerIP[u] = o, o
		heap.Push(&p.timers, timer{at: exp, offer: o})
		if n := len(p.timers); n > 1024 && n > 4*(len(p.byMAC)+len(p.offers)+len(p.quarantine)) {
			p.pruneTimers() // reclaimed offers' timers: a flood's, not yet due
		}
	}
	if _, r := p.reserved[u]; !r && p.inRange(u) {
		p.offerQ = append(p.offerQ, offerRef{o, o.gen})
		if live := len(p.offerQ) - p.offerHead; live > 1024 && live > 2*len(p.offers) {
			p.compactOffers()
		}
	}
}

// reclaimOffer drops the oldest dynamic offer not yet requested (and not
// mac's), so that its address may go to mac; false if there is none.
func (p *Pool) reclaimOffer(mac string) bool {
	for p.offerHead < len(p.offerQ) {
		r := p.offerQ[p.offerHead]
		p.offerQ[p.offerHead] = offerRef{}
		p.offerHead++
		if p.offerHead > 1024 && p.offerHead*2 > len(p.offerQ) {
			p.offerQ = append([]offerRef(nil), p.offerQ[p.offerHead:]...)
			p.offerHead = 0
		}
		if !p.liveOffer(r) || r.o.mac == mac {
			continue
		}
		p.dropOffer(r.o)
		p.reclaimed++
		return true
	}
	return false
}

func (p *Pool) liveOffer(r offerRef) bool {
	return p.offers[r.o.mac] == r.o && p.offerIP[r.o.ip] == r.o && r.o.gen == r.gen
}

// compactOffers drops stale refs (offers since requested, expired, made
// again), keeping the queue within twice the offers outstanding.
func (p *Pool) compactOffers() {
	q := make([]offerRef, 0, 2*len(p.offers))
	for _, r := range p.offerQ[p.offerHead:] {
		if p.liveOffer(r) {
			q = append(q, r)
		}
	}
	p.offerQ, p.offerHead = q, 0
}

func (p *Pool) dropOffer(o *offer) {
	if p.offers[o.mac] == o {
		delete(p.offers, o.mac)
	}
	if p.offerIP[o.ip] == o {
		delete(p.offerIP, o.ip)
	}
	p.pushFree(o.ip)
}

func (p *Pool) dropLease(l *Lease) {
	if p.byMAC[l.MAC] == l {
		delete(p.byMAC, l.MAC)
	}
	if p.byIP[l.ip] == l {
		delete(p.byIP, l.ip)
	}
}

func (p *Pool) queueLease(l *Lease) {
	if l.timerAt.IsZero() || l.Expires.Before(l.timerAt) {
		l.timerAt = l.Expires
		heap.Push(&p.timers, timer{at: l.Expires, lease: l})
	}
}

func (p *Pool) fullErr() error {
	return fmt.Errorf("%w: %s-%s (%d addresses, %d of them reserved for inventory nodes): %d leases, %d offers pending, %d declined addresses set aside",
		ErrPoolFull, p.Start, p.End, uint64(ip2u(p.End))-uint64(ip2u(p.Start))+1, p.resInRange,
		len(p.byIP), len(p.offers), len(p.quarantine))
}

// Offer picks an address for mac and holds it for OfferHold: its fixed
// one (static, from the inventory) if no other client holds it, else its
// previous one while that is still its own, the one it asks for if free,
// or a free one. A fixed address that another client holds is an error:
// the node gets nothing (rather than a dynamic address it would boot and
// be known by) until that lease ends; the message names the holder.
func (p *Pool) Offer(mac net.HardwareAddr, requested, static net.IP) (net.IP, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	p.tick(now)
	m := mac.String()
	if static != nil {
		s := static.To4()
		if s == nil {
			return nil, fmt.Errorf("this node's fixed address %s is not IPv4", static)
		}
		if who := p.takenBy(ip2u(s), m, now, true); who != "" {
			return nil, fmt.Errorf("this node's fixed address %s is %s: no offer until it is free", s, who)
		}
		p.hold(m, ip2u(s), now)
		return s, nil
	}
	if l := p.byMAC[m]; l != nil && p.byIP[l.ip] == l && p.dynamic(l.ip, m, now) {
		p.hold(m, l.ip, now)
		return u2ip(l.ip), nil
	}
	if r := requested.To4(); r != nil && p.dynamic(ip2u(r), m, now) {
		p.hold(m, ip2u(r), now)
		return r, nil
	}
	if o := p.offers[m]; o != nil && p.dynamic(o.ip, m, now) {
		p.hold(m, o.ip, now) // asked again: the same address
		return u2ip(o.ip), nil
	}
	for {
		if u, ok := p.allocate(m, now); ok {
			p.hold(m, u, now)
			return u2ip(u), nil
		}
		if !p.reclaimOffer(m) {
			return nil, p.fullErr()
		}
	}
}

// Grant binds ip to mac if it may: a fixed address (static) if no other
// client holds it, else an address of the range that nobody else holds
// and the inventory does not reserve. The lease is in force at once; it
// is on disk once the returned commit is durable (see Durable): send the
// ACK then.
func (p *Pool) Grant(mac net.HardwareAddr, ip net.IP, hostname string, static bool) (Lease, Commit, error) {
	return p.grant(mac, ip, hostname, static, p.leaseTime(), false)
}

// GrantBoot is Grant for a client that sends no REQUEST (the Pi 3B's
// ROM), called at the OFFER: the lease lasts BootLease, or as long as
// the client's current lease on ip if that ends later (a Pi 3 whose
// Linux already holds a full lease keeps it across a reboot).
func (p *Pool) GrantBoot(mac net.HardwareAddr, ip net.IP, hostname string, static bool) (Lease, Commit, error) {
	return p.grant(mac, ip, hostname, static, p.bootLease(), true)
}

// grant leases ip to mac for d; keepLonger keeps a later end the lease
// already has.
func (p *Pool) grant(mac net.HardwareAddr, ip net.IP, hostname string, static bool, d time.Duration, keepLonger bool) (Lease, Commit, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	p.tick(now)
	m := mac.String()
	ip4 := ip.To4()
	if ip4 == nil {
		return Lease{}, 0, fmt.Errorf("%s is not an IPv4 address", ip)
	}
	u := ip2u(ip4)
	if !static {
		if !p.inRange(u) {
			return Lease{}, 0, fmt.Errorf("%s is outside the pool %s-%s", ip4, p.Start, p.End)
		}
		if who, r := p.reserved[u]; r {
			if l := p.byIP[u]; l != nil && l.MAC == m {
				// Leased before the inventory fixed it for a node: this
				// client is told to stop using it, and the node may have it.
				p.dropLease(l)
				p.changed()
			}
			return Lease{}, 0, fmt.Errorf("%s is reserved for inventory node %s", ip4, who)
		}
	}
	if who := p.takenBy(u, m, now, false); who != "" {
		return Lease{}, 0, fmt.Errorf("%s is %s", ip4, who)
	}
	if p.File != "" && len(p.waiters) >= orInt(p.MaxPending, defaultMaxPending) {
		return Lease{}, 0, ErrBusy
	}
	if o := p.byIP[u]; o != nil && o.MAC != m {
		p.dropLease(o) // expired and not renewed: the address changes hands
	}
	l := p.byMAC[m]
	if l != nil && l.ip != u {
		p.dropLease(l)
		p.pushFree(l.ip)
		l = nil
	}
	if l == nil {
		l = &Lease{MAC: m, IP: ip4.String(), ip: u}
	}
	if exp := now.Add(d).UTC().Truncate(time.Second); !keepLonger || l.Expires.Before(exp) {
		l.Expires = exp
	}
	l.Hostname, l.Static = hostname, static
	p.byMAC[m], p.byIP[u] = l, l
	p.queueLease(l)
	if o := p.offers[m]; o != nil {
		if o.ip == u {
			delete(p.offers, m)
			delete(p.offerIP, u)
		} else {
			p.dropOffer(o)
		}
	}
	if o := p.offerIP[u]; o != nil { // another MAC's: the first REQUEST wins
		delete(p.offers, o.mac)
		delete(p.offerIP, u)
	}
	return *l, p.changed(), nil
}

func orInt(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// Ack grants ip to mac (see Grant) and returns once the lease is on disk.
func (p *Pool) Ack(mac net.HardwareAddr, ip net.IP, hostname string, static bool) (*Lease, error) {
	l, c, err := p.Grant(mac, ip, hostname, static)
	if err != nil {
		return nil, err
	}
	if err := p.Wait(c); err != nil {
		return nil, err
	}
	return &l, nil
}

// Release ends mac's lease (on ip, if given). The record stays, expired,
// so the client is offered the same address again if it is still free.
func (p *Pool) Release(mac net.HardwareAddr, ip net.IP) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	p.tick(now)
	l := p.byMAC[mac.String()]
	if l == nil || (ip != nil && !ip.IsUnspecified() && ip.To4() != nil && l.ip != ip2u(ip)) || !l.Expires.After(now) {
		return
	}
	l.Expires = now.UTC().Truncate(time.Second)
	p.pushFree(l.ip)
	p.changed()
}

// Decline sets ip aside for DeclineHold: mac found another host using it
// (RFC 2131 4.3.3). mac's lease or offer on it ends. Only the client that
// holds or was offered ip may decline it, so nobody can drain the pool
// with made-up DECLINEs; and a made-up MAC's DISCOVER and DECLINE sets
// aside one address at most (a client's next DECLINE frees the one
// before), MaxDeclined in all (the oldest is freed for a new one).
func (p *Pool) Decline(mac net.HardwareAddr, ip net.IP) (Declined, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	p.tick(now)
	m := mac.String()
	ip4 := ip.To4()
	if ip4 == nil {
		return Declined{}, fmt.Errorf("declined address %s is not IPv4", ip)
	}
	u := ip2u(ip4)
	l, o := p.byIP[u], p.offerIP[u]
	ownLease, ownOffer := l != nil && l.MAC == m, o != nil && o.mac == m
	if !ownLease && !ownOffer {
		return Declined{}, fmt.Errorf("%s was neither leased nor offered to this client", ip4)
	}
	d := Declined{Hold: orDefault(p.DeclineHold, defaultDeclineHold)}
	if a := p.quarantine[u]; a != nil { // set aside already (a fixed address): again, from now
		p.unquarantine(a)
	}
	if prev, ok := p.declinedBy[m]; ok {
		if a := p.quarantine[prev]; a != nil && a.mac == m {
			p.unquarantine(a)
			p.pushFree(a.ip)
			p.declStats.FreedOwn++
			d.FreedOwn = u2ip(a.ip)
		}
	}
	d.Max = p.maxDeclined()
	if len(p.quarantine) >= d.Max {
		if a := p.oldestDeclined(); a != nil {
			p.unquarantine(a)
			p.pushFree(a.ip)
			p.declStats.FreedOldest++
			d.FreedOldest, d.OldestMAC = u2ip(a.ip), a.mac
		}
	}
	a := &setAside{ip: u, mac: m, until: now.Add(d.Hold)}
	p.quarantine[u], p.declinedBy[m] = a, u
	p.declQ = append(p.declQ, a)
	if live := len(p.declQ) - p.declHead; live > 1024 && live > 2*len(p.quarantine) {
		q := make([]*setAside, 0, 2*len(p.quarantine))
		for _, a := range p.declQ[p.declHead:] {
			if p.quarantine[a.ip] == a {
				q = append(q, a)
			}
		}
		p.declQ, p.declHead = q, 0 // ended holds dropped
	}
	heap.Push(&p.timers, timer{at: a.until, aside: a})
	if n := len(p.timers); n > 1024 && n > 4*(len(p.byMAC)+len(p.offers)+len(p.quarantine)) {
		p.pruneTimers() // holds freed early: their timers, not yet due
	}
	p.declStats.SetAside++
	if ownOffer {
		delete(p.offers, m)
		delete(p.offerIP, u)
	}
	if ownLease {
		p.dropLease(l)
		p.changed()
	}
	return d, nil
}

// maxDeclined is MaxDeclined, or a quarter of the dynamic addresses.
func (p *Pool) maxDeclined() int {
	if p.MaxDeclined > 0 {
		return p.MaxDeclined
	}
	size := int64(ip2u(p.End)) - int64(ip2u(p.Start)) + 1 - int64(p.resInRange)
	return int(max(size/4, 1))
}

// unquarantine ends a's hold (its address is not freed here).
func (p *Pool) unquarantine(a *setAside) {
	if p.quarantine[a.ip] == a {
		delete(p.quarantine, a.ip)
	}
	if u, ok := p.declinedBy[a.mac]; ok && u == a.ip {
		delete(p.declinedBy, a.mac)
	}
}

// oldestDeclined is the address set aside the longest, nil if none.
func (p *Pool) oldestDeclined() *setAside {
	for p.declHead < len(p.declQ) {
		a := p.declQ[p.declHead]
		p.declQ[p.declHead] = nil
		p.declHead++
		if p.declHead > 1024 && p.declHead*2 > len(p.declQ) {
			p.declQ = append([]*setAside(nil), p.declQ[p.declHead:]...)
			p.declHead = 0
		}
		if p.quarantine[a.ip] == a {
			return a
		}
	}
	return nil
}

// DeclineStats counts what DECLINEs did so far.
func (p *Pool) DeclineStats() DeclineStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.declStats
	st.Held = len(p.quarantine)
	return st
}

// Leases lists the leases, expired ones not yet reassigned included,
// sorted by address.
func (p *Pool) Leases() []Lease {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Lease, 0, len(p.byMAC))
	for _, l := range p.byMAC {
		out = append(out, *l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ip < out[j].ip })
	return out
}

// changed records a change to the leases and wakes the writer; the
// caller holds p.mu.
func (p *Pool) changed() Commit {
	p.seq++
	if p.File == "" {
		p.durable = p.seq
		return Commit(p.seq)
	}
	p.startWriter.Do(func() { go p.writer() })
	select {
	case p.kick <- struct{}{}:
	default:
	}
	return Commit(p.seq)
}

// Durable calls done once change c is on disk (nil), or its write failed.
// done may run on the writer's goroutine: it must not call into the pool
// and should not block.
func (p *Pool) Durable(c Commit, done func(error)) {
	p.mu.Lock()
	if p.File == "" || p.durable >= uint64(c) {
		p.mu.Unlock()
		done(nil)
		return
	}
	p.waiters = append(p.waiters, waiter{seq: uint64(c), done: done})
	p.mu.Unlock()
	select { // after a failed write, try again for this one
	case p.kick <- struct{}{}:
	default:
	}
}

// Wait returns once change c is on disk.
func (p *Pool) Wait(c Commit) error {
	ch := make(chan error, 1)
	p.Durable(c, func(err error) { ch <- err })
	return <-ch
}

// Close writes what is not on disk yet and stops the writer.
func (p *Pool) Close() error {
	p.mu.Lock()
	started := p.seq > 0 && p.File != ""
	p.mu.Unlock()
	if !started {
		return nil
	}
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.writeErr
}

// writer is the group commit: each round writes every change made so far
// in one file, then calls back everyone waiting for one of them.
func (p *Pool) writer() {
	defer close(p.done)
	for {
		stopping := false
		select {
		case <-p.kick:
		case <-p.stop:
			stopping = true
		}
		p.mu.Lock()
		seq := p.seq
		if p.durable >= seq {
			p.mu.Unlock()
			if stopping {
				return
			}
			continue
		}
		ls := make([]Lease, 0, len(p.byMAC))
		for _, l := range p.byMAC {
			ls = append(ls, *l)
		}
		p.mu.Unlock()

		err := p.write(ls)

		p.mu.Lock()
		if err == nil && seq > p.durable {
			p.durable = seq
		}
		p.writeErr = err
		var ready []waiter
		rest := p.waiters[:0]
		for _, w := range p.waiters {
			if w.seq <= seq {
				ready = append(ready, w)
			} else {
				rest = append(rest, w)
			}
		}
		clear(p.waiters[len(rest):])
		p.waiters = rest
		p.mu.Unlock()
		for _, w := range ready {
			w.done(err)
		}
		if stopping {
			return
		}
	}
}

// write puts the leases in the file atomically and durably: temp file,
// fsync, rename, fsync of the directory.
func (p *Pool) write(ls []Lease) error {
	sort.Slice(ls, func(i, j int) bool { return ls[i].MAC < ls[j].MAC })
	data, err := json.MarshalIndent(ls, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(p.File, append(data, '\n'), atomicfile.Options{Sync: p.SyncFile}); err != nil {
		return fmt.Errorf("lease file: %w", err)
	}
	return nil
}

// pruneTimers drops the timers of leases, offers and quarantines that
// are gone or were replaced, so that the heap stays within a few times
// what the pool holds however fast offers are reclaimed.
func (p *Pool) pruneTimers() {
	live := p.timers[:0]
	for _, t := range p.timers {
		switch {
		case t.lease != nil:
			if p.byMAC[t.lease.MAC] != t.lease || !t.at.Equal(t.lease.timerAt) {
				continue
			}
		case t.offer != nil:
			if p.offers[t.offer.mac] != t.offer {
				continue
			}
		default:
			if t.aside == nil || p.quarantine[t.aside.ip] != t.aside {
				continue
			}
		}
		live = append(live, t)
	}
	clear(p.timers[len(live):])
	p.timers = live
	heap.Init(&p.timers)
}

// timer is a lease, offer or declined address (aside) that ends at at.
type timer struct {
	at    time.Time
	lease *Lease
	offer *offer
	aside *setAside
}

type timerHeap []timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(timer)) }
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = timer{}
	*h = old[:len(old)-1]
	return t
}
