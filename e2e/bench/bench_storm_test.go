package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/ramboot/ramboot/e2e/cache"
	"github.com/ramboot/ramboot/e2e/client"
	"github.com/ramboot/ramboot/e2e/lab"
)

// BenchmarkStorm (issue 20): a rack boots at once. N simulated Raspberry
// Pi 4s, each its own namespace, MAC, serial and address on the lab's
// network, each doing what a Pi 4 and ramboot's init do, in order: the
// Pi's DISCOVER (its options, option 97 with its own serial) answered by
// a proxyDHCP offer with the Pi boot menu; the bootloader's TFTP fetches
// (the size probe of start4.elf with tsize and early terminate, then the
// board profile's fetch list under its serial, blksize 1024, lock-step,
// each file's SHA-256 checked); then the RAM root image over HTTP, its
// SHA-256 checked, into memory. The server's side of the link (br0's
// egress) is shaped to 1 Gbit/s with tc, so that wire time, the bytes
// moved over 125 MB/s, is the bound. The same storm runs against the
// stack people build by hand: one dnsmasq (proxyDHCP and TFTP, a
// directory per serial, --tftp-max 1000) and nginx serving the image.
// It prints a row per N and server: nodes done, failed, per-node p50,
// p99 and max, all done ÷ wire time, the server's CPU seconds and peak
// RSS.
//
// STORM_N sets the sizes (default 100,250; `make storm N=...`),
// STORM_IMAGE_MB the root image (default 32 MB: 250 nodes move 8 GB of
// it, 64 s of wire).
func BenchmarkStorm(b *testing.B) {
	lab.Skip(b)
	lab.Need(b, "dnsmasq", "dnsmasq")
	lab.Need(b, "nginx", "nginx-light")
	lab.Need(b, "tc", "iproute2")
	sizes := []int{100, 250}
	if s := os.Getenv("STORM_N"); s != "" {
		sizes = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 || n > 250 {
				b.Fatalf("STORM_N=%q: want sizes from 1 to 250, comma-separated (one /24 of nodes)", s)
			}
			sizes = append(sizes, n)
		}
	}
	imgMB := 32
	if s := os.Getenv("STORM_IMAGE_MB"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1024 {
			b.Fatalf("STORM_IMAGE_MB=%q: want 1 to 1024", s)
		}
		imgMB = n
	}
	most := 0
	for _, n := range sizes {
		most = max(most, n)
	}

	src, _ := cache.Image(b, "rpi4")
	files := client.PiFetched(b, "rpi4")
	l := newSBLab(b)
	// The trees: ramboot's, and the peer stack's with a directory per
	// Pi serial (a link to the root, as the Pi netboot guides' TFTP trees
	// have), both with the image.
	rbTree, peerTree := lab.CopyTree(b, src), lab.CopyTree(b, src)
	img := make([]byte, imgMB<<20)
	rng := rand.New(rand.NewPCG(20, 1))
	for i := 0; i+8 <= len(img); i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			img[i+j] = byte(v >> (8 * j))
		}
	}
	imgSum := sha256.Sum256(img)
	for _, d := range []string{rbTree, peerTree} {
		lab.WriteFile(b, filepath.Join(d, "images", "storm.img"), string(img))
	}
	img = nil
	type want struct {
		name string
		size int64
		sum  [32]byte
	}
	var fetch []want
	var tftpBytes int64
	for _, f := range append([]string{"start4.elf"}, files...) {
		data, err := os.ReadFile(filepath.Join(rbTree, f))
		if err != nil {
			b.Fatal(err)
		}
		fetch = append(fetch, want{f, int64(len(data)), sha256.Sum256(data)})
	}
	probe, fetch := fetch[0], fetch[1:] // the probe ends after its first block
	for _, f := range fetch {
		tftpBytes += f.size
	}
	perNode := tftpBytes + int64(imgMB<<20)

	// The nodes: their namespaces, MACs, serials and addresses.
	type node struct {
		peer   *lab.Peer
		dhcp   *nclient4.Client
		mac    net.HardwareAddr
		serial string
		mods   []dhcpv4.Modifier
	}
	t0 := time.Now()
	nodes := make([]*node, most)
	for i := range nodes {
		mac := fmt.Sprintf("dc:a6:32:00:%02x:%02x", i>>8, i&0xff)
		addr := fmt.Sprintf("192.0.2.%d", 3+i)
		p, c := client.DHCPPeer(b, l.Lab, addr, mac)
		lab.Run(b, "ip", "-n", p.NS, "addr", "add", addr+"/24", "dev", p.Iface)
		serial := fmt.Sprintf("9ffe%04x", i)
		hw, _ := net.ParseMAC(mac)
		opt97, _ := hex.DecodeString("0052506934003111c0" + hex.EncodeToString(hw[2:]) + serial)
		mods := append(client.PiDHCPMods(b), dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, opt97))
		nodes[i] = &node{peer: p, dhcp: c, mac: hw, serial: serial, mods: mods}
		if err := os.Symlink(".", filepath.Join(peerTree, serial)); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("%d nodes' namespaces in %.1fs", most, time.Since(t0).Seconds())
	// The wire: br0's egress (everything the servers send) at 1 Gbit/s.
	lab.Run(b, "ip", "netns", "exec", l.NS, "tc", "qdisc", "replace", "dev", "br0", "root", "tbf", "rate", "1gbit", "burst", "1mb", "latency", "100ms")
	const rate = 125e6 // bytes per second

	opt43, _ := hex.DecodeString(client.DnsmasqPiOpt43)
	server := net.ParseIP(lab.Addr)
	// boot is one node's boot; it returns how many times it tried again.
	boot := func(n *node, deadline time.Time) (retries int, err error) {
		// The Pi's DHCP: DISCOVER until the proxy offer with the boot
		// menu (the EEPROM sends again after a timeout).
		disc, err := dhcpv4.NewDiscovery(n.mac, n.mods...)
		if err != nil {
			return 0, err
		}
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			offer, err := n.dhcp.SendAndRead(ctx, nclient4.DefaultServers, disc, func(p *dhcpv4.DHCPv4) bool {
				return p.MessageType() == dhcpv4.MessageTypeOffer && p.ServerIdentifier().Equal(server)
			})
			cancel()
			if err == nil {
				if got := offer.Options.Get(dhcpv4.OptionVendorSpecificInformation); string(got) != string(opt43) {
					return retries, fmt.Errorf("offer option 43 %x, want the Pi boot menu", got)
				}
				break
			}
			if time.Now().After(deadline) {
				return retries, fmt.Errorf("no offer: %v", err)
			}
			retries++
		}
		// The bootloader's TFTP.
		c := client.TFTP{NS: n.peer.NS, Server: lab.Addr + ":69", Blksize: 1024, Tsize: true, Discard: true, RTO: time.Second, Tries: 10, Deadline: deadline}
		pc := c
		pc.EarlyTerminate = true
		get := func(c client.TFTP, name string) (client.Result, error) {
			for {
				r, err := c.Get(name)
				retries += r.Retrans
				if err == nil && r.ErrCode == 0 && strings.HasPrefix(r.ErrMsg, "server busy") && time.Now().Before(deadline) {
					retries++
					time.Sleep(500 * time.Millisecond)
					continue
				}
				return r, err
			}
		}
		if r, err := get(pc, n.serial+"/"+probe.name); err != nil || r.Tsize() != probe.size {
			return retries, fmt.Errorf("size probe: %v, ERROR %d %q, tsize %d", err, r.ErrCode, r.ErrMsg, r.Tsize())
		}
		for _, f := range fetch {
			r, err := get(c, n.serial+"/"+f.name)
			if err != nil || r.ErrCode != -1 || r.Bytes != f.size || r.Sum != f.sum {
				return retries, fmt.Errorf("tftp %s: %v, ERROR %d %q, %d bytes of %d", f.name, err, r.ErrCode, r.ErrMsg, r.Bytes, f.size)
			}
		}
		// The init's RAM root: the image over HTTP, its digest checked, tried
		// again after a failure with a growing pause.
		hc, done := lab.Client(n.peer.NS)
		defer done()
		// A share of the link may be slow: the deadline is the node's,
		// not lab.Client's 10 s a request.
		hc.Timeout = time.Until(deadline)
		for try := 0; ; try++ {
			err = func() error {
				resp, err := hc.Get("http://" + lab.Addr + ":8080/images/storm.img")
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				if resp.StatusCode != 200 {
					return fmt.Errorf("GET: %s", resp.Status)
				}
				h := sha256.New()
				if _, err := io.Copy(h, resp.Body); err != nil {
					return err
				}
				if [32]byte(h.Sum(nil)) != imgSum {
					return fmt.Errorf("image digest mismatch")
				}
				return nil
			}()
			if err == nil || try == 4 || time.Now().After(deadline) {
				return retries, err
			}
			retries++
			time.Sleep(time.Duration(500<<try)*time.Millisecond + time.Duration(rand.IntN(500))*time.Millisecond)
		}
	}

	type row struct {
		server               string
		n, done, failed      int
		retries              int
		p50, p99, max, total time.Duration
		cpu                  float64
		rssMB                float64
		errs                 []string
	}
	storm := func(server string, n int, pgids []int) row {
		samplers := make([]*lab.GroupSampler, len(pgids))
		for i, pg := range pgids {
			samplers[i] = lab.SampleGroup(pg, 200*time.Millisecond)
		}
		tries := make([]int, n)
		deadline := time.Now().Add(10 * time.Minute)
		durs, errs, total := sbCrowd(n, func(i int) (err error) {
			tries[i], err = boot(nodes[i], deadline)
			return err
		})
		r := row{server: server, n: n, total: total}
		for _, s := range samplers {
			s.Stop()
			r.cpu += s.CPU()
			r.rssMB += float64(s.PeakRSS) / 1024
		}
		r.failed, r.errs = sbFailures(errs)
		r.done = n - r.failed
		for _, k := range tries {
			r.retries += k
		}
		r.p50, r.p99, r.max = sbQuantile(durs, 0.5), sbQuantile(durs, 0.99), durs[n-1]
		return r
	}

	var rows []row
	b.ResetTimer()
	for range b.N {
		rows = rows[:0]
		for _, n := range sizes {
			// Its defaults: each node is a host of its own.
			srv := l.startRamboot(rbTree, "proxy")
			rows = append(rows, storm("ramboot serve", n, []int{srv.Pid()}))
			srv.Stop()
			dm, ng := startStormPeers(b, l, peerTree)
			rows = append(rows, storm("dnsmasq + nginx", n, []int{dm.Pid(), ng.Pid()}))
			ng.Stop()
			dm.Stop()
		}
	}
	b.StopTimer()
	var out strings.Builder
	fmt.Fprintf(&out, "\nBoot storm (%s): each Pi 4 node moves %.1f MB (TFTP %d files %.1f MB, root image %d MB); br0's egress shaped to 1 Gbit/s\n",
		sbLoad(), float64(perNode)/1e6, len(fetch)+1, float64(tftpBytes)/1e6, imgMB)
	fmt.Fprintln(&out, "| N | server | done | failed | tries again | per node p50 s | p99 s | max s | all done s | wire s | ÷ wire | server CPU s | peak RSS MB |")
	fmt.Fprintln(&out, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		wire := float64(int64(r.n)*perNode) / rate
		fmt.Fprintf(&out, "| %d | %s | %d | %d | %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.2f | %.1f | %.1f |\n",
			r.n, r.server, r.done, r.failed, r.retries, r.p50.Seconds(), r.p99.Seconds(), r.max.Seconds(), r.total.Seconds(), wire, r.total.Seconds()/wire, r.cpu, r.rssMB)
		for _, e := range r.errs {
			fmt.Fprintf(&out, "|   | %s failure: %s |\n", r.server, e)
		}
	}
	for i := 0; i+1 < len(rows); i += 2 {
		fmt.Fprintf(&out, "N=%d: ramboot ÷ dnsmasq+nginx, all done: %.2f; CPU: %.2f\n", rows[i].n,
			rows[i].total.Seconds()/rows[i+1].total.Seconds(), rows[i].cpu/max(rows[i+1].cpu, 0.001))
	}
	fmt.Print(out.String())
	for _, r := range rows {
		b.ReportMetric(r.total.Seconds(), fmt.Sprintf("%s-N%d-all-done-s", strings.ReplaceAll(strings.ReplaceAll(r.server, " ", ""), "+", "-"), r.n))
	}
}

// startStormPeers starts the hand-built stack on br0: dnsmasq as the Pi
// guides set it up (proxyDHCP with the Pi boot menu, and TFTP) and nginx
// serving the tree over HTTP on port 8080.
func startStormPeers(tb testing.TB, l *sbLab, root string) (dnsmasq, nginx *lab.Proc) {
	tb.Helper()
	cf := filepath.Join(l.Dir, "dnsmasq-storm.conf")
	lab.WriteFile(tb, cf, "dhcp-range=192.0.2.0,proxy\npxe-service=0,\"Raspberry Pi Boot\"\nenable-tftp\ntftp-root="+root+"\ntftp-max=1000\n")
	dnsmasq = lab.StartIn(tb, l.NS, "dnsmasq-storm", "dnsmasq", "--keep-in-foreground",
		"--conf-file="+cf, "--port=0", "--interface=br0", "--bind-interfaces", "--except-interface=lo",
		"--dhcp-leasefile="+filepath.Join(l.Dir, "dnsmasq-storm.leases"),
		"--log-facility=/dev/null", "--user=root", "--group=root",
		"--pid-file="+filepath.Join(l.Dir, "dnsmasq-storm.pid"))
	time.Sleep(500 * time.Millisecond)
	dnsmasq.MustBe(tb, "dnsmasq")
	nc := filepath.Join(l.Dir, "nginx-storm.conf")
	lab.WriteFile(tb, nc, `daemon off;
user root;
worker_processes auto;
pid `+filepath.Join(l.Dir, "nginx-storm.pid")+`;
error_log stderr warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 10;
  types { application/octet-stream img; }
  server {
    listen `+lab.Addr+`:8080;
    root `+root+`;
  }
}
`)
	nginx = lab.StartIn(tb, l.NS, "nginx", lab.Sbin(tb, "nginx", "nginx-light"), "-c", nc, "-e", "stderr")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := lab.Get(l.NS, "http://"+lab.Addr+":8080/config.txt"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("nginx does not answer on %s:8080", lab.Addr)
		}
	}
	return dnsmasq, nginx
}
