package dhcp

import (
	"bytes"
	"net"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// newReply builds the same bytes as the library's NewReplyFromRequest.
func TestNewReplyAsLibrary(t *testing.T) {
	relayed := piDiscover(t)
	relayed.GatewayIPAddr = net.IPv4(192, 0, 2, 9)
	relayed.SetBroadcast()
	relayed.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionRelayAgentInformation, []byte{1, 3, 'e', 't', 'h'}))
	relayed.UpdateOption(dhcpv4.OptClientIdentifier([]byte{1, 0xdc, 0xa6, 0x32, 1, 2, 3}))
	for _, req := range []*dhcpv4.DHCPv4{piDiscover(t), initDiscover(t, "02:00:00:00:00:01", 1, 3), relayed} {
		mods := []dhcpv4.Modifier{dhcpv4.WithMessageType(dhcpv4.MessageTypeOffer), dhcpv4.WithYourIP(net.IPv4(192, 0, 2, 100)),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(192, 0, 2, 1)))}
		want, err := dhcpv4.NewReplyFromRequest(req, mods...)
		if err != nil {
			t.Fatal(err)
		}
		if got := newReply(req, mods...).ToBytes(); !bytes.Equal(got, want.ToBytes()) {
			t.Errorf("reply to %s:\n got %x\nwant %x", req.ClientHWAddr, got, want.ToBytes())
		}
	}
}

// appendPacket writes what ToBytes does, for every kind of reply and for
// the fuzz seeds' requests (odd options, long ones, option 82 included).
func TestAppendPacketAsToBytes(t *testing.T) {
	var msgs []*dhcpv4.DHCPv4
	for _, raw := range fuzzSeeds(&testing.F{}) {
		if m, err := dhcpv4.FromBytes(raw); err == nil {
			msgs = append(msgs, m)
		}
	}
	long := piDiscover(t)
	long.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionRelayAgentInformation, []byte{1, 3, 'e', 't', 'h'}))
	long.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(224), bytes.Repeat([]byte("x"), 600)))
	long.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(250), nil))
	long.ServerHostName, long.BootFileName = string(bytes.Repeat([]byte("s"), 80)), string(bytes.Repeat([]byte("f"), 200))
	msgs = append(msgs, long, piDiscover(t))
	full := fullServer(t, "")
	proxy := &Server{Mode: Proxy, ServerIP: net.IPv4(192, 0, 2, 1), Decide: func(c Client, ip net.IP) Decision {
		return Decision{Option224: "shell", Hostname: "n1", BootFile: "http://192.0.2.1:8080/boot/x.ipxe"}
	}}
	for _, m := range append([]*dhcpv4.DHCPv4(nil), msgs...) {
		for _, s := range []*Server{full, proxy} {
			if resp, _ := s.Handle(m); resp != nil {
				msgs = append(msgs, resp)
			}
		}
	}
	t.Logf("%d messages", len(msgs))
	if len(msgs) < 10 {
		t.Fatalf("only %d messages to compare", len(msgs))
	}
	buf := []byte("prefix")
	for i, m := range msgs {
		got := appendPacket(buf[:6], m)
		if want := m.ToBytes(); !bytes.Equal(got[6:], want) || string(got[:6]) != "prefix" {
			t.Errorf("message %d (%s):\n got %x\nwant %x", i, m.Summary(), got[6:], want)
		}
		buf = got
		if mt := msgType(m); mt != m.MessageType() {
			t.Errorf("message %d: msgType %v, MessageType %v", i, mt, m.MessageType())
		}
	}
}
