//go:build linux

package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// flash does the work; it returns the one-line summary for stdout.
func (e *env) flash(ctx context.Context, o *options, stderr io.Writer) (string, error) {
	// Check the target first: no point downloading onto a mounted disk.
	tgt, err := e.inspectTarget(o.device)
	if err != nil {
		return "", err
	}

	client := newClient()
	var want []byte
	if o.sha256 != "" {
		want, err = e.resolveSum(ctx, client, o.sha256, o.image)
		if err != nil {
			return "", err
		}
	}

	src, err := e.openSource(ctx, client, o.image, want != nil)
	if err != nil {
		return "", err
	}
	defer src.Close()

	sizeNote := "size unknown"
	if src.size >= 0 {
		sizeNote = humanBytes(src.size)
	}
	if src.format == formatRaw {
		fmt.Fprintf(stderr, "flash: %s: raw image (%s)\n", o.image, sizeNote)
		if src.size > 0 && tgt.size > 0 && src.size > tgt.size {
			return "", fmt.Errorf("the image (%s) is larger than %s (%s): nothing was written; use a bigger device",
				humanBytes(src.size), tgt.path, humanBytes(tgt.size))
		}
	} else {
		fmt.Fprintf(stderr, "flash: %s: %s-compressed image (%s as served)\n", o.image, src.format, sizeNote)
	}

	if e.stdinTTY && !o.yes {
		what := "image"
		if src.size >= 0 {
			what = humanBytes(src.size) + " image"
		}
		if src.format != formatRaw {
			what += " (" + string(src.format) + "-compressed)"
		}
		fmt.Fprintf(stderr, "flash: everything on %s will be overwritten.\n", tgt.path)
		if !e.confirm(stderr, fmt.Sprintf("write %s to %s (%s)?", what, tgt.path, tgt.desc)) {
			return "", errors.New("not confirmed: nothing was written (use --yes to skip the question)")
		}
	}

	dec, closeDec, err := decompressor(src.format, src.br)
	if err != nil {
		return "", fmt.Errorf("%s: %s data: %v", o.image, src.format, err)
	}
	if o.disk {
		// Checked before the target is opened: a regular file target is
		// truncated on open.
		d := &diskHead{r: dec, name: o.image}
		if err := d.check(); err != nil {
			closeDec()
			return "", err
		}
		dec = d
	}
	if err := tgt.open(); err != nil {
		closeDec()
		return "", err
	}
	defer tgt.f.Close()
	prog := newProgress(stderr, e.stderrTTY, src.size, src.meter)
	start := time.Now()
	var w io.Writer = tgt.f
	if tgt.block {
		w = &zeroWriter{f: tgt.f}
	}
	written, rerr, werr := pump(ctx, dec, w, tgt.size, src.abort, prog.update)
	if rerr == nil && werr == nil {
		// Read what the decompressor left (padding, trailing bytes), so that
		// the checksum covers the whole file as served.
		_, rerr = io.Copy(io.Discard, src.br)
	}
	closeDec()
	prog.done()
	elapsed := time.Since(start)

	if werr != nil {
		return "", tgt.explainWrite(werr, written)
	}
	if rerr != nil {
		return "", src.explainRead(ctx, rerr, written, tgt.path)
	}
	if written == 0 {
		return "", fmt.Errorf("%s: the image is empty: nothing was written", o.image)
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("interrupted: %s holds a partial image", tgt.path)
	}

	if err := tgt.sync(stderr, !o.noSync); err != nil {
		return "", err
	}

	rate := humanBytes(int64(float64(written)/elapsed.Seconds())) + "/s"
	summary := fmt.Sprintf("wrote %s to %s in %s (%s)", humanBytes(written), tgt.path, elapsed.Round(100*time.Millisecond), rate)
	if want != nil {
		got := src.meter.sum()
		if !equalSum(got, want) {
			return "", fmt.Errorf("SHA-256 MISMATCH: %s is %s, expected %s.\n"+
				"       %s now holds UNVERIFIED data: do not boot it. The download may be corrupt or the\n"+
				"       file changed on the server: check the checksum, then flash again.",
				o.image, hex.EncodeToString(got), hex.EncodeToString(want), tgt.path)
		}
		summary += "; sha256 verified"
	}
	return summary, nil
}

// diskHead passes a stream through once its first sector holds a
// partition table: the MBR's (or GPT's protective MBR's) 55 AA signature.
// It fails the first Read otherwise, before pump writes anything.
type diskHead struct {
	r       io.Reader
	name    string
	head    []byte
	checked bool
}

// check reads the first sector.
func (d *diskHead) check() error {
	d.head = make([]byte, 512)
	n, err := io.ReadFull(d.r, d.head)
	d.head = d.head[:n]
	if n < 512 || d.head[510] != 0x55 || d.head[511] != 0xaa {
		if err == nil || err == io.ErrUnexpectedEOF || err == io.EOF {
			err = fmt.Errorf("%s is not a disk image: its first sector has no partition table (no MBR signature 55 aa at byte 510); nothing was written. A root image (.squashfs) or a file system image is not an install image", d.name)
		}
		return err
	}
	d.checked = true
	return nil
}

func (d *diskHead) Read(p []byte) (int, error) {
	if len(d.head) > 0 {
		n := copy(p, d.head)
		d.head = d.head[n:]
		return n, nil
	}
	return d.r.Read(p)
}

func equalSum(a, b []byte) bool { return hex.EncodeToString(a) == hex.EncodeToString(b) }

// humanBytes formats n in decimal units, as disk sizes are sold: 7.8 GB.
func humanBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}

// hint joins an error and the fix for it.
func hint(err error, fix ...string) error {
	return fmt.Errorf("%w\n       %s", err, strings.Join(fix, "\n       "))
}
