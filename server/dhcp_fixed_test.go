package server

import (
	"testing"

	"github.com/ramboot/ramboot/site/inventory"
)

// invBooter is a Booter that only has an inventory.
type invBooter struct {
	BooterFunc
	inv *inventory.Inventory
}

func (b *invBooter) Inventory() *inventory.Inventory { return b.inv }

func TestFixedAddresses(t *testing.T) {
	b := &invBooter{}
	s := &Server{Booter: b}
	fixed := s.fixedAddresses()
	if m := fixed(); len(m) != 0 {
		t.Fatalf("no inventory: %v", m)
	}
	inv, err := inventory.Parse([]byte("nodes:\n  - mac: 02:00:00:00:00:07\n    hostname: static-7\n    address: 192.0.2.50\n  - serial: 9ffefdef\n    address: 192.0.2.51\n  - mac: 02:00:00:00:00:08\n"))
	if err != nil {
		t.Fatal(err)
	}
	b.inv = inv
	m := fixed()
	if len(m) != 2 || m["192.0.2.50"] != "static-7" || m["192.0.2.51"] != "serial 9ffefdef" {
		t.Fatalf("fixed addresses %v", m)
	}
	m["x"] = "same map"
	if fixed()["x"] != "same map" {
		t.Fatal("the map was built again though the inventory did not change")
	}
}
