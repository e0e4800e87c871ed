package apt

import (
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/term"
)

// progress reports the progress of one download to Client.Progress. A nil
// *progress is silent.
type progress struct {
	w     io.Writer
	tty   bool
	label string
	total int64 // -1 if unknown
	done  int64
	start time.Time
	drawn time.Time
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

func (c *Client) startProgress(label string, total int64) *progress {
	if c.Progress == nil {
		return nil
	}
	p := &progress{w: c.Progress, tty: isTerminal(c.Progress), label: label, total: total, start: time.Now()}
	if p.tty {
		p.draw()
	} else if total >= 0 {
		fmt.Fprintf(p.w, "downloading %s (%s)\n", label, mb(total))
	} else {
		fmt.Fprintf(p.w, "downloading %s\n", label)
	}
	return p
}

// Write counts downloaded bytes.
func (p *progress) Write(b []byte) (int, error) {
	if p == nil {
		return len(b), nil
	}
	p.done += int64(len(b))
	if p.tty && time.Since(p.drawn) >= 100*time.Millisecond {
		p.draw()
	}
	return len(b), nil
}

func (p *progress) rate() string {
	secs := time.Since(p.start).Seconds()
	if secs <= 0 {
		return "-- MB/s"
	}
	return fmt.Sprintf("%.1f MB/s", float64(p.done)/1e6/secs)
}

func (p *progress) draw() {
	p.drawn = time.Now()
	const width = 30
	bar := strings.Repeat("-", width)
	amount := mb(p.done)
	if p.total > 0 {
		fill := int(float64(width) * float64(p.done) / float64(p.total))
		fill = min(max(fill, 0), width)
		bar = strings.Repeat("=", fill) + strings.Repeat(" ", width-fill)
		amount = fmt.Sprintf("%.1f/%s", float64(p.done)/1e6, mb(p.total))
	}
	fmt.Fprintf(p.w, "\r\x1b[K%s [%s] %s %s", p.label, bar, amount, p.rate())
}

func (p *progress) finish(err error) {
	if p == nil {
		return
	}
	switch {
	case p.tty:
		p.draw()
		if err != nil {
			fmt.Fprintf(p.w, " failed")
		}
		fmt.Fprintln(p.w)
	case err != nil:
		fmt.Fprintf(p.w, "download of %s failed after %s\n", p.label, mb(p.done))
	default:
		fmt.Fprintf(p.w, "downloaded %s: %s in %.1fs (%s)\n", p.label, mb(p.done), time.Since(p.start).Seconds(), p.rate())
	}
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
