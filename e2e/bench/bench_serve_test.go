package bench

// `ramboot serve` against the peers a Pi rack would otherwise use, in the
// same run (make bench): TFTP throughput with a real client (atftp),
// 500 concurrent transfers (a Go client), and a burst of Pi 4 proxyDHCP
// DISCOVERs. Every server and client runs inside the lab's namespaces
// (rbt-*, 192.0.2.0/24, no route out), one server at a time; every loop
// is bounded in count and time. Timings are reported (b.ReportMetric and
// a table on stdout), never asserted; byte-exactness and answer content
// are.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/ramboot/ramboot/e2e/cache"
	"github.com/ramboot/ramboot/e2e/client"
	"github.com/ramboot/ramboot/e2e/lab"
	"github.com/ramboot/ramboot/internal/netnstest"
	"golang.org/x/sys/unix"
)

// sbServer is one TFTP server under test.
type sbServer struct {
	key, name string
	start     func() *lab.Proc
}

func sbTFTPServers(l *sbLab, root string) []sbServer {
	return []sbServer{
		{"ramboot", "ramboot serve", func() *lab.Proc { return l.startRamboot(root, "off") }},
		{"hpa", "tftpd-hpa 5.2", func() *lab.Proc { return l.startTftpdHPA(root) }},
		{"dnsmasq", "dnsmasq 2.90", func() *lab.Proc { return l.startDnsmasqTFTP(root, 0) }},
	}
}

type sbFile struct {
	name, key string
	size      int64
	sum       string
}

func sbHashFile(tb testing.TB, p string) (int64, string) {
	tb.Helper()
	f, err := os.Open(p)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		tb.Fatal(err)
	}
	return n, hex.EncodeToString(h.Sum(nil))
}

func sbMedian(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func sbQuantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func sbLoad() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

var sbOACKRE = regexp.MustCompile(`received OACK <([^>]*)>`)

// sbAtftpOptions fetches a small file with atftp --trace and returns what
// the server granted: the OACK's options, or "" when it answered with DATA
// (no options at all).
func sbAtftpOptions(tb testing.TB, p *lab.Peer, dir string, opts []string) (string, error) {
	args := []string{"--get", "-r", "config.txt", "-l", filepath.Join(dir, "probe"), "--trace"}
	for _, o := range opts {
		args = append(args, "--option", o)
	}
	args = append(args, lab.Addr, "69")
	out, err := netnstest.Exec(p.NS, 30*time.Second, "atftp", args...)
	if err != nil {
		return "", fmt.Errorf("atftp probe: %v\n%s", err, out)
	}
	m := sbOACKRE.FindStringSubmatch(out)
	if m == nil {
		return "", nil
	}
	return strings.TrimSuffix(strings.TrimSpace(m[1]), ","), nil
}

// sbAtftpGet fetches f with atftp in peer p and checks every byte.
func sbAtftpGet(p *lab.Peer, dir string, f sbFile, opts []string) (time.Duration, error) {
	out := filepath.Join(dir, f.key)
	os.Remove(out)
	args := []string{"--get", "-r", f.name, "-l", out}
	for _, o := range opts {
		args = append(args, "--option", o)
	}
	args = append(args, lab.Addr, "69")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", p.NS, "atftp"}, args...)...)
	cmd.WaitDelay = 2 * time.Second
	t0 := time.Now()
	o, err := cmd.CombinedOutput()
	d := time.Since(t0)
	if err != nil {
		return d, fmt.Errorf("atftp %s: %v\n%s", f.name, err, o)
	}
	fh, err := os.Open(out)
	if err != nil {
		return d, err
	}
	defer fh.Close()
	h := sha256.New()
	n, err := io.Copy(h, fh)
	if err != nil {
		return d, err
	}
	if n != f.size || hex.EncodeToString(h.Sum(nil)) != f.sum {
		return d, fmt.Errorf("atftp %s: got %d bytes sha256 %x, want %d bytes %s", f.name, n, h.Sum(nil), f.size, f.sum)
	}
	os.Remove(out)
	return d, nil
}

// BenchmarkTFTP: one atftp client in a peer namespace fetches the Pi 4
// tree's kernel and initramfs from each server in turn, with the Pi 4
// firmware's options and with RFC 7440 windows. MB/s is the median of 5
// rounds (the servers take turns, one at a time, a different one first
// each round), wall time of the atftp process (its start included).
func BenchmarkTFTP(b *testing.B) {
	lab.Skip(b)
	root, _ := cache.Image(b, "rpi4")
	lab.Need(b, "atftp", "atftp")
	lab.Sbin(b, "in.tftpd", "tftpd-hpa")
	lab.Need(b, "dnsmasq", "dnsmasq")
	l := newSBLab(b)
	client := l.peer("192.0.2.9")
	work := b.TempDir()

	var files []sbFile
	for _, f := range []struct{ name, key string }{{"Image", "Image"}, {"rootfs.cpio.gz", "rootfs"}} {
		n, sum := sbHashFile(b, filepath.Join(root, f.name))
		files = append(files, sbFile{f.name, f.key, n, sum})
	}
	rows := []struct {
		key, name string
		opts      []string
	}{
		{"pi1024", "Pi 4 firmware: blksize 1024 + tsize", []string{"blksize 1024", "tsize 0"}},
		{"w16", "blksize 1468 + windowsize 16 + tsize", []string{"blksize 1468", "windowsize 16", "tsize 0"}},
		{"w64", "blksize 1468 + windowsize 64 + tsize", []string{"blksize 1468", "windowsize 64", "tsize 0"}},
	}
	servers := sbTFTPServers(l, root)
	const reps = 5
	budget := time.Now().Add(2 * time.Minute)

	type cell struct {
		rates   []float64
		mbps    float64
		granted string
		err     error
	}
	res := map[string]*cell{} // server/row/file
	key := func(s, r, f string) string { return s + "/" + r + "/" + f }
	for _, s := range servers {
		for _, r := range rows {
			for _, f := range files {
				res[key(s.key, r.key, f.key)] = &cell{}
			}
		}
	}
	load0 := sbLoad()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Round-robin, one server at a time, starting with another one
		// each round: the other engineers' load on this machine varies
		// over the run, and should not fall on one server only.
		for rep := 0; rep < reps; rep++ {
			for j := range servers {
				s := servers[(j+rep)%len(servers)]
				if time.Now().After(budget) {
					b.Errorf("BenchmarkTFTP: 2-minute budget spent before round %d of %s", rep+1, s.name)
					break
				}
				p := s.start()
				for _, r := range rows {
					var granted string
					var perr error
					if rep == 0 {
						granted, perr = sbAtftpOptions(b, client, work, r.opts)
					}
					for _, f := range files {
						c := res[key(s.key, r.key, f.key)]
						if rep == 0 {
							c.granted, c.err = granted, perr
						}
						if c.err != nil || time.Now().After(budget) {
							continue
						}
						d, err := sbAtftpGet(client, work, f, r.opts)
						if err != nil {
							c.err = err
							continue
						}
						c.rates = append(c.rates, float64(f.size)/1e6/d.Seconds())
					}
				}
				if err := p.Stop(); err != nil {
					b.Error(err)
				}
			}
		}
	}
	for _, c := range res {
		c.mbps = sbMedian(c.rates)
		if len(c.rates) == 0 && c.err == nil {
			c.err = fmt.Errorf("no transfer made (time budget)")
		}
	}
	b.StopTimer()

	var out strings.Builder
	fmt.Fprintf(&out, "\nBenchmarkTFTP: one atftp 0.8.0 client, MB/s median [min-max] of %d rounds (servers round-robin), byte-exact; lab veth+bridge; load before %s, after %s (2 cores)\n", reps, load0, sbLoad())
	fmt.Fprintf(&out, "  %-38s %-15s %-24s %-24s %-24s %s\n", "options", "file", "ramboot serve", "tftpd-hpa 5.2", "dnsmasq 2.90", "ramboot/best peer")
	for _, r := range rows {
		for _, f := range files {
			var vals []string
			best := 0.0
			var rb float64
			for _, s := range servers {
				c := res[key(s.key, r.key, f.key)]
				if c == nil {
					vals = append(vals, "-")
					continue
				}
				v := fmt.Sprintf("%.1f", c.mbps)
				if len(c.rates) > 1 {
					v += fmt.Sprintf(" [%.0f-%.0f]", slices.Min(c.rates), slices.Max(c.rates))
				}
				if c.err != nil {
					v = "FAIL"
					b.Errorf("%s, %s, %s: %v", s.name, r.name, f.name, c.err)
				} else {
					b.ReportMetric(c.mbps, fmt.Sprintf("%s-%s-%s-MB/s", s.key, r.key, f.key))
				}
				if r.key != "pi1024" && !strings.Contains(c.granted, "windowsize") {
					v += " (no window)"
				}
				vals = append(vals, v)
				if s.key == "ramboot" {
					rb = c.mbps
				} else if c.err == nil {
					best = max(best, c.mbps)
				}
			}
			ratio := "-"
			if best > 0 && rb > 0 {
				ratio = fmt.Sprintf("%.2f", rb/best)
				b.ReportMetric(rb/best, fmt.Sprintf("ratio-%s-%s", r.key, f.key))
			}
			fmt.Fprintf(&out, "  %-38s %-15s %-24s %-24s %-24s %s\n", r.name, fmt.Sprintf("%s %.1fMB", f.key, float64(f.size)/1e6), vals[0], vals[1], vals[2], ratio)
		}
	}
	fmt.Fprintf(&out, "  granted options (atftp --trace OACK):\n")
	for _, r := range rows {
		for _, s := range servers {
			c := res[key(s.key, r.key, files[0].key)]
			g := "-"
			if c != nil {
				g = c.granted
				if g == "" {
					g = "none (no OACK)"
				}
				if r.key != "pi1024" && !strings.Contains(c.granted, "windowsize") {
					g += "  => windowsize refused: lock-step"
				}
			}
			fmt.Fprintf(&out, "    %-6s %-14s %s\n", r.key, s.name, g)
		}
	}
	fmt.Fprint(os.Stdout, out.String())
}

// BenchmarkTFTPConcurrent: 500 transfers of rootfs.cpio.gz at once from one
// peer (one socket each, blksize 1468 + tsize, lock-step, 1 s
// retransmission, 10 timeouts in a row give up), against each server in
// turn. Peak memory: the server's VmHWM at the end, and the summed RSS/PSS
// of its process group sampled every 200 ms (tftpd-hpa forks a child per
// transfer).
func BenchmarkTFTPConcurrent(b *testing.B) {
	lab.Skip(b)
	root, _ := cache.Image(b, "rpi4")
	lab.Sbin(b, "in.tftpd", "tftpd-hpa")
	lab.Need(b, "dnsmasq", "dnsmasq")
	l := newSBLab(b)
	client := l.peer("192.0.2.9")
	size, sum := sbHashFile(b, filepath.Join(root, "rootfs.cpio.gz"))
	const (
		n       = 500
		blksize = 1468
		perRun  = 60 * time.Second
	)
	servers := sbTFTPServers(l, root)
	servers = append(servers, sbServer{"dnsmasq1000", "dnsmasq --tftp-max=1000", func() *lab.Proc { return l.startDnsmasqTFTP(root, 1000) }})
	server := &net.UDPAddr{IP: net.ParseIP(lab.Addr), Port: 69}

	type result struct {
		total               time.Duration
		ok, failed, retrans int
		p50, p99            time.Duration
		hwm, grpRSS, grpPSS int64
		cpu                 float64
		load                string
		procs               int
		errs                map[string]int
		notes               string
	}
	results := map[string]*result{}
	load0 := sbLoad()
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		for _, s := range servers {
			var conns []*net.UDPConn
			err := netnstest.Do(client.NS, func() error {
				for i := 0; i < n; i++ {
					c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(client.Addr)})
					if err != nil {
						return err
					}
					conns = append(conns, c)
				}
				return nil
			})
			if err != nil {
				for _, c := range conns {
					c.Close()
				}
				b.Fatalf("client sockets in %s: %v", client.NS, err)
			}
			load := sbLoad()
			p := s.start()
			cpu0 := lab.TaskCPU(p.Pid())
			smp := lab.SampleGroup(p.Pid(), 200*time.Millisecond)
			gets := make([]sbGet, n)
			var wg sync.WaitGroup
			gate := make(chan struct{})
			deadline := time.Now().Add(perRun)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-gate
					gets[i] = sbTFTPGet(conns[i], server, "rootfs.cpio.gz", blksize, deadline)
				}()
			}
			t0 := time.Now()
			close(gate)
			wg.Wait()
			total := time.Since(t0)
			smp.Stop()
			r := &result{total: total, hwm: lab.StatusKB(p.Pid(), "VmHWM"), grpRSS: smp.PeakRSS, grpPSS: smp.PeakPSS, procs: smp.PeakProcs,
				cpu: smp.CPU() - cpu0, load: load, errs: map[string]int{}}
			if m := regexp.MustCompile(`restricting maximum simultaneous TFTP transfers to \d+`).FindString(p.Output()); m != "" {
				r.notes = m
			}
			if err := p.Stop(); err != nil {
				b.Error(err)
			}
			for _, c := range conns {
				c.Close()
			}
			var durs []time.Duration
			want, _ := hex.DecodeString(sum)
			for _, g := range gets {
				r.retrans += g.Retrans
				switch {
				case g.Err != nil:
					r.failed++
					e := regexp.MustCompile(`\d+ bytes`).ReplaceAllString(g.Err.Error(), "N bytes")
					e = regexp.MustCompile(`after [0-9.]+m?s`).ReplaceAllString(e, "after T")
					r.errs[e]++
				case g.Bytes != size || string(g.Sum[:]) != string(want):
					r.failed++
					r.errs[fmt.Sprintf("corrupt: %d bytes, want %d", g.Bytes, size)]++
					b.Errorf("%s: a transfer got %d bytes sha256 %x, want %d %s", s.name, g.Bytes, g.Sum, size, sum)
				default:
					r.ok++
					durs = append(durs, g.Dur)
				}
			}
			r.p50, r.p99 = sbQuantile(durs, 0.5), sbQuantile(durs, 0.99)
			results[s.key] = r
			b.ReportMetric(total.Seconds(), s.key+"-total-s")
			b.ReportMetric(float64(r.failed), s.key+"-failed")
			b.ReportMetric(float64(r.hwm)/1024, s.key+"-VmHWM-MB")
			b.ReportMetric(float64(r.grpPSS)/1024, s.key+"-peak-PSS-MB")
			b.ReportMetric(r.cpu, s.key+"-cpu-s")
		}
	}
	b.StopTimer()

	var out strings.Builder
	fmt.Fprintf(&out, "\nBenchmarkTFTPConcurrent: %d concurrent RRQs of rootfs.cpio.gz (%.2f MB), Go client in one peer, blksize %d + tsize, lock-step; load before %s, after %s (2 cores, client and server share them)\n",
		n, float64(size)/1e6, blksize, load0, sbLoad())
	fmt.Fprintf(&out, "  %-24s %8s %5s %6s %8s %8s %8s %8s %8s %10s %16s %12s  %s\n", "server", "total s", "ok", "failed", "MB/s", "p50 s", "p99 s", "retrans", "srv CPU s", "VmHWM MB", "group RSS MB", "group PSS MB", "load at start")
	for _, s := range servers {
		r := results[s.key]
		if r == nil {
			continue
		}
		mbps := float64(r.ok) * float64(size) / 1e6 / r.total.Seconds()
		fmt.Fprintf(&out, "  %-24s %8.2f %5d %6d %8.1f %8.2f %8.2f %8d %9.2f %10.1f %9.1f (%3dp) %12.1f  %s\n", s.name, r.total.Seconds(), r.ok, r.failed, mbps,
			r.p50.Seconds(), r.p99.Seconds(), r.retrans, r.cpu, float64(r.hwm)/1024, float64(r.grpRSS)/1024, r.procs, float64(r.grpPSS)/1024, r.load)
		if r.notes != "" {
			fmt.Fprintf(&out, "      dnsmasq: %s\n", r.notes)
		}
		keys := make([]string, 0, len(r.errs))
		for k := range r.errs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&out, "      %4d x %s\n", r.errs[k], k)
		}
	}
	// Ratios against the best peer that completed every transfer.
	fmt.Fprintf(&out, "  (srv CPU s: schedstat of the server's process group, sampled every 200 ms; group RSS counts shared pages once per process, PSS splits them)\n")
	rb := results["ramboot"]
	var best, bestMem *result
	var bestName, bestMemName string
	for _, s := range servers[1:] {
		r := results[s.key]
		if r == nil {
			continue
		}
		if r.failed == 0 && (best == nil || r.total < best.total) {
			best, bestName = r, s.name
		}
		if r.failed == 0 && (bestMem == nil || r.grpPSS < bestMem.grpPSS) {
			bestMem, bestMemName = r, s.name
		}
	}
	if rb != nil && best != nil {
		b.ReportMetric(rb.total.Seconds()/best.total.Seconds(), "ratio-total-time")
		fmt.Fprintf(&out, "  ramboot/best peer (%s) total time: %.2f (lower is better)\n", bestName, rb.total.Seconds()/best.total.Seconds())
	} else {
		fmt.Fprintf(&out, "  ramboot/best peer total time: no peer completed all %d transfers\n", n)
	}
	if rb != nil && bestMem != nil && bestMem.grpPSS > 0 {
		b.ReportMetric(float64(rb.grpPSS)/float64(bestMem.grpPSS), "ratio-peak-PSS")
		fmt.Fprintf(&out, "  ramboot/leanest peer that completed all (%s) peak group PSS: %.2f; CPU s ramboot/that peer: %.2f\n", bestMemName, float64(rb.grpPSS)/float64(bestMem.grpPSS), rb.cpu/bestMem.cpu)
	}
	fmt.Fprint(os.Stdout, out.String())
}

type sbDHCPRun struct {
	sent, answered, bad int
	sendDur, total      time.Duration
	lat                 []time.Duration
	drops               uint32 // the client socket's own drops
	firstBad            string
}

// sbDHCPBurst sends count Pi DISCOVERs from p's eth0 (a raw socket:
// source 0.0.0.0:68 to 255.255.255.255:67, as the Pi does), spaced by gap
// (0: as fast as the socket takes them), and collects the answers until
// all came or wait has passed after the last send.
func sbDHCPBurst(p *lab.Peer, run, count int, gap, wait time.Duration) (*sbDHCPRun, error) {
	var conn net.PacketConn
	err := netnstest.Do(p.NS, func() (err error) {
		conn, err = nclient4.NewRawUDPConn(p.Iface, 68)
		return err
	})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	// The raw socket also sees our own DISCOVERs go out: room for all.
	if bc, ok := conn.(*nclient4.BroadcastRawUDPConn); ok {
		if sc, ok := bc.PacketConn.(syscall.Conn); ok {
			if rc, err := sc.SyscallConn(); err == nil {
				rc.Control(func(fd uintptr) {
					unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
				})
			}
		}
	}
	pkts := make([][]byte, count)
	for i := range count {
		d, err := client.PiDiscover(run, i)
		if err != nil {
			return nil, err
		}
		pkts[i] = d.ToBytes()
	}
	r := &sbDHCPRun{}
	sentAt := make([]time.Time, count)
	var mu sync.Mutex
	got := make([]bool, count)
	done := make(chan struct{})
	lastSent := make(chan time.Time, 1)
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		var stopAt time.Time
		for {
			if stopAt.IsZero() {
				select {
				case t := <-lastSent:
					stopAt = t.Add(wait)
				default:
				}
			}
			dl := time.Now().Add(200 * time.Millisecond)
			if !stopAt.IsZero() {
				if time.Now().After(stopAt) {
					return
				}
				if stopAt.Before(dl) {
					dl = stopAt
				}
			}
			conn.SetReadDeadline(dl)
			n, _, err := conn.ReadFrom(buf)
			now := time.Now()
			if err != nil {
				continue
			}
			m, err := dhcpv4.FromBytes(buf[:n])
			if err != nil || m.OpCode != dhcpv4.OpcodeBootReply {
				continue
			}
			x := m.TransactionID
			if x[0] != 0x5b || int(x[1]) != run {
				continue
			}
			i := int(x[2])<<8 | int(x[3])
			if i >= count {
				continue
			}
			mu.Lock()
			if got[i] {
				mu.Unlock()
				continue
			}
			got[i] = true
			ok := m.MessageType() == dhcpv4.MessageTypeOffer &&
				m.ClassIdentifier() == "PXEClient" &&
				strings.Contains(string(m.Options.Get(dhcpv4.OptionVendorSpecificInformation)), "Raspberry Pi Boot") &&
				m.ClientHWAddr.String() == net.HardwareAddr{0xdc, 0xa6, 0x32, byte(run), byte(i >> 8), byte(i)}.String() &&
				m.YourIPAddr.IsUnspecified()
			if ok {
				r.answered++
				r.lat = append(r.lat, now.Sub(sentAt[i]))
				r.total = now.Sub(sentAt[0])
			} else {
				r.bad++
				if r.firstBad == "" {
					r.firstBad = m.Summary()
				}
			}
			all := r.answered+r.bad == count
			mu.Unlock()
			if all {
				return
			}
		}
	}()
	bcast := &net.UDPAddr{IP: net.IPv4bcast, Port: 67}
	t0 := time.Now()
	for i := range count {
		if gap > 0 {
			if d := time.Until(t0.Add(time.Duration(i) * gap)); d > 0 {
				time.Sleep(d)
			}
		}
		mu.Lock()
		sentAt[i] = time.Now()
		mu.Unlock()
		if _, err := conn.WriteTo(pkts[i], bcast); err != nil {
			// ENOBUFS: the interface queue is full; try again shortly.
			time.Sleep(time.Millisecond)
			mu.Lock()
			sentAt[i] = time.Now()
			mu.Unlock()
			if _, err := conn.WriteTo(pkts[i], bcast); err != nil {
				return nil, fmt.Errorf("send DISCOVER %d: %w", i, err)
			}
		}
		r.sent++
	}
	r.sendDur = time.Since(t0)
	lastSent <- time.Now()
	<-done
	if bc, ok := conn.(*nclient4.BroadcastRawUDPConn); ok {
		if sc, ok := bc.PacketConn.(syscall.Conn); ok {
			if rc, err := sc.SyscallConn(); err == nil {
				rc.Control(func(fd uintptr) {
					if st, err := unix.GetsockoptTpacketStats(int(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
						r.drops = st.Drops
					}
				})
			}
		}
	}
	return r, nil
}

// BenchmarkProxyDHCP: 1,000 Pi 4 DISCOVERs (distinct MACs and serials)
// from one peer to a proxyDHCP server on br0, all at once and paced at
// 2,000/s; answers per second over the burst, latency from send to answer,
// answers counted (an answer is an OFFER with no address, option 60
// PXEClient and the "Raspberry Pi Boot" menu in option 43).
func BenchmarkProxyDHCP(b *testing.B) {
	lab.Skip(b)
	root, _ := cache.Image(b, "rpi4")
	lab.Need(b, "dnsmasq", "dnsmasq")
	l := newSBLab(b)
	client := l.peer("192.0.2.9")
	const count = 1000
	modes := []struct {
		key, name string
		gap       time.Duration
	}{
		{"burst", "all at once", 0},
		{"paced", "paced 2000/s", 500 * time.Microsecond},
	}
	servers := []sbServer{
		{"ramboot", "ramboot serve --dhcp proxy", func() *lab.Proc { return l.startRamboot(root, "proxy") }},
		{"dnsmasq", "dnsmasq 2.90 proxy + pxe-service", func() *lab.Proc { return l.startDnsmasqProxy() }},
	}
	const rounds = 3 // servers alternate; latencies pooled, counts and rates the median
	type result struct {
		runs    []*sbDHCPRun
		lat     []time.Duration
		cpu     []float64 // server CPU s per burst
		rcvErrs []int64   // UDP RcvbufErrors in the server's namespace per burst
		hwm     int64
	}
	results := map[string]*result{}
	for _, s := range servers {
		for _, m := range modes {
			results[s.key+"/"+m.key] = &result{}
		}
	}
	load0 := sbLoad()
	run := 0
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		for round := 0; round < rounds; round++ {
			for j := range servers {
				s := servers[(j+round)%len(servers)]
				p := s.start()
				for _, m := range modes {
					run++
					cpu0 := lab.TaskCPU(p.Pid())
					rcv0 := lab.UDPRcvbufErrors(l.NS)
					r, err := sbDHCPBurst(client, run%256, count, m.gap, 3*time.Second)
					if err != nil {
						b.Fatalf("%s, %s: %v", s.name, m.name, err)
					}
					if r.bad > 0 {
						b.Errorf("%s, %s: %d answers are not a Pi proxy offer; first:\n%s", s.name, m.name, r.bad, r.firstBad)
					}
					res := results[s.key+"/"+m.key]
					res.runs = append(res.runs, r)
					res.lat = append(res.lat, r.lat...)
					res.cpu = append(res.cpu, lab.TaskCPU(p.Pid())-cpu0)
					res.rcvErrs = append(res.rcvErrs, lab.UDPRcvbufErrors(l.NS)-rcv0)
				}
				hwm := lab.StatusKB(p.Pid(), "VmHWM")
				for _, m := range modes {
					res := results[s.key+"/"+m.key]
					res.hwm = max(res.hwm, hwm)
				}
				if err := p.Stop(); err != nil {
					b.Error(err)
				}
			}
		}
	}
	b.StopTimer()

	var out strings.Builder
	fmt.Fprintf(&out, "\nBenchmarkProxyDHCP: %d Pi 4 DISCOVERs from one peer (raw socket, 0.0.0.0:68 -> broadcast), %d rounds (servers alternate); answers within 3 s of the last send; load before %s, after %s (2 cores)\n", count, rounds, load0, sbLoad())
	fmt.Fprintf(&out, "  %-34s %-13s %-17s %9s %9s %9s %9s %10s %8s  %s\n", "server", "send", "answers (rounds)", "send s", "answers/s", "p50 ms", "p99 ms", "CPU ms", "VmHWM MB", "server socket drops (rounds)")
	type sum struct{ answered, rate, p50, p99, cpu float64 }
	sums := map[string]sum{}
	for _, m := range modes {
		for _, s := range servers {
			res := results[s.key+"/"+m.key]
			if len(res.runs) == 0 {
				continue
			}
			var ans, rates, sends []float64
			var each []string
			for _, r := range res.runs {
				ans = append(ans, float64(r.answered))
				each = append(each, fmt.Sprint(r.answered))
				rt := 0.0
				if r.total > 0 {
					rt = float64(r.answered) / r.total.Seconds()
				}
				rates = append(rates, rt)
				sends = append(sends, r.sendDur.Seconds())
			}
			sm := sum{sbMedian(ans), sbMedian(rates), float64(sbQuantile(res.lat, 0.5).Microseconds()) / 1000,
				float64(sbQuantile(res.lat, 0.99).Microseconds()) / 1000, sbMedian(res.cpu)}
			sums[s.key+"/"+m.key] = sm
			drops := uint32(0)
			for _, r := range res.runs {
				drops += r.drops
			}
			if drops > 0 {
				fmt.Fprintf(&out, "  (the client's own socket dropped %d packets in %s, %s: answers may be undercounted)\n", drops, s.name, m.name)
			}
			var rcv []string
			for _, e := range res.rcvErrs {
				rcv = append(rcv, fmt.Sprint(e))
			}
			fmt.Fprintf(&out, "  %-34s %-13s %-17s %9.3f %9.0f %9.2f %9.2f %10.1f %8.1f  %s\n", s.name, m.name,
				fmt.Sprintf("%.0f (%s)", sm.answered, strings.Join(each, ",")), sbMedian(sends), sm.rate, sm.p50, sm.p99, sm.cpu*1000, float64(res.hwm)/1024, strings.Join(rcv, ","))
			b.ReportMetric(sm.answered, fmt.Sprintf("%s-%s-answers", s.key, m.key))
			b.ReportMetric(sm.rate, fmt.Sprintf("%s-%s-answers/s", s.key, m.key))
			b.ReportMetric(sm.p50, fmt.Sprintf("%s-%s-p50-ms", s.key, m.key))
			b.ReportMetric(sm.p99, fmt.Sprintf("%s-%s-p99-ms", s.key, m.key))
		}
		rb, dm := sums["ramboot/"+m.key], sums["dnsmasq/"+m.key]
		line := fmt.Sprintf("  ramboot/dnsmasq, %s: answers %.2f", m.name, rb.answered/max(dm.answered, 1))
		if dm.rate > 0 {
			line += fmt.Sprintf(", answers/s %.2f", rb.rate/dm.rate)
			b.ReportMetric(rb.rate/dm.rate, "ratio-"+m.key+"-answers/s")
		}
		if dm.p50 > 0 {
			line += fmt.Sprintf(", p50 %.2f", rb.p50/dm.p50)
		}
		if dm.p99 > 0 {
			line += fmt.Sprintf(", p99 %.2f", rb.p99/dm.p99)
		}
		if dm.cpu > 0 {
			line += fmt.Sprintf(", CPU %.2f", rb.cpu/dm.cpu)
		}
		fmt.Fprintln(&out, line+" (latency, CPU: lower is better)")
	}
	fmt.Fprint(os.Stdout, out.String())
}
