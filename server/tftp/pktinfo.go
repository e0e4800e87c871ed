package tftp

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strconv"

	"golang.org/x/sys/unix"
)

// enablePktinfo asks the kernel to report each datagram's destination
// address, so a server on a wildcard address can answer from the address the
// client talked to. It reports whether that worked.
func enablePktinfo(c *net.UDPConn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	ok := false
	rc.Control(func(fd uintptr) {
		sa, err := unix.Getsockname(int(fd))
		if err != nil {
			return
		}
		switch sa.(type) {
		case *unix.SockaddrInet4:
			ok = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1) == nil
		case *unix.SockaddrInet6:
			ok = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1) == nil
			// IPv4 datagrams on a dual-stack socket.
			unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
		}
	})
	return ok
}

// pktinfoLocal returns the local address from IP_PKTINFO or IPV6_PKTINFO
// control messages, or nil (let the kernel choose) if there is none.
func pktinfoLocal(oob []byte) *net.UDPAddr {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	for _, m := range msgs {
		switch {
		case m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_PKTINFO && len(m.Data) >= 12:
			// struct in_pktinfo { int ifindex; in_addr spec_dst; in_addr addr; }:
			// addr is the header's destination; spec_dst, the local address
			// the kernel would answer from, is sometimes left zero. Take the
			// first that can be a source address.
			for _, b := range [][]byte{m.Data[8:12], m.Data[4:8]} {
				a := netip.AddrFrom4([4]byte(b))
				if !a.IsUnspecified() && !a.IsMulticast() && a != netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
					return &net.UDPAddr{IP: a.AsSlice()}
				}
			}
		case m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_PKTINFO && len(m.Data) >= 20:
			// struct in6_pktinfo { in6_addr addr; unsigned int ifindex; }
			a := netip.AddrFrom16([16]byte(m.Data[:16])).Unmap()
			if a.IsUnspecified() || a.IsMulticast() {
				continue
			}
			u := &net.UDPAddr{IP: a.AsSlice()}
			if a.Is6() && a.IsLinkLocalUnicast() {
				u.Zone = strconv.FormatUint(uint64(binary.NativeEndian.Uint32(m.Data[16:20])), 10)
			}
			return u
		}
	}
	return nil
}
