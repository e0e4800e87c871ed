package inventory

import "net"

// Listed reports whether nodes.yaml has an entry of its own for mac (not
// only the defaults, which cover every MAC).
func (inv *Inventory) Listed(mac net.HardwareAddr) bool {
	return inv != nil && mac != nil && inv.byMAC[mac.String()] != nil
}
