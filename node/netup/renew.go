//go:build linux

package netup

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
)

// leaseState is the mutable part of a Result, shared with KeepRenewed.
type leaseState struct {
	mu    sync.Mutex
	lease *nclient4.Lease
}

func (s *leaseState) get() *nclient4.Lease {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lease
}

// errNoLease is returned by Renew on a Result that Up did not make.
var errNoLease = errors.New("no DHCP lease to renew")

// Renew renews the lease once: a REQUEST with ciaddr set, broadcast on
// r.Interface, bounded by cfg.DHCPTimeout. It returns the new lease time.
// The exported fields of r do not change (the address stays the same);
// it is safe to call while KeepRenewed runs.
func (r *Result) Renew(ctx context.Context, cfg Config) (time.Duration, error) {
	if r == nil || r.st == nil || r.st.get() == nil {
		return 0, errNoLease
	}
	cfg = cfg.withDefaults()
	old := r.st.get()
	ctx, cancel := context.WithTimeout(ctx, cfg.DHCPTimeout)
	defer cancel()
	c, err := newClient(r.Interface, cfg)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	req := newRenewFromAck(old.ACK, modifiers(cfg)...)
	sid := serverID(old.ACK)
	match := nclient4.IsMessageType(dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak)
	if sid != nil {
		match = nclient4.IsAll(nclient4.IsCorrectServer(sid), match)
	}
	ack, err := sendRetrying(ctx, c, req, match)
	if err != nil {
		return 0, fmt.Errorf("%s: no answer from DHCP server %v to renew %v within %v", r.Interface, sid, r.IP.IP, cfg.DHCPTimeout)
	}
	if ack.MessageType() == dhcpv4.MessageTypeNak {
		return 0, fmt.Errorf("%s: DHCP server %v refused to renew %v (NAK %q): the address may be given to someone else",
			r.Interface, sid, r.IP.IP, ack.Message())
	}
	r.st.mu.Lock()
	r.st.lease = &nclient4.Lease{Offer: old.Offer, ACK: ack, CreationTime: time.Now()}
	r.st.mu.Unlock()
	return ack.IPAddressLeaseTime(0), nil
}

// renewOnce is Renew; unit tests swap it.
var renewOnce = (*Result).Renew

// minRenewRetry is the shortest wait after a failed renewal.
var minRenewRetry = time.Minute

// infiniteLease is option 51's 0xffffffff.
const infiniteLease = time.Duration(0xffffffff) * time.Second

// KeepRenewed renews r's lease at T1 (option 58, else half the lease)
// until ctx ends. A failed renewal is logged and retried after half the
// time left (at least a minute); after expiry the address is kept and
// renewal retried every minute, since a diskless machine cannot do
// without it. It never panics and returns when ctx ends or the lease is
// infinite. Run it in its own goroutine.
func KeepRenewed(ctx context.Context, cfg Config, r *Result) {
	cfg = cfg.withDefaults()
	defer func() {
		if p := recover(); p != nil {
			cfg.Log("BUG: DHCP lease renewal stopped: %v", p)
		}
	}()
	if r == nil || r.st == nil || r.st.get() == nil {
		cfg.Log("%v", errNoLease)
		return
	}
	for {
		l := r.st.get()
		lease := l.ACK.IPAddressLeaseTime(0)
		if lease <= 0 || lease >= infiniteLease {
			cfg.Log("%s: lease of %v has no end; not renewing", r.Interface, r.IP.IP)
			return
		}
		t1 := l.ACK.IPAddressRenewalTime(lease / 2)
		if t1 <= 0 || t1 >= lease {
			t1 = lease / 2
		}
		expiry := l.CreationTime.Add(lease)
		next := l.CreationTime.Add(t1)
		for {
			if !sleepUntil(ctx, next) {
				return
			}
			d, err := renewOnce(r, ctx, cfg)
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				cfg.Log("%s: renewed %v for %v", r.Interface, r.IP.IP, d)
				break
			}
			left := time.Until(expiry)
			wait := max(left/2, minRenewRetry)
			if left <= 0 {
				cfg.Log("%v; the lease has expired, keeping the address and trying again in %v", err, wait)
			} else {
				cfg.Log("%v; the lease ends in %v, trying again in %v", err, left.Round(time.Second), wait)
			}
			next = time.Now().Add(wait)
		}
	}
}

// sleepUntil waits until t; false if ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}
