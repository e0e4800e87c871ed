package status

import (
	"testing"
	"time"
)

func TestKeyOfIP(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	b := &Board{Now: func() time.Time { now = now.Add(time.Second); return now }}
	if got := b.KeyOfIP("10.0.0.5"); got != "" {
		t.Fatalf("empty board: KeyOfIP = %q, want \"\"", got)
	}
	b.Record("aa:aa:aa:aa:aa:aa", Node{MAC: "aa:aa:aa:aa:aa:aa", IP: "10.0.0.5"}, "dhcp ack", "")
	b.Record("bb:bb:bb:bb:bb:bb", Node{MAC: "bb:bb:bb:bb:bb:bb", IP: "10.0.0.6"}, "dhcp ack", "")
	if got := b.KeyOfIP("10.0.0.5"); got != "aa:aa:aa:aa:aa:aa" {
		t.Errorf("KeyOfIP(10.0.0.5) = %q, want aa:aa:aa:aa:aa:aa", got)
	}
	// The address moves to another node: the most recent record wins.
	b.Record("cc:cc:cc:cc:cc:cc", Node{MAC: "cc:cc:cc:cc:cc:cc", IP: "10.0.0.5"}, "dhcp ack", "")
	if got := b.KeyOfIP("10.0.0.5"); got != "cc:cc:cc:cc:cc:cc" {
		t.Errorf("after a newer record, KeyOfIP(10.0.0.5) = %q, want cc:cc:cc:cc:cc:cc", got)
	}
	// A later step without an IP keeps the node's known IP.
	b.Record("aa:aa:aa:aa:aa:aa", Node{}, "tftp read", "start4.elf")
	if got := b.KeyOfIP("10.0.0.5"); got != "aa:aa:aa:aa:aa:aa" {
		t.Errorf("after aa's newer step, KeyOfIP(10.0.0.5) = %q, want aa:aa:aa:aa:aa:aa", got)
	}
	for _, ip := range []string{"10.0.0.7", ""} {
		if got := b.KeyOfIP(ip); got != "" {
			t.Errorf("KeyOfIP(%q) = %q, want \"\"", ip, got)
		}
	}
}
