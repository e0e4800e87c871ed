package tftp

import (
	"net"
	"testing"
	"time"

	"github.com/ramboot/ramboot/internal/netnstest"
)

// A server on a wildcard address must answer from the address the request
// was sent to (IP_PKTINFO / IPV6_PKTINFO): a Pi ignores a reply from
// another address. Binding a wildcard is only done inside a fresh network
// namespace (internal/netnstest) holding nothing but lo with two extra
// addresses, as root; the test runs again inside it (netnstest.RunIn),
// so that the server's transfers open their sockets there too.
func TestWildcardNetns(t *testing.T) {
	if _, in := netnstest.Inside(); !in {
		netnstest.Skip(t)
		ns := netnstest.New(t)
		for _, a := range [][]string{
			{"10.99.0.1/24", "dev", "lo"},
			{"10.99.0.2/24", "dev", "lo"},
			{"fd99::1/64", "dev", "lo", "nodad"},
			{"fd99::2/64", "dev", "lo", "nodad"},
		} {
			netnstest.Run(t, "ip", append([]string{"-n", ns, "addr", "add"}, a...)...)
		}
		netnstest.RunIn(t, ns, 60*time.Second)
		return
	}

	// Inside the namespace: nothing here reaches a real interface.
	root := t.TempDir()
	writeFile(t, root, "f", []byte("hello"))
	for _, tc := range []struct{ listen, client, server string }{
		{"udp", "10.99.0.1", "10.99.0.2"},  // dual-stack wildcard, IPv4 client
		{"udp4", "10.99.0.1", "10.99.0.2"}, // IPv4 wildcard
		{"udp", "fd99::1", "fd99::2"},      // dual-stack wildcard, IPv6 client
		{"udp4", "127.0.0.1", "10.99.0.1"}, // and the other one
	} {
		t.Run(tc.listen+"_"+tc.server, func(t *testing.T) {
			s := &Server{Root: root}
			conn, err := net.ListenPacket(tc.listen, ":69")
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- s.Serve(conn) }()
			defer func() { s.Close(); <-done }()

			c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(tc.client)})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			srv := &net.UDPAddr{IP: net.ParseIP(tc.server), Port: 69}
			c.WriteToUDP(appendRequest(nil, &request{Op: opRRQ, Filename: "f", Mode: "octet"}), srv)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 600)
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				t.Fatal(err)
			}
			if !from.IP.Equal(srv.IP) {
				t.Errorf("reply from %v, want from %v", from.IP, srv.IP)
			}
			pk, err := parsePacket(buf[:n])
			if err != nil || pk.Op != opDATA || string(pk.Data) != "hello" {
				t.Fatalf("got %+v, %v", pk, err)
			}
			c.WriteToUDP(appendACK(nil, 1), from)
		})
	}
}

// Control messages as the kernel delivered them in TestWildcardNetns.
func TestPktinfoLocal(t *testing.T) {
	tests := []struct {
		name string
		oob  []byte
		want string
	}{
		{"IP_PKTINFO, spec_dst zero", []byte{28, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 99, 0, 2, 0, 0, 0, 0}, "10.99.0.2:0"},
		{"IP_PKTINFO, broadcast header", []byte{28, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 10, 99, 0, 2, 255, 255, 255, 255, 0, 0, 0, 0}, "10.99.0.2:0"},
		{"IPV6_PKTINFO", []byte{36, 0, 0, 0, 0, 0, 0, 0, 41, 0, 0, 0, 50, 0, 0, 0, 253, 153, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0}, "[fd99::2]:0"},
		{"IPV6_PKTINFO, v4-mapped", []byte{36, 0, 0, 0, 0, 0, 0, 0, 41, 0, 0, 0, 50, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 10, 99, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0}, "10.99.0.2:0"},
		{"IPV6_PKTINFO, link-local gets the zone", []byte{36, 0, 0, 0, 0, 0, 0, 0, 41, 0, 0, 0, 50, 0, 0, 0, 0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 0, 0, 0, 0, 0, 0, 0}, "[fe80::2%3]:0"},
		{"none", nil, "<nil>"},
		{"truncated", []byte{28, 0, 0}, "<nil>"},
	}
	for _, tt := range tests {
		if got := pktinfoLocal(tt.oob).String(); got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.name, got, tt.want)
		}
	}
}
