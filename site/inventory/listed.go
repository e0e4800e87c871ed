package inventory

import (
	"net"
	"strings"
)

// Listed reports whether nodes.yaml has an entry of its own for mac (not
// only the defaults, which cover every MAC).
func (inv *Inventory) Listed(mac net.HardwareAddr) bool {
	return inv != nil && mac != nil && inv.byMAC[mac.String()] != nil
}

// ListedSerial reports whether nodes.yaml has an entry of its own for
// this Pi serial.
func (inv *Inventory) ListedSerial(serial string) bool {
	return inv != nil && serial != "" && inv.bySerial[strings.ToLower(serial)] != nil
}

// Line is the line of nodes.yaml the entry starts on (0 for the defaults).
func (n *Node) Line() int { return n.line }
