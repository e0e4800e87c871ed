package dhcp

import (
	"net"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// newReply is dhcpv4.NewReplyFromRequest without its cost per packet:
// that builds the message with dhcpv4.New, which draws a random
// transaction id (from the kernel, under a context with a timer) only to
// overwrite it with the request's. The result is the same: a BOOTREPLY
// with the request's hardware type and address, transaction id, flags and
// relay address, options 82 and 61 copied (RFC 3046, RFC 6842), then mods.
func newReply(req *dhcpv4.DHCPv4, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	op := dhcpv4.OpcodeBootReply
	if req.OpCode != dhcpv4.OpcodeBootRequest {
		op = dhcpv4.OpcodeBootRequest
	}
	d := &dhcpv4.DHCPv4{
		OpCode:        op,
		HWType:        req.HWType,
		ClientHWAddr:  req.ClientHWAddr,
		TransactionID: req.TransactionID,
		Flags:         req.Flags,
		ClientIPAddr:  net.IPv4zero,
		YourIPAddr:    net.IPv4zero,
		ServerIPAddr:  net.IPv4zero,
		GatewayIPAddr: req.GatewayIPAddr,
		Options:       make(dhcpv4.Options, 8),
	}
	for _, o := range [...]dhcpv4.OptionCode{dhcpv4.OptionRelayAgentInformation, dhcpv4.OptionClientIdentifier} {
		if v := req.Options.Get(o); v != nil {
			d.Options[o.Code()] = v
		}
	}
	for _, m := range mods {
		m(d)
	}
	return d
}

// msgType is m.MessageType() without a parser per call: the value of
// option 53 if it is one byte, else MessageTypeNone (as the library
// returns for a missing or malformed option).
func msgType(m *dhcpv4.DHCPv4) dhcpv4.MessageType {
	if v := m.Options[dhcpv4.OptionDHCPMessageType.Code()]; len(v) == 1 {
		return dhcpv4.MessageType(v[0])
	}
	return dhcpv4.MessageTypeNone
}

// appendPacket appends m's bytes to b: the bytes m.ToBytes() returns
// (options in ascending order, 82 last, long ones split as RFC 3396 says,
// padded to BOOTP's 300 bytes), without its allocations.
func appendPacket(b []byte, m *dhcpv4.DHCPv4) []byte {
	start := len(b)
	b = append(b, byte(m.OpCode), byte(m.HWType), byte(len(m.ClientHWAddr)), m.HopCount)
	b = append(b, m.TransactionID[:]...)
	b = append(b, byte(m.NumSeconds>>8), byte(m.NumSeconds), byte(m.Flags>>8), byte(m.Flags))
	for _, ip := range [...]net.IP{m.ClientIPAddr, m.YourIPAddr, m.ServerIPAddr, m.GatewayIPAddr} {
		if ip4 := ip.To4(); ip4 != nil {
			b = append(b, ip4...)
		} else {
			b = append(b, 0, 0, 0, 0)
		}
	}
	b = appendField(b, m.ClientHWAddr, 16, 16)
	b = appendField(b, []byte(m.ServerHostName), 63, 64)
	b = appendField(b, []byte(m.BootFileName), 127, 128)
	b = append(b, 99, 130, 83, 99) // the magic cookie
	var codes [256]bool
	for c := range m.Options {
		codes[c] = true
	}
	for c := 1; c < 256; c++ {
		code := uint8(c)
		if !codes[c] || code == 82 || code == 255 {
			continue // 82 goes last (RFC 3046 2.1), 255 ends them
		}
		b = appendOption(b, code, m.Options[code])
	}
	if codes[82] {
		b = appendOption(b, 82, m.Options[82])
	}
	b = append(b, 255)
	for len(b)-start < 300 {
		b = append(b, 0)
	}
	return b
}

// appendField appends v cut to max bytes, zero-padded to size.
func appendField(b, v []byte, max, size int) []byte {
	n := min(len(v), max)
	b = append(b, v[:n]...)
	for range size - n {
		b = append(b, 0)
	}
	return b
}

func appendOption(b []byte, code uint8, v []byte) []byte {
	if len(v) == 0 {
		return append(b, code, 0)
	}
	for len(v) > 0 {
		n := min(len(v), 255)
		b = append(b, code, byte(n))
		b = append(b, v[:n]...)
		v = v[n:]
	}
	return b
}
