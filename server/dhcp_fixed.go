package server

import (
	"fmt"
	"net"
	"sync"

	"github.com/ramboot/ramboot/site/inventory"
)

// fixedAddresses returns, for full DHCP's pool (dhcp.Pool.Reserved), the
// inventory's fixed addresses, each with the node it is for. The map is
// built again only when the inventory in force changes, so the pool sees
// the same map until then.
func (s *Server) fixedAddresses() func() map[string]string {
	var (
		mu   sync.Mutex
		last *inventory.Inventory
		m    map[string]string
	)
	return func() map[string]string {
		inv := s.booter().Inventory()
		mu.Lock()
		defer mu.Unlock()
		if m != nil && inv == last {
			return m
		}
		last, m = inv, map[string]string{}
		if inv == nil {
			return m
		}
		for i, n := range inv.Nodes {
			ip := net.ParseIP(n.Address).To4()
			if ip == nil {
				continue
			}
			who := n.Hostname
			switch {
			case who != "":
			case n.MAC != "":
				who = n.MAC
			case n.Serial != "":
				who = "serial " + n.Serial
			default:
				who = fmt.Sprintf("#%d", i+1)
			}
			m[ip.String()] = who
		}
		return m
	}
}
