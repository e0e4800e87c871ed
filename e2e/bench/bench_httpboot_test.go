package bench

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ramboot/ramboot/e2e/client"
	"github.com/ramboot/ramboot/e2e/lab"
)

// BenchmarkPiHTTPBoot (issue 22): what a Pi 4 moves before its kernel
// starts, over HTTP (boot.sig then boot.img, one TCP connection each, as
// the EEPROM's HTTP boot fetches them) against TFTP with the Pi 4
// bootloader's options (the size probe, then the board profile's fetch
// list, blksize 1024, lock-step, one file after the other), both from
// the same `ramboot serve` in the same lab run, 1 client and 50 at once
// (each its own socket or connection, from one peer). Every file is
// checked byte for byte. It prints the time until the last client is
// done, each client's p50 and max, and the ratio TFTP ÷ HTTP.
func BenchmarkPiHTTPBoot(b *testing.B) {
	lab.Skip(b)
	l := newSBLab(b)
	dir, _, bi := lab.HTTPBootTree(b, "rpi4")
	files := client.PiFetched(b, "rpi4")
	want := map[string][]byte{}
	var tftpBytes int64
	for _, f := range append([]string{"start4.elf"}, files...) {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			b.Fatal(err)
		}
		want[f] = data
	}
	for _, f := range files {
		tftpBytes += int64(len(want[f]))
	}
	httpBytes := int64(len(bi.Img) + len(bi.Sig))
	peer := l.peer("192.0.2.9")
	// All clients are one peer's sockets: the per-client limits are
	// raised to let 50 stand in for 50 Pis (a Pi needs 1 of each).
	srv := l.startRamboot(dir, "off", "--http-max-conns-per-client", "100", "--tftp-max-per-client", "100")
	defer srv.Stop()

	// tftpBoot is one Pi's TFTP fetches.
	tftpBoot := func(deadline time.Time) error {
		c := client.TFTP{NS: peer.NS, Server: lab.Addr + ":69", Blksize: 1024, Tsize: true, Deadline: deadline, RTO: time.Second, Tries: 10}
		probe := c
		probe.EarlyTerminate = true
		if r, err := probe.Get(client.PiSerial + "/start4.elf"); err != nil || r.Tsize() != int64(len(want["start4.elf"])) {
			return fmt.Errorf("size probe: %v, tsize %d", err, r.Tsize())
		}
		for _, f := range files {
			r, err := c.Get(client.PiSerial + "/" + f)
			if err != nil || r.ErrCode != -1 || string(r.Data) != string(want[f]) {
				return fmt.Errorf("tftp %s: %v, ERROR %d %q, %d bytes of %d", f, err, r.ErrCode, r.ErrMsg, len(r.Data), len(want[f]))
			}
		}
		return nil
	}
	// httpBoot is one Pi's HTTP fetches.
	httpBoot := func(deadline time.Time) error {
		hc, done := lab.Client(peer.NS)
		defer done()
		hc.Timeout = time.Until(deadline)
		for _, f := range []struct {
			name string
			data []byte
		}{{"boot.sig", bi.Sig}, {"boot.img", bi.Img}} {
			resp, err := hc.Get("http://" + lab.Addr + ":8080/rpi4/" + f.name)
			if err != nil {
				return err
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || string(body) != string(f.data) {
				return fmt.Errorf("GET %s: %s, %v, %d bytes of %d", f.name, resp.Status, err, len(body), len(f.data))
			}
		}
		return nil
	}

	type row struct {
		how             string
		n, failed       int
		total, p50, max time.Duration
		errs            []string
	}
	run := func(how string, n int, boot func(time.Time) error) row {
		deadline := time.Now().Add(5 * time.Minute)
		durs, errs, total := sbCrowd(n, func(int) error { return boot(deadline) })
		r := row{how: how, n: n, total: total, p50: durs[n/2], max: durs[n-1]}
		r.failed, r.errs = sbFailures(errs)
		return r
	}

	b.ResetTimer()
	var rows []row
	for it := 0; it < b.N; it++ {
		rows = rows[:0]
		for _, n := range []int{1, 50} {
			rows = append(rows, run("TFTP blksize 1024 lock-step", n, tftpBoot), run("HTTP boot.sig + boot.img", n, httpBoot))
		}
	}
	b.StopTimer()
	var out strings.Builder
	fmt.Fprintf(&out, "\nPi 4 boot files from ramboot serve (%s): TFTP %d files, %.1f MB; HTTP boot.img %.1f MB + boot.sig %d bytes\n",
		sbLoad(), len(files)+1, float64(tftpBytes)/1e6, float64(len(bi.Img))/1e6, len(bi.Sig))
	fmt.Fprintln(&out, "| clients | how | done | failed | all done s | per client p50 s | max s | MB/s per client (p50) | TFTP ÷ HTTP (all done) |")
	fmt.Fprintln(&out, "|---|---|---|---|---|---|---|---|---|")
	for i, r := range rows {
		bytes := tftpBytes
		if strings.HasPrefix(r.how, "HTTP") {
			bytes = httpBytes
		}
		ratio := "-"
		if i%2 == 1 && r.total > 0 {
			ratio = fmt.Sprintf("%.2f", rows[i-1].total.Seconds()/r.total.Seconds())
		}
		fmt.Fprintf(&out, "| %d | %s | %d | %d | %.2f | %.2f | %.2f | %.1f | %s |\n", r.n, r.how, r.n-r.failed, r.failed,
			r.total.Seconds(), r.p50.Seconds(), r.max.Seconds(), float64(bytes)/1e6/r.p50.Seconds(), ratio)
		for _, e := range r.errs {
			b.Errorf("%s, %d clients: %s", r.how, r.n, e)
		}
	}
	fmt.Print(out.String())
}
