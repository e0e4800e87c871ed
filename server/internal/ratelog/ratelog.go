// Package ratelog says when a repeated event from a network client is
// worth a log line: once per client address per interval, with a count of
// what was held back, so that a flood of bad or refused packets costs a
// few lines a minute, not one per packet.
//
//	var bad ratelog.Limiter // zero value: once a minute, 1024 addresses
//	if n, ok := bad.Allow(addr, time.Now()); ok {
//		log.Printf("bad packet from %v: %v%s", addr, err, n)
//	}
package ratelog

import (
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// Defaults for a zero Limiter.
const (
	DefaultInterval = time.Minute
	DefaultMaxAddrs = 1024
)

// Limiter allows one event per address per Interval, remembering at most
// MaxAddrs addresses: beyond that, events from new addresses are counted,
// not logged, until an address's interval has passed. Safe for concurrent
// use; its zero value is ready.
type Limiter struct {
	Interval time.Duration // default DefaultInterval
	MaxAddrs int           // default DefaultMaxAddrs

	mu     sync.Mutex
	last   map[netip.Addr]*entry
	others int // events from addresses that found no room, since the last line
	swept  time.Time
}

type entry struct {
	at   time.Time // when the last line for this address was allowed
	held int       // events from it since, not logged
}

// Held is what a Limiter held back before the line it allows: events from
// the same address since its last line, and from addresses that found no
// room.
type Held struct{ Same, Others int }

// String is "" when nothing was held back, else " (N more from this
// address and M from other addresses not logged)", to end a log line.
func (h Held) String() string {
	switch {
	case h.Same == 0 && h.Others == 0:
		return ""
	case h.Others == 0:
		return fmt.Sprintf(" (%d more from this address not logged)", h.Same)
	case h.Same == 0:
		return fmt.Sprintf(" (%d from other addresses not logged)", h.Others)
	}
	return fmt.Sprintf(" (%d more from this address and %d from other addresses not logged)", h.Same, h.Others)
}

// Allow reports whether an event from addr at now gets a log line, and if
// so what was held back before it.
func (l *Limiter) Allow(addr netip.Addr, now time.Time) (Held, bool) {
	interval := l.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	maxAddrs := l.MaxAddrs
	if maxAddrs <= 0 {
		maxAddrs = DefaultMaxAddrs
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last = map[netip.Addr]*entry{}
	}
	e := l.last[addr]
	if e != nil && now.Sub(e.at) < interval {
		e.held++
		return Held{}, false
	}
	if e == nil && len(l.last) >= maxAddrs {
		// Full: sweep addresses whose interval has passed, at most once an
		// interval, so that a flood costs O(1) per event.
		if now.Sub(l.swept) >= interval {
			l.swept = now
			for a, x := range l.last {
				if now.Sub(x.at) >= interval {
					l.others += x.held
					delete(l.last, a)
				}
			}
		}
		if len(l.last) >= maxAddrs {
			l.others++
			return Held{}, false
		}
	}
	h := Held{Others: l.others}
	l.others = 0
	if e == nil {
		e = &entry{}
		l.last[addr] = e
	}
	h.Same, e.at, e.held = e.held, now, 0
	return h, true
}
