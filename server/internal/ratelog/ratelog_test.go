package ratelog

import (
	"net/netip"
	"testing"
	"time"
)

func addr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}

func TestOncePerAddressWithCounts(t *testing.T) {
	var l Limiter
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	if h, ok := l.Allow(addr(1), now); !ok || h != (Held{}) || h.String() != "" {
		t.Fatalf("first event: %v %+v", ok, h)
	}
	for i := range 41 {
		if _, ok := l.Allow(addr(1), now.Add(time.Duration(i)*time.Second)); ok {
			t.Fatalf("event %d from the same address within the minute logged", i+2)
		}
	}
	if _, ok := l.Allow(addr(2), now.Add(time.Second)); !ok {
		t.Fatal("another address held back")
	}
	h, ok := l.Allow(addr(1), now.Add(DefaultInterval))
	if !ok || h != (Held{Same: 41}) || h.String() != " (41 more from this address not logged)" {
		t.Fatalf("a minute on: %v %+v %q", ok, h, h)
	}
}

func TestBound(t *testing.T) {
	var l Limiter
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, ok := l.Allow(addr(1), now); !ok {
		t.Fatal("first event not logged")
	}
	if _, ok := l.Allow(addr(1), now.Add(time.Second)); ok {
		t.Error("second event from the same address logged")
	}
	logged := 1
	for i := 2; i < 10_000; i++ {
		if _, ok := l.Allow(addr(i), now.Add(2*time.Second)); ok {
			logged++
		}
	}
	if logged != DefaultMaxAddrs || len(l.last) != DefaultMaxAddrs {
		t.Errorf("logged %d, remembered %d addresses; want %d each", logged, len(l.last), DefaultMaxAddrs)
	}
	// A minute on, there is room again, and the next line says how many
	// went unlogged (the first address's one held event included: its
	// entry was swept).
	h, ok := l.Allow(addr(20_000), now.Add(2*time.Second+DefaultInterval))
	if want := (Held{Others: 10_000 - 1 - DefaultMaxAddrs + 1}); !ok || h != want {
		t.Errorf("after the interval: %v %+v, want %+v", ok, h, want)
	}
	if h.String() != " (8976 from other addresses not logged)" {
		t.Errorf("%q", h)
	}
	if _, ok := l.Allow(addr(1), now.Add(time.Second+DefaultInterval)); !ok {
		t.Error("the first address is not logged again after the interval")
	}
}

func TestHeldString(t *testing.T) {
	if s := (Held{Same: 2, Others: 3}).String(); s != " (2 more from this address and 3 from other addresses not logged)" {
		t.Error(s)
	}
}
