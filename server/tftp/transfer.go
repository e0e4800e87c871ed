package tftp

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// errEarlyTerminate ends a transfer the client stopped before taking any
// data (the Raspberry Pi's existence probe). Not reported as an error.
var errEarlyTerminate = errors.New("early terminate")

var errRetries = errors.New("no answer from client")

// transfer sends one file over a socket connected to the client.
//
// Blocks are numbered 1..n with absolute int64 counters; the wire carries
// the low 16 bits, so block 65535 is followed by block 0 (what tftp-hpa,
// atftp, curl and U-Boot expect). The last block is shorter than blksize,
// possibly empty.
//
// With a window of w blocks (RFC 7440; w = 1 is RFC 1350's lock-step) the
// sender keeps blocks [base, end] in flight, end - base < w:
//   - ACK k with base <= k <= end acknowledges up to k; the next window
//     starts at k+1. If k < end the client saw a gap, so blocks from k+1
//     are sent again at once (and a duplicate ACK right after is not
//     answered again).
//   - ACK base-1 is a duplicate. In lock-step it is ignored (the
//     Sorcerer's Apprentice fix of RFC 1123 4.2.3.1); with a window, the
//     first duplicate after progress resends the window, later ones wait
//     for the timeout.
//   - Any other block number is stale and ignored; it does not extend the
//     timeout.
//   - On timeout the window from base is sent again, at most retries
//     times in a row.
//
// Memory: one packet buffer of 4 + min(blksize, file size) bytes, whatever
// the window: each block is read with ReadAt just before it is sent (again,
// on a retransmission, from the page cache), so a stalled transfer holds a
// packet, not a window. A read that fails or comes up short (the file
// shrank) ends the transfer with a *readError, which handle answers with
// ERROR.
type transfer struct {
	conn    *net.UDPConn
	file    io.ReaderAt
	size    int64
	blksize int
	window  int
	timeout time.Duration
	retries int

	acked int64 // bytes acknowledged, for the Event

	pkt  []byte // one DATA packet: 4 + min(blksize, size) bytes
	rbuf [1024]byte
}

// readError is a failure to read the file being sent.
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

// bufferSize is the DATA packet buffer a transfer needs: a block, or the
// whole file when it is shorter, plus the header.
func bufferSize(blksize int, size int64) int {
	return 4 + int(max(0, min(int64(blksize), size)))
}

// run sends the OACK (if any options were accepted), then the file.
func (t *transfer) run(oack []option) error {
	if len(oack) > 0 {
		if err := t.sendOACK(appendOACK(nil, oack)); err != nil {
			return err
		}
	}
	return t.sendData()
}

func (t *transfer) sendOACK(pkt []byte) error {
	for try := 0; ; try++ {
		if _, err := t.conn.Write(pkt); err != nil {
			return fmt.Errorf("sending OACK: %w", err)
		}
		deadline := time.Now().Add(t.timeout)
		for {
			pk, err := t.recv(deadline)
			if isTimeout(err) {
				break
			}
			if err != nil {
				return err
			}
			switch pk.Op {
			case opACK:
				if pk.Block == 0 {
					return nil
				}
			case opERROR:
				return errEarlyTerminate
			}
		}
		if try >= t.retries {
			return fmt.Errorf("OACK: %w after %d tries", errRetries, try+1)
		}
	}
}

func (t *transfer) sendData() error {
	n := t.size/int64(t.blksize) + 1 // number of blocks, the last one short
	t.pkt = make([]byte, bufferSize(t.blksize, t.size))

	base := int64(1)
	end := min(base+int64(t.window)-1, n)
	if err := t.send(base, end); err != nil {
		return err
	}
	tries := 0
	dupSent := false // a window was resent for this base already
	deadline := time.Now().Add(t.timeout)
	for {
		pk, err := t.recv(deadline)
		if isTimeout(err) {
			if tries >= t.retries {
				return fmt.Errorf("block %d: %w after %d tries", base, errRetries, tries+1)
			}
			tries++
			if err := t.send(base, end); err != nil {
				return err
			}
			deadline = time.Now().Add(t.timeout)
			continue
		}
		if err != nil {
			return err
		}
		switch pk.Op {
		case opERROR:
			if t.acked == 0 {
				return errEarlyTerminate
			}
			return fmt.Errorf("client sent ERROR %d %q after %d bytes", pk.Code, pk.Msg, t.acked)
		case opACK:
		default:
			continue
		}
		// Map the 16-bit block number to the absolute one in [base-1, end].
		k := base - 1 + int64(pk.Block-uint16(base-1))
		switch {
		case k > end:
			continue // stale
		case k == base-1:
			if t.window > 1 && !dupSent {
				dupSent = true
				if err := t.send(base, end); err != nil {
					return err
				}
			}
			continue
		}
		t.acked = min(k*int64(t.blksize), t.size)
		if k == n {
			return nil
		}
		dupSent = k < end // a gap: this send is the resend
		base = k + 1
		end = min(base+int64(t.window)-1, n)
		tries = 0
		if err := t.send(base, end); err != nil {
			return err
		}
		deadline = time.Now().Add(t.timeout)
	}
}

// send reads and writes blocks from..to.
func (t *transfer) send(from, to int64) error {
	for b := from; b <= to; b++ {
		off := (b - 1) * int64(t.blksize)
		want := int(max(0, min(int64(t.blksize), t.size-off)))
		p := t.pkt[:4+want]
		putDataHeader(p, uint16(b))
		got, err := t.file.ReadAt(p[4:], off)
		if got < want {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF // the file shrank under us
			}
			return &readError{fmt.Errorf("reading block %d: %w", b, err)}
		}
		if _, err := t.conn.Write(p); err != nil {
			return fmt.Errorf("sending block %d: %w", b, err)
		}
	}
	return nil
}

// recv reads the next packet from the client until deadline. Malformed
// packets are skipped.
func (t *transfer) recv(deadline time.Time) (packet, error) {
	if err := t.conn.SetReadDeadline(deadline); err != nil {
		return packet{}, err
	}
	for {
		n, err := t.conn.Read(t.rbuf[:])
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return packet{}, fmt.Errorf("transfer aborted: %w", ErrServerClosed)
			}
			return packet{}, err
		}
		pk, err := parsePacket(t.rbuf[:n])
		if err != nil {
			continue
		}
		return pk, nil
	}
}

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }
