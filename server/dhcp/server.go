package dhcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/sys/unix"

	"github.com/ramboot/ramboot/server/internal/ratelog"
)

// Mode is how the server takes part in DHCP.
type Mode string

const (
	// Proxy answers only boot clients, never offers an address: for
	// networks whose router already runs DHCP.
	Proxy Mode = "proxy"
	// Full hands out addresses from a pool: for an isolated provisioning
	// network.
	Full Mode = "full"
	// Off runs no DHCP at all.
	Off Mode = "off"
)

// Decision is what a node gets, decided by the caller (the inventory).
type Decision struct {
	Hostname  string
	Address   net.IP // full mode: a static address
	Option224 string
	BootFile  string // for iPXE: the URL of its script
	Ignore    bool   // do not answer this client
}

// Decider decides per client; the server keeps to protocol.
type Decider func(c Client, serverIP net.IP) Decision

// Event is one meaningful thing the server did or saw.
type Event struct {
	Client  Client
	Type    string // "offer", "ack", "nak", "ignored", "bad-packet", "release", "decline", "no-address", "error"
	Address net.IP
	Detail  string
	Err     error

	quiet bool // held back by a once-per-client-a-minute limit: not for Log
}

// DefaultMenu is the Pi bootloader's PXE_OPTION43 default, the option 43
// menu text a Server sends unless Menu says otherwise.
const DefaultMenu = "Raspberry Pi Boot"

// Server answers DHCP on one interface.
type Server struct {
	Mode     Mode
	ServerIP net.IP // this server's address on the interface
	Menu     string // Pi option 43 menu text; default DefaultMenu
	Decide   Decider
	Pool     *Pool // full mode
	Subnet   net.IPMask
	Router   net.IP
	DNS      []net.IP
	// Log sees one Event per request answered or ignored. Packets that
	// cannot be parsed ("bad-packet") and requests through a relay with no
	// pool ("no-address") are logged at most once per client address (the
	// relay's) a minute, the line saying how many more were not: a flood
	// of them costs a few lines. nil: silent.
	Log func(Event)
	// Held, if set, sees the events held back from Log by that limit, so
	// that counters stay exact. It is called from the serving loop and
	// must return quickly.
	Held func(Event)

	badPackets, relays ratelog.Limiter
}

func (s *Server) log(e Event) {
	if e.quiet {
		if s.Held != nil {
			s.Held(e)
		}
		return
	}
	if s.Log != nil {
		s.Log(e)
	}
}

// ListenInterface opens UDP port 67 bound to ifname only (SO_BINDTODEVICE):
// the server never answers on another interface.
func ListenInterface(ifname string, port int) (net.PacketConn, error) {
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if ifname != "" {
				if serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, ifname); serr != nil {
					return
				}
			}
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1); serr != nil {
				return
			}
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf(":%d", port))
	if err != nil {
		return nil, fmt.Errorf("dhcp: listen on %s port %d: %w", ifname, port, err)
	}
	return pc, nil
}

// Serve reads requests until ctx ends or the socket fails. A bad packet is
// logged and skipped.
func (s *Server) Serve(ctx context.Context, pc net.PacketConn) error {
	return s.serve(ctx, pc, false)
}

// ServeBootServer answers PXE boot server requests on port 4011: UEFI
// firmware sent there by a proxy offer asks for its boot file.
func (s *Server) ServeBootServer(ctx context.Context, pc net.PacketConn) error {
	return s.serve(ctx, pc, true)
}

func (s *Server) serve(ctx context.Context, pc net.PacketConn, bootServer bool) error {
	go func() {
		<-ctx.Done()
		pc.Close()
	}()
	buf, out := make([]byte, 4096), make([]byte, 0, 1500)
	for {
		n, peer, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("dhcp: %w", err)
		}
		req, err := dhcpv4.FromBytes(buf[:n])
		if err != nil {
			s.badPacket(peer, err)
			continue
		}
		if req.OpCode != dhcpv4.OpcodeBootRequest {
			continue
		}
		var (
			resp   *dhcpv4.DHCPv4
			ev     Event
			commit Commit
			dst    net.Addr
		)
		if bootServer {
			resp, ev = s.HandleBootServer(req)
			dst = peer // the client has its address and listens where it sent from
		} else {
			resp, ev, commit = s.handle(req)
			if resp != nil {
				dst = replyAddr(req, resp, peer)
			}
		}
		if resp == nil || commit == 0 {
			s.log(ev)
			if resp != nil {
				out = s.send(pc, out[:0], resp, dst, ev)
			}
			continue
		}
		// A grant: the reply goes out once the lease is on disk. The
		// loop goes on serving others meanwhile (group commit).
		s.Pool.Durable(commit, func(err error) {
			if err != nil {
				ev.Type, ev.Err = "error", fmt.Errorf("lease not written, no %s sent: %w", typeOf(resp), err)
				s.log(ev)
				return
			}
			s.log(ev)
			s.send(pc, nil, resp, dst, ev)
		})
	}
}

// badPacket logs a packet that does not parse, once per sender address
// a minute.
func (s *Server) badPacket(peer net.Addr, err error) {
	var from netip.Addr
	if u, ok := peer.(*net.UDPAddr); ok {
		from, _ = netip.AddrFromSlice(u.IP)
		from = from.Unmap()
	}
	held, ok := s.badPackets.Allow(from, time.Now())
	s.log(Event{Type: "bad-packet", Detail: peer.String() + held.String(), Err: err, quiet: !ok})
}

// send writes resp to dst, encoded in buf (returned for the next).
func (s *Server) send(pc net.PacketConn, buf []byte, resp *dhcpv4.DHCPv4, dst net.Addr, ev Event) []byte {
	buf = appendPacket(buf, resp)
	if _, err := pc.WriteTo(buf, dst); err != nil {
		s.log(Event{Client: ev.Client, Type: "send-error", Err: err})
	}
	return buf
}

// replyAddr follows RFC 2131 4.1: to a relay at giaddr:67; a NAK is
// broadcast; else to the client's ciaddr if it has one; else broadcast.
func replyAddr(req, resp *dhcpv4.DHCPv4, peer net.Addr) net.Addr {
	if gi := req.GatewayIPAddr; gi != nil && !gi.IsUnspecified() {
		return &net.UDPAddr{IP: gi, Port: 67}
	}
	if msgType(resp) == dhcpv4.MessageTypeNak {
		return &net.UDPAddr{IP: net.IPv4bcast, Port: 68}
	}
	if ci := req.ClientIPAddr; ci != nil && !ci.IsUnspecified() {
		return &net.UDPAddr{IP: ci, Port: 68}
	}
	return &net.UDPAddr{IP: net.IPv4bcast, Port: 68}
}

// HandleBootServer builds the reply to a request sent to port 4011.
func (s *Server) HandleBootServer(req *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, Event) {
	c := Classify(req)
	ev := Event{Client: c}
	if mt := msgType(req); mt != dhcpv4.MessageTypeRequest && mt != dhcpv4.MessageTypeInform {
		ev.Type, ev.Detail = "ignored", "boot server: "+mt.String()
		return nil, ev
	}
	var d Decision
	if s.Decide != nil {
		d = s.Decide(c, s.ServerIP)
	}
	if d.Ignore {
		ev.Type, ev.Detail = "ignored", "decider"
		return nil, ev
	}
	return s.bootServer(req, c, d, ev)
}

// Handle builds the reply to one request (nil: stay silent) and the event
// to log. It is the whole protocol decision, testable without sockets. A
// reply that grants a lease is returned once the lease is on disk.
func (s *Server) Handle(req *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, Event) {
	resp, ev, commit := s.handle(req)
	if commit != 0 {
		if err := s.Pool.Wait(commit); err != nil {
			ev.Type, ev.Err = "error", fmt.Errorf("lease not written, no %s sent: %w", typeOf(resp), err)
			return nil, ev
		}
	}
	return resp, ev
}

// handle is Handle without waiting for the disk: a non-zero Commit says
// the reply may go out only once the pool has it durable.
func (s *Server) handle(req *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, Event, Commit) {
	c := Classify(req)
	ev := Event{Client: c}
	mt := msgType(req)
	switch mt {
	case dhcpv4.MessageTypeDiscover, dhcpv4.MessageTypeRequest, dhcpv4.MessageTypeInform:
	case dhcpv4.MessageTypeDecline:
		if s.Mode != Full {
			ev.Type, ev.Detail = "ignored", mt.String()
			return nil, ev, 0
		}
	case dhcpv4.MessageTypeRelease:
		if s.Mode == Full && s.Pool != nil {
			s.Pool.Release(req.ClientHWAddr, req.ClientIPAddr)
		}
		ev.Type = "release"
		return nil, ev, 0
	default:
		ev.Type, ev.Detail = "ignored", mt.String()
		return nil, ev, 0
	}
	var d Decision
	if s.Decide != nil {
		d = s.Decide(c, s.ServerIP)
	}
	if d.Ignore {
		ev.Type, ev.Detail = "ignored", "decider"
		return nil, ev, 0
	}
	switch s.Mode {
	case Proxy:
		resp, ev := s.proxy(req, c, d, ev)
		return resp, ev, 0
	case Full:
		return s.full(req, c, d, ev)
	}
	ev.Type, ev.Detail = "ignored", "dhcp off"
	return nil, ev, 0
}

func (s *Server) proxy(req *dhcpv4.DHCPv4, c Client, d Decision, ev Event) (*dhcpv4.DHCPv4, Event) {
	// A REQUEST that names another server (the router's DHCP, whose
	// address the client took) is not ours to answer (RFC 2131 4.3.2);
	// dnsmasq's proxy stays silent too. An ACK from here, with no
	// address, could be taken by the client in place of the router's.
	if msgType(req) == dhcpv4.MessageTypeRequest {
		if sid := req.ServerIdentifier(); sid != nil && !sid.IsUnspecified() && !sid.Equal(s.ServerIP) {
			ev.Type, ev.Detail = "ignored", "client chose server "+sid.String()
			return nil, ev
		}
	}
	switch c.Kind {
	case PiBootROM:
		resp, err := PiProxyOffer(req, s.ServerIP, s.piMenu(c))
		if err != nil {
			ev.Type, ev.Err = "error", err
			return nil, ev
		}
		ev.Type, ev.Detail = typeOf(resp), "pi boot menu"
		return resp, ev
	case RambootInit:
		// No address, only what to do: option 224.
		resp := s.proxyReply(req)
		if d.Option224 != "" {
			resp.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(224), []byte(d.Option224)))
		}
		if d.Hostname != "" {
			resp.UpdateOption(dhcpv4.OptHostName(d.Hostname))
		}
		ev.Type, ev.Detail = typeOf(resp), "option 224 "+quote(d.Option224)
		return resp, ev
	}
	if c.Kind == PCFirmware || c.Kind == HTTPBoot {
		return s.pcProxy(req, c, d, ev)
	}
	if c.Kind == IPXE && d.BootFile != "" {
		// iPXE: no address, its script's URL as the boot file.
		resp := s.proxyReply(req, dhcpv4.WithOption(dhcpv4.OptBootFileName(d.BootFile)))
		resp.BootFileName = d.BootFile
		ev.Type, ev.Detail = typeOf(resp), "ipxe script "+d.BootFile
		return resp, ev
	}
	ev.Type, ev.Detail = "ignored", "not a boot client (proxy mode answers only boot clients)"
	return nil, ev
}

// proxyReply is a proxyDHCP answer without an address: an OFFER to a
// DISCOVER, else an ACK, from this server, class "PXEClient".
func (s *Server) proxyReply(req *dhcpv4.DHCPv4, more ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	mt := dhcpv4.MessageTypeOffer
	if msgType(req) != dhcpv4.MessageTypeDiscover {
		mt = dhcpv4.MessageTypeAck
	}
	return newReply(req, append([]dhcpv4.Modifier{
		dhcpv4.WithMessageType(mt),
		dhcpv4.WithYourIP(net.IPv4zero),
		dhcpv4.WithServerIP(s.ServerIP),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(s.ServerIP)),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient")),
	}, more...)...)
}

func typeOf(m *dhcpv4.DHCPv4) string {
	switch msgType(m) {
	case dhcpv4.MessageTypeOffer:
		return "offer"
	case dhcpv4.MessageTypeAck:
		return "ack"
	case dhcpv4.MessageTypeNak:
		return "nak"
	}
	return msgType(m).String()
}

func quote(s string) string {
	if s == "" {
		return "(none)"
	}
	return fmt.Sprintf("%q", s)
}

// piMenu is the option 43 menu text for a Pi's boot ROM: the configured
// one, with the Pi 3B ROM's three trailing spaces for a Pi 3 when it is
// the default.
func (s *Server) piMenu(c Client) string {
	menu := s.Menu
	if menu == "" {
		menu = DefaultMenu
	}
	if c.Model == "RPi3" && menu == DefaultMenu {
		return Pi3Menu
	}
	return menu
}
