package server

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// The kernel's neighbour (ARP) table holds at most gc_thresh3 entries
// (1024 by default) for the whole machine; past it new neighbours are
// dropped ("neighbour table overflow"), and the server can no longer
// reach, or tell apart, nodes on a big segment: warewulf and MAAS users
// meet it at a few hundred nodes on a /22. `serve --check` compares the
// segment with the limit.

// neighThresh3 is where the limit is read; a variable for tests.
var neighThresh3 = "/proc/sys/net/ipv4/neigh/default/gc_thresh3"

// neighWarning says what to raise when a segment with room for hosts
// nodes (the interface's network, or the inventory and range if more)
// can outgrow a neighbour table of limit entries; "" when it fits with
// room to spare (the table also holds the server's other neighbours).
func neighWarning(hosts, limit int, iface string) string {
	if limit <= 0 || hosts < limit*3/4 {
		return ""
	}
	want := 1
	for want < 2*hosts {
		want <<= 1
	}
	return fmt.Sprintf("%s: room for %d hosts, and the kernel's neighbour table holds %d (net.ipv4.neigh.default.gc_thresh3): past it nodes go unreachable (\"neighbour table overflow\"). Raise it, for example in /etc/sysctl.d/ramboot.conf: net.ipv4.neigh.default.gc_thresh1 = %d, net.ipv4.neigh.default.gc_thresh2 = %d, net.ipv4.neigh.default.gc_thresh3 = %d",
		iface, hosts, limit, want/4, want/2, want)
}

// segmentHosts is how many hosts the network n can hold.
func segmentHosts(n *net.IPNet) int {
	ones, bits := n.Mask.Size()
	if bits-ones >= 31 {
		return 1 << 30
	}
	return max(1<<(bits-ones)-2, 1)
}

// preflightNeigh warns when the segment can outgrow the neighbour table.
func (s *Server) preflightNeigh(p *Preflight, ipnet *net.IPNet, nodes int) {
	b, err := os.ReadFile(neighThresh3)
	if err != nil {
		return // not readable here (a network namespace of an old kernel)
	}
	limit, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return
	}
	hosts := nodes
	if ipnet != nil {
		hosts = max(hosts, segmentHosts(ipnet))
	}
	if w := neighWarning(hosts, limit, s.Interface); w != "" {
		p.warn("%s", w)
	}
}
