package server

// Issue 18, item 1: a node's identity comes only from evidence the server
// saw itself. A host that reads under another node's MAC or serial over
// TFTP, or names another's MAC in its User-Agent, can then not report for
// that node: the board shows the claim, binds nothing, and the report is
// refused and counted. Real TFTP and HTTP on loopback: the real node is
// 127.0.0.1, the attacker 127.0.0.2.

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ramboot/ramboot/internal/report"
	"github.com/ramboot/ramboot/internal/testenv"
	"github.com/ramboot/ramboot/server/dhcp"
	"github.com/ramboot/ramboot/server/status"
)

const (
	idVictim   = "52:54:00:ab:cd:ef" // the real node, at idNodeIP
	idSerial   = "aabbccdd"          // its serial, as its DHCP (option 97) sent it
	idAttacker = "02:00:00:00:00:66" // the attacker's own MAC, at idAtkIP
	idNodeIP   = "127.0.0.1"
	idAtkIP    = "127.0.0.2"
)

// dhcpAck feeds the server's DHCP log the ACK its full-mode DHCP sends
// when it grants ip to mac: the one event that binds an address.
func dhcpAck(s *Server, mac, ip string) {
	hw, _ := net.ParseMAC(mac)
	s.dhcpLog(dhcp.Event{Client: dhcp.Client{Kind: dhcp.RambootInit, MAC: hw}, Type: "ack", Address: net.ParseIP(ip).To4()})
}

// dhcpSeen feeds it a proxy-mode exchange: the MAC and its serial seen,
// no address granted.
func dhcpSeen(s *Server, mac, serial string) {
	hw, _ := net.ParseMAC(mac)
	s.dhcpLog(dhcp.Event{Client: dhcp.Client{Kind: dhcp.PiBootROM, MAC: hw, Serial: serial, Model: "RPi4"}, Type: "offer"})
}

// identityServer runs s on 127.0.0.1 (TFTP and HTTP on free ports, no
// DHCP) with a tree holding start4.elf and images/x.img, and returns its
// log.
func identityServer(t *testing.T, s *Server) *testenv.Buffer {
	t.Helper()
	s.Root = t.TempDir()
	if err := os.MkdirAll(filepath.Join(s.Root, "images"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, size := range map[string]int{"start4.elf": 300, "images/x.img": 64 << 10} {
		if err := os.WriteFile(filepath.Join(s.Root, name), make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return startLoopback(t, s)
}

// tftpRead reads file (at most one block) over TFTP from local; it
// returns the data, or the server's ERROR as an error.
func tftpRead(local, server, file string) ([]byte, error) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(local)})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	srv, err := net.ResolveUDPAddr("udp4", server)
	if err != nil {
		return nil, err
	}
	rrq := append(append([]byte{0, 1}, file...), 0)
	rrq = append(append(rrq, "octet"...), 0)
	if _, err := c.WriteToUDP(rrq, srv); err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1024)
	n, from, err := c.ReadFromUDP(buf)
	if err != nil {
		return nil, err
	}
	p := buf[:n]
	switch {
	case n >= 4 && binary.BigEndian.Uint16(p) == 5:
		return nil, errors.New("ERROR " + strings.TrimRight(string(p[4:]), "\x00"))
	case n >= 4 && binary.BigEndian.Uint16(p) == 3 && binary.BigEndian.Uint16(p[2:]) == 1 && n-4 < 512:
		_, err := c.WriteToUDP([]byte{0, 4, 0, 1}, from) // ACK: the transfer is complete
		return p[4:], err
	}
	return nil, errors.New("unexpected answer")
}

// localClient is an HTTP client whose connections come from local.
func localClient(local string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
}

func postFrom(t *testing.T, c *http.Client, base, body string) int {
	t.Helper()
	resp, err := c.Post(base+"/report", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// waitRecord waits until the board has a step under key whose detail
// contains sub (TFTP records a transfer once it ended), and says so if
// none comes within 3 s.
func waitRecord(t *testing.T, b *status.Board, key, sub string) status.Node {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); ; {
		if n, ok := b.Node(key); ok {
			for _, st := range n.Steps {
				if strings.Contains(st.Detail, sub) {
					return n
				}
			}
		}
		if time.Now().After(deadline) {
			n, _ := b.Node(key)
			t.Errorf("no step with %q under %q within 3s: %+v\nboard: %+v", sub, key, n, b.Nodes())
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestIdentitySpoof: in full mode (the victim's address from the
// server's own ACK) and in proxy mode (its address from another server,
// the neighbour table says who is where), each spoof vector is followed
// by a report for the victim from the attacker's address: 403, counted,
// the victim's record and lifecycle untouched, the claim shown on the
// attacker's record. The victim's own report is then accepted.
func TestIdentitySpoof(t *testing.T) {
	if _, err := net.Dial("udp4", idAtkIP+":9"); err != nil {
		t.Skipf("no loopback address %s: %v", idAtkIP, err)
	}
	vectors := []struct {
		name string
		do   func(t *testing.T, s *Server) string // returns the detail the claim is shown under
	}{
		{"tftp MAC directory, missing file", func(t *testing.T, s *Server) string {
			f := strings.ReplaceAll(idVictim, ":", "-") + "/no-such-file"
			if _, err := tftpRead(idAtkIP, s.TFTPAddr, f); err == nil || !strings.Contains(err.Error(), "ERROR") {
				t.Fatalf("tftp %s: %v, want an ERROR", f, err)
			}
			return f
		}},
		{"tftp MAC directory, served file", func(t *testing.T, s *Server) string {
			f := strings.ReplaceAll(idVictim, ":", "-") + "/start4.elf"
			if data, err := tftpRead(idAtkIP, s.TFTPAddr, f); err != nil || len(data) != 300 {
				t.Fatalf("tftp %s: %d bytes, %v", f, len(data), err)
			}
			return f
		}},
		{"tftp serial directory", func(t *testing.T, s *Server) string {
			f := idSerial + "/start4.elf"
			if data, err := tftpRead(idAtkIP, s.TFTPAddr, f); err != nil || len(data) != 300 {
				t.Fatalf("tftp %s: %d bytes, %v", f, len(data), err)
			}
			return f
		}},
		{"User-Agent mac=", func(t *testing.T, s *Server) string {
			req, _ := http.NewRequest("GET", "http://"+s.HTTPAddr+"/images/x.img", nil)
			req.Header.Set("User-Agent", "ramboot-init (mac="+idVictim+")")
			resp, err := localClient(idAtkIP).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /images/x.img: %d", resp.StatusCode)
			}
			return "the User-Agent names " + idVictim
		}},
	}
	for _, mode := range []string{"full", "proxy"} {
		t.Run(mode, func(t *testing.T) {
			s := &Server{}
			var mu sync.Mutex
			var reported []string
			s.OnReport = func(key string, _ report.Report) { mu.Lock(); reported = append(reported, key); mu.Unlock() }
			lifecycle := func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), reported...) }
			neigh := map[string]string{idNodeIP: idVictim, idAtkIP: idAttacker}
			s.neighborMAC = func(ip string) string { return neigh[ip] }
			logs := identityServer(t, s)
			base := "http://" + s.HTTPAddr
			if mode == "full" {
				dhcpSeen(s, idVictim, idSerial)
				dhcpAck(s, idVictim, idNodeIP)
				dhcpAck(s, idAttacker, idAtkIP) // the attacker is a node too
			} else {
				dhcpSeen(s, idVictim, idSerial)
			}
			// The victim's own TFTP read lands on its record.
			if _, err := tftpRead(idNodeIP, s.TFTPAddr, idSerial+"/start4.elf"); err != nil {
				t.Fatal(err)
			}
			if n := waitRecord(t, &s.Board, idVictim, idSerial+"/start4.elf"); n.Serial != idSerial || n.IP != idNodeIP {
				t.Errorf("the victim's own read: serial %q, IP %q on its record", n.Serial, n.IP)
			}
			victim, _ := s.Board.Node(idVictim)
			atkKey := "ip " + idAtkIP
			if mode == "full" {
				atkKey = idAttacker
			}
			atk := localClient(idAtkIP)
			refused := 0
			for _, v := range vectors {
				claim := v.do(t, s)
				waitRecord(t, &s.Board, atkKey, claim)
				if code := postFrom(t, atk, base, `{"mac":"`+idVictim+`","stage":"install done","detail":"sha256 `+strings.Repeat("0", 64)+`"}`); code != http.StatusForbidden {
					t.Errorf("%s: then a report for the victim from %s: %d, want 403", v.name, idAtkIP, code)
				} else {
					refused++
				}
				if got := s.Board.KeyOfIP(idAtkIP); got != "" && got != idAttacker {
					t.Errorf("%s: %s bound to %q", v.name, idAtkIP, got)
				}
				if got, _ := s.Board.Node(idVictim); !reflect.DeepEqual(got, victim) {
					t.Errorf("%s: the victim's record changed:\n%+v\nwas\n%+v", v.name, got, victim)
				}
			}
			t.Logf("%s mode: %d spoof vectors tried, %d reports refused", mode, len(vectors), refused)
			if got := metric(scrape(t, base), `ramboot_errors_total{kind="report_refused"}`); got != float64(len(vectors)) {
				t.Errorf("refused reports counted %v, want %d", got, len(vectors))
			}
			if !strings.Contains(logs.String(), "report refused") || !strings.Contains(logs.String(), "remote="+idAtkIP+" mac="+idVictim) {
				t.Errorf("no refusal logged for %s:\n%s", idAtkIP, logs.String())
			}
			if r := lifecycle(); len(r) != 0 {
				t.Errorf("the lifecycle saw reports for %v", r)
			}
			// The real node reports for itself.
			if code := postFrom(t, localClient(idNodeIP), base, `{"mac":"`+idVictim+`","stage":"network-up"}`); code != http.StatusNoContent {
				t.Errorf("the victim's own report: %d, want 204", code)
			}
			if r := lifecycle(); len(r) != 1 || r[0] != idVictim {
				t.Errorf("the lifecycle saw %v, want the victim's one report", r)
			}
		})
	}
}
