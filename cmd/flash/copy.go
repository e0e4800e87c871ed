//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

const (
	bufSize = 4 << 20 // a multiple of any erase block; Go allocates it page-aligned
	numBufs = 3       // one being filled, one being written, one spare
)

// pump copies r to w in bufSize chunks, decompressing (reading) in one
// goroutine while writing in another, so that the device never waits for
// the decompressor and vice versa. limit > 0 is the device size: a chunk
// that would go past it is not written. On a write error it calls abort to
// unblock a read stuck on the network. It returns the bytes written, the
// read error and the write error.
func pump(ctx context.Context, r io.Reader, w io.Writer, limit int64, abort func(), onWrite func(int64)) (written int64, rerr, werr error) {
	free := make(chan []byte, numBufs)
	full := make(chan []byte, numBufs)
	for i := 0; i < numBufs; i++ {
		free <- make([]byte, bufSize)
	}
	stop := make(chan struct{})
	go func() {
		defer close(full)
		for {
			var b []byte
			select {
			case b = <-free:
			case <-stop:
				return
			}
			n, err := fill(r, b)
			if n > 0 {
				full <- b[:n] // never blocks: there are only numBufs buffers
			}
			if err == io.EOF {
				return
			}
			if err == nil {
				err = ctx.Err()
			}
			if err != nil {
				rerr = err
				return
			}
		}
	}()
	for b := range full {
		if werr == nil {
			if limit > 0 && written+int64(len(b)) > limit {
				werr = errTooBig
			} else {
				var n int
				n, werr = w.Write(b)
				written += int64(n)
				onWrite(written)
			}
			if werr != nil {
				close(stop)
				abort()
			}
		}
		free <- b[:cap(b)]
	}
	return written, rerr, werr
}

// fill reads until b is full or r fails; unlike io.ReadFull it passes on
// the reader's io.ErrUnexpectedEOF (a truncated download) unchanged.
func fill(r io.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// progress reports on stderr: on a terminal one line, redrawn; otherwise
// (a serial log, a file) a line per 10% if the size is known, else every 5 s.
type progress struct {
	w       io.Writer
	tty     bool
	total   int64 // image size as served; -1 unknown
	in      *meter
	start   time.Time
	last    time.Time
	lastPct int
	width   int
	written int64
	printed int64 // written, as of the last line printed (not a terminal)
}

func newProgress(w io.Writer, tty bool, total int64, in *meter) *progress {
	now := time.Now()
	return &progress{w: w, tty: tty, total: total, in: in, start: now, last: now}
}

func (p *progress) line() string {
	el := time.Since(p.start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(p.written) / el
	}
	s := fmt.Sprintf("%s written, %.1f MB/s", humanBytes(p.written), rate/1e6)
	if p.total > 0 {
		f := float64(p.in.n.Load()) / float64(p.total)
		s += fmt.Sprintf(", %d%%", int(f*100))
		if f > 0.01 && f < 1 {
			eta := time.Duration(el*(1-f)/f) * time.Second
			s += ", " + eta.Round(time.Second).String() + " left"
		}
	}
	return s
}

func (p *progress) update(written int64) {
	p.written = written
	now := time.Now()
	if p.tty {
		if now.Sub(p.last) < 250*time.Millisecond {
			return
		}
		p.last = now
		s := p.line()
		pad := ""
		if len(s) < p.width {
			pad = strings.Repeat(" ", p.width-len(s))
		}
		p.width = len(s)
		fmt.Fprintf(p.w, "\r%s%s", s, pad)
		return
	}
	if p.total > 0 {
		pct := int(p.in.n.Load() * 100 / p.total)
		if pct/10 <= p.lastPct/10 {
			return
		}
		p.lastPct = pct
	} else if now.Sub(p.last) < 5*time.Second {
		return
	}
	p.last = now
	p.printed = written
	fmt.Fprintf(p.w, "flash: %s\n", p.line())
}

func (p *progress) done() {
	if p.tty && p.width > 0 {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.width))
	}
	// The percentage follows the download, which can run ahead of the
	// writes: the last line says how much was written in the end.
	if !p.tty && p.written != p.printed {
		p.printed = p.written
		fmt.Fprintf(p.w, "flash: %s\n", p.line())
	}
}
