package e2e

// A small lock-step TFTP read client (RFC 1350 with RFC 2347 options
// blksize and tsize) for the concurrent benchmark: one UDP socket per
// transfer, created in a peer namespace; every byte is hashed.

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

type sbGet struct {
	Bytes   int64
	Sum     [32]byte
	Dur     time.Duration
	Blksize int   // granted (512 when the server sent no OACK)
	Tsize   int64 // from the OACK, -1 without
	Retrans int   // RRQs and ACKs sent again after a timeout
	Err     error
}

const (
	sbOpRRQ   = 1
	sbOpDATA  = 3
	sbOpACK   = 4
	sbOpERROR = 5
	sbOpOACK  = 6
)

// sbTFTPGet reads file from server:69 over conn (lock-step). rto is the
// retransmission timeout, tries the number of timeouts in a row that end
// the transfer; deadline bounds it as a whole.
func sbTFTPGet(conn *net.UDPConn, server *net.UDPAddr, file string, blksize int, rto time.Duration, tries int, deadline time.Time) (r sbGet) {
	start := time.Now()
	defer func() { r.Dur = time.Since(start) }()
	r.Tsize = -1

	rrq := []byte{0, sbOpRRQ}
	rrq = append(rrq, file...)
	rrq = append(rrq, 0)
	rrq = append(rrq, "octet\x00blksize\x00"...)
	rrq = append(rrq, strconv.Itoa(blksize)...)
	rrq = append(rrq, "\x00tsize\x000\x00"...)

	buf := make([]byte, 4+max(blksize, 512)+64)
	h := sha256.New()
	var tid *net.UDPAddr // the server's transfer port
	last, lastTo := rrq, server
	bs := 512
	expect := uint16(1)
	started := false // OACK or DATA 1 seen
	timeouts := 0
	ack := func(block uint16) []byte {
		return []byte{0, sbOpACK, byte(block >> 8), byte(block)}
	}
	if _, err := conn.WriteToUDP(rrq, server); err != nil {
		r.Err = err
		return
	}
	for {
		now := time.Now()
		if now.After(deadline) {
			r.Err = fmt.Errorf("deadline: %d bytes after %v", r.Bytes, time.Since(start).Round(time.Millisecond))
			return
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
				timeouts++
				if timeouts >= tries {
					r.Err = fmt.Errorf("%d timeouts in a row (%d bytes, started %v)", timeouts, r.Bytes, started)
					return
				}
				r.Retrans++
				conn.WriteToUDP(last, lastTo)
				continue
			}
			r.Err = err
			return
		}
		if n < 4 || !from.IP.Equal(server.IP) {
			continue
		}
		if tid == nil {
			tid = from
		} else if from.Port != tid.Port {
			// Another transfer for a repeated RRQ: RFC 1350 "unknown
			// transfer ID".
			conn.WriteToUDP(append([]byte{0, sbOpERROR, 0, 5}, "Unknown transfer ID\x00"...), from)
			continue
		}
		op := binary.BigEndian.Uint16(buf)
		switch op {
		case sbOpOACK:
			if started {
				continue
			}
			opts := bytes.Split(bytes.TrimSuffix(buf[2:n], []byte{0}), []byte{0})
			for i := 0; i+1 < len(opts); i += 2 {
				v, _ := strconv.ParseInt(string(opts[i+1]), 10, 64)
				switch string(bytes.ToLower(opts[i])) {
				case "blksize":
					bs = int(v)
				case "tsize":
					r.Tsize = v
				}
			}
			if bs > len(buf)-4 {
				r.Err = fmt.Errorf("OACK blksize %d > the %d asked for", bs, blksize)
				return
			}
			started = true
			timeouts = 0
			last, lastTo = ack(0), tid
			conn.WriteToUDP(last, tid)
		case sbOpDATA:
			block := binary.BigEndian.Uint16(buf[2:])
			switch block {
			case expect:
				started = true
				timeouts = 0
				data := buf[4:n]
				h.Write(data)
				r.Bytes += int64(len(data))
				last, lastTo = ack(block), tid
				conn.WriteToUDP(last, tid)
				expect++
				if len(data) < bs {
					r.Blksize = bs
					copy(r.Sum[:], h.Sum(nil))
					return
				}
			case expect - 1:
				conn.WriteToUDP(ack(block), tid) // our ACK was lost or late
			}
		case sbOpERROR:
			code := binary.BigEndian.Uint16(buf[2:])
			r.Err = fmt.Errorf("TFTP ERROR %d %q", code, bytes.TrimRight(buf[4:n], "\x00"))
			return
		}
	}
}
