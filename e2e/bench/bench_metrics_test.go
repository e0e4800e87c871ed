package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ramboot/ramboot/e2e/lab"
	"github.com/ramboot/ramboot/internal/netnstest"
)

// BenchmarkMetricsScrape: what Prometheus scrapes of /metrics cost during
// the 500-transfer TFTP load (server/tftp's TestLoad: 500 clients at once
// fetch a 1 MB file, here from one peer with BenchmarkTFTPConcurrent's
// client, blksize 1468 + tsize, lock-step). The same load runs against
// `ramboot serve` twice per iteration, once plain and once while another
// host GETs /metrics every 100 ms, in alternating order; the ratio of
// total times (scraped / plain) is the cost, with the scrapes' latency
// beside it. Byte-exactness of every transfer and the metrics' own count
// of the transfers are checked; timings are only reported.
func BenchmarkMetricsScrape(b *testing.B) {
	lab.Skip(b)
	root := b.TempDir()
	data := make([]byte, 1<<20)
	rand.Read(data)
	if err := os.WriteFile(filepath.Join(root, "load.bin"), data, 0o644); err != nil {
		b.Fatal(err)
	}
	l := newSBLab(b)
	client := l.peer("192.0.2.9")
	scraper := l.peer("192.0.2.10")
	size, sum := sbHashFile(b, filepath.Join(root, "load.bin"))
	want, _ := hex.DecodeString(sum)
	const (
		n       = 500
		blksize = 1468
		perRun  = 120 * time.Second
		every   = 100 * time.Millisecond
	)
	server := &net.UDPAddr{IP: net.ParseIP(lab.Addr), Port: 69}
	metricsURL := "http://" + lab.Addr + ":8080/metrics"

	// The scraper's HTTP client: its connections are made in its
	// namespace, one kept alive, as Prometheus does.
	tr := &http.Transport{MaxIdleConns: 1, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := netnstest.Do(scraper.NS, func() (err error) {
			c, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	get := func() (string, time.Duration, error) {
		t0 := time.Now()
		resp, err := hc.Get(metricsURL)
		if err != nil {
			return "", 0, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(t0)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("GET /metrics: %s", resp.Status)
		}
		return string(body), d, err
	}

	type result struct {
		total        time.Duration
		ok, failed   int
		scrapes      []time.Duration
		scrapeBytes  int
		scrapeErrors int
		errs         map[string]int
	}
	run := func(scrape bool) *result {
		var conns []*net.UDPConn
		err := netnstest.Do(client.NS, func() error {
			for range n {
				c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(client.Addr)})
				if err != nil {
					return err
				}
				conns = append(conns, c)
			}
			return nil
		})
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		if err != nil {
			b.Fatalf("client sockets in %s: %v", client.NS, err)
		}
		p := l.startRamboot(root, "off")
		r := &result{errs: map[string]int{}}
		stop := make(chan struct{})
		var swg sync.WaitGroup
		if scrape {
			swg.Add(1)
			go func() {
				defer swg.Done()
				tick := time.NewTicker(every)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					body, d, err := get()
					if err != nil || !strings.Contains(body, "ramboot_tftp_transfers_total") {
						r.scrapeErrors++
						continue
					}
					r.scrapes = append(r.scrapes, d)
					r.scrapeBytes = len(body)
				}
			}()
		}
		gets := make([]sbGet, n)
		var wg sync.WaitGroup
		gate := make(chan struct{})
		deadline := time.Now().Add(perRun)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-gate
				gets[i] = sbTFTPGet(conns[i], server, "load.bin", blksize, deadline)
			}()
		}
		t0 := time.Now()
		close(gate)
		wg.Wait()
		r.total = time.Since(t0)
		close(stop)
		swg.Wait()
		for _, g := range gets {
			switch {
			case g.Err != nil:
				r.failed++
				r.errs[regexp.MustCompile(`[0-9.]+m?s|\d+ bytes`).ReplaceAllString(g.Err.Error(), "N")]++
			case g.Bytes != size || string(g.Sum[:]) != string(want):
				r.failed++
				b.Errorf("a transfer got %d bytes sha256 %x, want %d %s", g.Bytes, g.Sum, size, sum)
			default:
				r.ok++
			}
		}
		// The server's own count of what it served matches the clients'
		// (it counts a transfer once it saw the last ACK: a moment after
		// the client is done).
		completed := regexp.MustCompile(`(?m)^ramboot_tftp_transfers_total\{result="completed"\} (\d+)$`)
		var m []string
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			body, _, err := get()
			if err == nil {
				m = completed.FindStringSubmatch(body)
			}
			if (m != nil && m[1] == fmt.Sprint(r.ok)) || time.Now().After(deadline) {
				break
			}
		}
		if m == nil || m[1] != fmt.Sprint(r.ok) {
			b.Errorf("/metrics counts %v completed TFTP transfers, the clients %d", m, r.ok)
		}
		if err := p.Stop(); err != nil {
			b.Error(err)
		}
		return r
	}

	var plain, scraped []*result
	load0 := sbLoad()
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		order := []bool{false, true}
		if it%2 == 1 {
			order = []bool{true, false}
		}
		for _, s := range order {
			r := run(s)
			if s {
				scraped = append(scraped, r)
			} else {
				plain = append(plain, r)
			}
		}
	}
	b.StopTimer()

	var tp, ts time.Duration
	var okp, oks, failed, scrapeErrs, sbytes int
	var lat []time.Duration
	for _, r := range plain {
		tp += r.total
		okp += r.ok
		failed += r.failed
	}
	for _, r := range scraped {
		ts += r.total
		oks += r.ok
		failed += r.failed
		scrapeErrs += r.scrapeErrors
		lat = append(lat, r.scrapes...)
		sbytes = max(sbytes, r.scrapeBytes)
	}
	mbPlain := float64(okp) * float64(size) / 1e6 / tp.Seconds()
	mbScraped := float64(oks) * float64(size) / 1e6 / ts.Seconds()
	p50, p99, pmax := sbQuantile(lat, 0.5), sbQuantile(lat, 0.99), sbQuantile(lat, 1)
	b.ReportMetric(ts.Seconds()/tp.Seconds(), "ratio-total-time-scraped/plain")
	b.ReportMetric(mbScraped/mbPlain, "ratio-MBps-scraped/plain")
	b.ReportMetric(mbPlain, "plain-MB/s")
	b.ReportMetric(mbScraped, "scraped-MB/s")
	b.ReportMetric(float64(p50.Microseconds())/1e3, "scrape-p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1e3, "scrape-p99-ms")
	b.ReportMetric(float64(len(lat)), "scrapes")
	b.ReportMetric(float64(failed), "failed-transfers")
	if scrapeErrs > 0 {
		b.Errorf("%d scrapes failed", scrapeErrs)
	}

	var out strings.Builder
	fmt.Fprintf(&out, "\nBenchmarkMetricsScrape: %d concurrent RRQs of a %.2f MB file from ramboot serve, plain and with GET /metrics every %v from another host, %d round(s) each, alternating; load before %s, after %s\n",
		n, float64(size)/1e6, every, len(plain), load0, sbLoad())
	fmt.Fprintf(&out, "  plain:   %.2f s, %.1f MB/s\n  scraped: %.2f s, %.1f MB/s (%d scrapes of %d bytes: p50 %.1f ms, p99 %.1f ms, max %.1f ms)\n",
		tp.Seconds(), mbPlain, ts.Seconds(), mbScraped, len(lat), sbytes,
		float64(p50.Microseconds())/1e3, float64(p99.Microseconds())/1e3, float64(pmax.Microseconds())/1e3)
	fmt.Fprintf(&out, "  scraped/plain total time: %.3f (1 = free); failed transfers: %d\n", ts.Seconds()/tp.Seconds(), failed)
	for i := range plain {
		fmt.Fprintf(&out, "    round %d: plain %.2f s, scraped %.2f s (%d scrapes)\n", i+1, plain[i].total.Seconds(), scraped[i].total.Seconds(), len(scraped[i].scrapes))
	}
	for _, r := range append(plain, scraped...) {
		for e, c := range r.errs {
			fmt.Fprintf(&out, "      %4d x %s\n", c, e)
		}
	}
	fmt.Fprint(os.Stdout, out.String())
}
