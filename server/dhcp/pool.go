package dhcp

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// Lease is one address bound to one MAC.
type Lease struct {
	MAC      string    `json:"mac"`
	IP       string    `json:"ip"`
	Expires  time.Time `json:"expires"`
	Hostname string    `json:"hostname,omitempty"`
	Static   bool      `json:"static,omitempty"`
}

// Pool hands out addresses from a range and keeps leases in a file, so a
// crash (kill -9) and restart neither loses nor doubles a lease: a lease
// is written and synced before the ACK that grants it is sent.
type Pool struct {
	Start, End net.IP
	LeaseTime  time.Duration // default 12h
	OfferHold  time.Duration // how long an offered address stays reserved; default 30s
	File       string        // "" keeps leases in memory only
	Now        func() time.Time

	mu     sync.Mutex
	leases map[string]*Lease // by MAC
	offers map[string]offer  // by MAC, not persisted
}

type offer struct {
	ip      string
	expires time.Time
}

// ErrPoolFull is returned when no address is free.
var ErrPoolFull = errors.New("address pool exhausted")

// OpenPool checks the range and loads the lease file, if any.
func OpenPool(start, end net.IP, file string) (*Pool, error) {
	s, e := start.To4(), end.To4()
	if s == nil || e == nil || ip2u(s) > ip2u(e) {
		return nil, fmt.Errorf("--range %s-%s: want two IPv4 addresses, the first not above the second", start, end)
	}
	p := &Pool{Start: s, End: e, File: file, leases: map[string]*Lease{}, offers: map[string]offer{}}
	if file != "" {
		data, err := os.ReadFile(file)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("lease file: %w", err)
		default:
			var ls []*Lease
			if err := json.Unmarshal(data, &ls); err != nil {
				return nil, fmt.Errorf("lease file %s is damaged (%v): move it aside to start with no leases", file, err)
			}
			for _, l := range ls {
				p.leases[l.MAC] = l
			}
		}
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

func (p *Pool) inRange(ip net.IP) bool {
	ip = ip.To4()
	return ip != nil && ip2u(ip) >= ip2u(p.Start) && ip2u(ip) <= ip2u(p.End)
}

// holder returns the MAC that holds ip now (lease or fresh offer), or "".
func (p *Pool) holder(ip string, now time.Time) string {
	for mac, l := range p.leases {
		if l.IP == ip && (l.Static || l.Expires.After(now)) {
			return mac
		}
	}
	for mac, o := range p.offers {
		if o.ip == ip && o.expires.After(now) {
			return mac
		}
	}
	return ""
}

// Offer picks an address for mac: its static one, its current lease, the
// one it asks for if free, or the lowest free one.
func (p *Pool) Offer(mac net.HardwareAddr, requested, static net.IP) (net.IP, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	m := mac.String()
	pick := func(ip net.IP) net.IP {
		hold := p.OfferHold
		if hold == 0 {
			hold = 30 * time.Second
		}
		p.offers[m] = offer{ip: ip.String(), expires: now.Add(hold)}
		return ip
	}
	if static != nil {
		return pick(static.To4()), nil
	}
	if l, ok := p.leases[m]; ok && p.inRange(net.ParseIP(l.IP)) {
		return pick(net.ParseIP(l.IP).To4()), nil
	}
	if requested != nil && p.inRange(requested) {
		if h := p.holder(requested.String(), now); h == "" || h == m {
			return pick(requested.To4()), nil
		}
	}
	for u := ip2u(p.Start); u <= ip2u(p.End) && u >= ip2u(p.Start); u++ {
		ip := u2ip(u)
		if h := p.holder(ip.String(), now); h == "" || h == m {
			return pick(ip), nil
		}
		if u == 0xffffffff {
			break
		}
	}
	return nil, ErrPoolFull
}

// Ack grants ip to mac if it is free or already theirs, and persists it
// before returning.
func (p *Pool) Ack(mac net.HardwareAddr, ip net.IP, hostname string, static bool) (*Lease, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	m := mac.String()
	if !static && !p.inRange(ip) {
		return nil, fmt.Errorf("%s is outside the pool", ip)
	}
	if h := p.holder(ip.String(), now); h != "" && h != m {
		return nil, fmt.Errorf("%s is leased to %s", ip, h)
	}
	lt := p.LeaseTime
	if lt == 0 {
		lt = 12 * time.Hour
	}
	old := p.leases[m]
	l := &Lease{MAC: m, IP: ip.String(), Expires: now.Add(lt).UTC().Truncate(time.Second), Hostname: hostname, Static: static}
	p.leases[m] = l
	delete(p.offers, m)
	if err := p.save(); err != nil {
		if old != nil {
			p.leases[m] = old
		} else {
			delete(p.leases, m)
		}
		return nil, err
	}
	return l, nil
}

// Release ends mac's lease.
func (p *Pool) Release(mac net.HardwareAddr, ip net.IP) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l, ok := p.leases[mac.String()]; ok && (ip == nil || l.IP == ip.String()) && !l.Static {
		delete(p.leases, mac.String())
		_ = p.save()
	}
}

// Leases lists the current leases, sorted by address.
func (p *Pool) Leases() []Lease {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Lease
	for _, l := range p.leases {
		out = append(out, *l)
	}
	sort.Slice(out, func(i, j int) bool { return ip2u(net.ParseIP(out[i].IP)) < ip2u(net.ParseIP(out[j].IP)) })
	return out
}

// save writes the lease file atomically and durably: temp file, fsync,
// rename, fsync of the directory.
func (p *Pool) save() error {
	if p.File == "" {
		return nil
	}
	var ls []*Lease
	for _, l := range p.leases {
		ls = append(ls, l)
	}
	sort.Slice(ls, func(i, j int) bool { return ls[i].MAC < ls[j].MAC })
	data, err := json.MarshalIndent(ls, "", "  ")
	if err != nil {
		return err
	}
	tmp := p.File + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("lease file: %w", err)
	}
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("lease file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("lease file: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, p.File); err != nil {
		return fmt.Errorf("lease file: %w", err)
	}
	if d, err := os.Open(filepath.Dir(p.File)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
