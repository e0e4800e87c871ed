// Package client holds the e2e tests' own clients: one TFTP read client
// (TFTP) and the Raspberry Pi 4 bootloader's replay (Pi), with the file
// lists read from the board profiles (PiFetched).
package client

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/ramboot/ramboot/internal/netnstest"
)

// TFTP is a lock-step TFTP read client (RFC 1350 with the RFC 2347
// options blksize and tsize). By default it asks the way the Raspberry
// Pi 4 bootloader does (notes/rpi-netboot.md) when Blksize is 1024 and
// Tsize is set; with EarlyTerminate it reads the size from the OACK and
// answers ERROR 0 "Early terminate". Its socket is opened in namespace NS
// (a Peer's), unless Conn is given. Packets from an address other than
// Server's are ignored (a Pi ignores them); a second transfer ID gets
// ERROR 5, as RFC 1350 says.
//
//	c := TFTP{NS: peer.NS, Server: "192.0.2.1:69", Blksize: 1024, Tsize: true}
//	res, err := c.Get("config.txt") // res.Data, res.OACK, res.ErrCode
type TFTP struct {
	NS             string
	Server         string       // host:port
	Conn           *net.UDPConn // a socket to use (not closed); nil: one in NS
	Blksize        int          // 0: no option
	Tsize          bool
	EarlyTerminate bool

	RTO      time.Duration // retransmission timeout; 0: 300 ms
	Tries    int           // timeouts in a row that end the transfer; 0: 20
	Deadline time.Time     // the end of the transfer; zero: 60 s from its start
	Discard  bool          // keep only Bytes and Sum, not Data
}

// Result is what a Get got.
type Result struct {
	Data    []byte            // the file (nil with Discard)
	Bytes   int64             // its length
	Sum     [32]byte          // its SHA-256, once complete
	OACK    map[string]string // nil: the server sent no OACK
	Blksize int               // the block size in use (512 without an OACK)
	ErrCode int               // the server's ERROR code; -1: no ERROR
	ErrMsg  string
	Retrans int // RRQs and ACKs sent again after a timeout
	Dur     time.Duration
}

// Tsize is the OACK's tsize, or -1.
func (r Result) Tsize() int64 {
	n, err := strconv.ParseInt(r.OACK["tsize"], 10, 64)
	if err != nil {
		return -1
	}
	return n
}

const (
	opRRQ   = 1
	opDATA  = 3
	opACK   = 4
	opERROR = 5
	opOACK  = 6
)

// Get fetches file. A server's ERROR is a Result (ErrCode), not an error;
// errors are the transfer's own (timeouts, the deadline, sockets).
func (c TFTP) Get(file string) (res Result, err error) {
	start := time.Now()
	res = Result{ErrCode: -1, Blksize: 512}
	defer func() { res.Dur = time.Since(start) }()
	rto, tries, deadline := c.RTO, c.Tries, c.Deadline
	if rto == 0 {
		rto = 300 * time.Millisecond
	}
	if tries == 0 {
		tries = 20
	}
	if deadline.IsZero() {
		deadline = start.Add(60 * time.Second)
	}
	srv, err := net.ResolveUDPAddr("udp4", c.Server)
	if err != nil {
		return res, err
	}
	conn := c.Conn
	if conn == nil {
		if err := netnstest.Do(c.NS, func() (err error) {
			conn, err = net.ListenUDP("udp4", &net.UDPAddr{})
			return err
		}); err != nil {
			return res, err
		}
		defer conn.Close()
	}

	rrq := []byte{0, opRRQ}
	rrq = append(rrq, file...)
	rrq = append(rrq, 0)
	rrq = append(rrq, "octet\x00"...)
	if c.Tsize {
		rrq = append(rrq, "tsize\x000\x00"...)
	}
	if c.Blksize > 0 {
		rrq = append(rrq, fmt.Sprintf("blksize\x00%d\x00", c.Blksize)...)
	}
	last, lastTo := rrq, srv // what to send again on a timeout
	var tid *net.UDPAddr     // the server's transfer port
	var expect uint16 = 1
	var data bytes.Buffer
	h := sha256.New()
	// Room for any block a server may send, or (Discard: the benchmarks
	// hold hundreds of transfers) for the block size asked for.
	buf := make([]byte, 4+65464+64)
	if c.Discard {
		buf = make([]byte, 4+max(c.Blksize, 512)+64)
	}
	timeouts := 0
	send := func(b []byte, to *net.UDPAddr) error {
		last, lastTo = b, to
		_, err := conn.WriteToUDP(b, to)
		return err
	}
	if err := send(rrq, srv); err != nil {
		return res, err
	}
	for {
		now := time.Now()
		if now.After(deadline) {
			return res, fmt.Errorf("tftp %s: not done by the deadline (%d bytes after %v)", file, res.Bytes, now.Sub(start).Round(time.Millisecond))
		}
		rd := now.Add(rto)
		if deadline.Before(rd) {
			rd = deadline
		}
		conn.SetReadDeadline(rd)
		n, from, err := conn.ReadFromUDP(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if timeouts++; timeouts >= tries {
					return res, fmt.Errorf("tftp %s: %d timeouts in a row (%d bytes)", file, timeouts, res.Bytes)
				}
				res.Retrans++
				if _, err := conn.WriteToUDP(last, lastTo); err != nil {
					return res, err
				}
				continue
			}
			return res, err
		}
		if !from.IP.Equal(srv.IP) {
			continue // not the server asked
		}
		if tid == nil {
			tid = from
		} else if from.Port != tid.Port {
			// Another transfer, for a repeated RRQ: "unknown transfer ID".
			conn.WriteToUDP(append([]byte{0, opERROR, 0, 5}, "Unknown transfer ID\x00"...), from)
			continue
		}
		p := buf[:n]
		if len(p) < 4 {
			return res, fmt.Errorf("tftp %s: short packet % x", file, p)
		}
		timeouts = 0
		switch op := binary.BigEndian.Uint16(p); op {
		case opOACK:
			if res.OACK != nil {
				conn.WriteToUDP(last, lastTo) // duplicate: our ACK 0 was lost
				continue
			}
			res.OACK = map[string]string{}
			f := strings.Split(string(p[2:]), "\x00")
			for i := 0; i+1 < len(f); i += 2 {
				res.OACK[strings.ToLower(f[i])] = f[i+1]
			}
			if v, err := strconv.Atoi(res.OACK["blksize"]); err == nil {
				if v > len(buf)-4 {
					return res, fmt.Errorf("tftp %s: OACK blksize %d > the %d asked for", file, v, c.Blksize)
				}
				res.Blksize = v
			}
			if c.EarlyTerminate {
				conn.WriteToUDP(append([]byte{0, opERROR, 0, 0}, "Early terminate\x00"...), tid)
				return res, nil
			}
			if err := send([]byte{0, opACK, 0, 0}, tid); err != nil {
				return res, err
			}
		case opDATA:
			switch blk := binary.BigEndian.Uint16(p[2:]); blk {
			case expect:
				h.Write(p[4:])
				if !c.Discard {
					data.Write(p[4:])
				}
				res.Bytes += int64(n - 4)
				if err := send([]byte{0, opACK, byte(blk >> 8), byte(blk)}, tid); err != nil {
					return res, err
				}
				expect++
				if n-4 < res.Blksize {
					if !c.Discard {
						res.Data = data.Bytes()
					}
					copy(res.Sum[:], h.Sum(nil))
					return res, nil
				}
			case expect - 1:
				conn.WriteToUDP([]byte{0, opACK, byte(blk >> 8), byte(blk)}, tid) // our ACK was lost or late
			}
		case opERROR:
			res.ErrCode = int(binary.BigEndian.Uint16(p[2:]))
			res.ErrMsg = strings.TrimRight(string(p[4:]), "\x00")
			return res, nil
		default:
			return res, fmt.Errorf("tftp %s: unexpected opcode %d", file, op)
		}
	}
}
