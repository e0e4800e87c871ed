package hostile

// Issue 18, point 3: `ramboot serve`'s HTTP holds under slow and hostile
// clients. In the lab (network namespaces on 192.0.2.0/24), one host opens
// 1,200 connections, each asking for a large root image or for
// /status.json of a full status board, and reads nothing; meanwhile a
// real node (its own address, from serve's full DHCP) fetches its iPXE
// script, its kernel and initramfs and its root image, byte-exact, and
// posts its reports. Checked: the node is served in time (its run under
// the load against its run on an idle server), the attacker holds at most
// --http-max-conns-per-client connections and the rest are refused
// (counted on /metrics, logged), the held ones are closed once
// --http-stall-timeout passes without progress, and serve's peak memory
// (VmHWM) stays bounded.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/ramboot/ramboot/e2e/client"
	"github.com/ramboot/ramboot/e2e/lab"
	"github.com/ramboot/ramboot/internal/netnstest"
)

const (
	scNodeMAC  = "52:54:00:5c:00:01"
	scNodeAddr = "192.0.2.60"
	scAtkAddr  = "192.0.2.20"
	scConns    = 1200             // the attacker's connections
	scPerConn  = 32               // --http-max-conns-per-client (its default)
	scStall    = 10 * time.Second // --http-stall-timeout for the test
	scImage    = 32 << 20         // the node's root image
	// scMaxMB bounds serve's peak RSS (VmHWM). Measured (2 cores,
	// Debian 12, Go 1.26): see the row the test logs.
	scMaxMB = 64
)

// scTree writes a one-board tree (an arm64 board, as `make image
// BOARD=rpi4` writes it, with made-up contents) and returns its
// directory and the SHA-256 of each file the node fetches.
func scTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	r := rand.New(rand.NewChaCha8([32]byte{18, 3}))
	sums := map[string]string{}
	write := func(name string, size int) {
		b := make([]byte, size)
		for i := 0; i+8 <= len(b); i += 8 {
			v := r.Uint64()
			for j := range 8 {
				b[i+j] = byte(v >> (8 * j))
			}
		}
		lab.WriteFile(t, filepath.Join(dir, name), string(b))
		s := sha256.Sum256(b)
		sums[name] = hex.EncodeToString(s[:])
	}
	lab.WriteFile(t, filepath.Join(dir, "manifest.json"), `{"board":"rpi4","arch":"arm64","kernel_file":"Image"}`)
	lab.WriteFile(t, filepath.Join(dir, "cmdline.txt"), "console=ttyAMA0\n")
	write("Image", 8<<20)
	write("rootfs.cpio.gz", 4<<20)
	write("images/root.img", scImage)
	// The attacker's: 1 GB, sparse.
	f, err := os.Create(filepath.Join(dir, "images", "big.img"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return sums
}

// scClient is an HTTP client whose connections are made in namespace ns.
func scClient(ns string) *http.Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := netnstest.Do(ns, func() (err error) {
				c, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
		MaxConnsPerHost:     8,
		MaxIdleConnsPerHost: 8,
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// scNode is the real node: its namespace, its DHCP client, its HTTP client.
type scNode struct {
	peer *lab.Peer
	dhcp *nclient4.Client
	http *http.Client
	sums map[string]string
}

// scRun is one run of the node: DHCP, then what iPXE and ramboot's init
// fetch, then its reports.
type scRun struct {
	dhcp, script, boot, image, reports, total time.Duration
	bytes                                     int64
	err                                       error
}

func (r scRun) String() string {
	if r.err != nil {
		return "NO: " + r.err.Error()
	}
	return fmt.Sprintf("%.2fs (DHCP %.2fs, script %.3fs, kernel+initramfs %.2fs, image %.2fs, 3 reports %.3fs; %.0f MB byte-exact)",
		r.total.Seconds(), r.dhcp.Seconds(), r.script.Seconds(), r.boot.Seconds(), r.image.Seconds(), r.reports.Seconds(), float64(r.bytes)/1e6)
}

// run boots the node once. It may run in a goroutine: it reports, never
// fails the test itself.
func (n *scNode) run(budget time.Duration) (r scRun) {
	t0 := time.Now()
	defer func() { r.total = time.Since(t0) }()
	step := func(d *time.Duration, f func() error) {
		if r.err != nil {
			return
		}
		s := time.Now()
		r.err = f()
		*d = time.Since(s)
		if r.err == nil && time.Since(t0) > budget {
			r.err = fmt.Errorf("over its budget of %v", budget)
		}
	}
	base := "http://" + lab.Addr + ":8080"
	get := func(path, sum string) error {
		resp, err := n.http.Get(base + path)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		h := sha256.New()
		c, err := io.Copy(h, resp.Body)
		r.bytes += c
		if err != nil {
			return fmt.Errorf("GET %s: %d bytes, then %w", path, c, err)
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", path, resp.Status)
		}
		if got := hex.EncodeToString(h.Sum(nil)); sum != "" && got != sum {
			return fmt.Errorf("GET %s: %d bytes, sha256 %.12s, want %.12s", path, c, got, sum)
		}
		return nil
	}
	post := func(stage, detail string) error {
		body := fmt.Sprintf(`{"mac":%q,"stage":%q,"detail":%q}`, scNodeMAC, stage, detail)
		resp, err := n.http.Post(base+"/report", "application/json", strings.NewReader(body))
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			return fmt.Errorf("POST /report %s: %s", stage, resp.Status)
		}
		return nil
	}
	step(&r.dhcp, func() error { return n.lease(t0.Add(budget)) })
	step(&r.script, func() error {
		resp, err := n.http.Get(base + "/boot/" + strings.ReplaceAll(scNodeMAC, ":", "-") + ".ipxe?arch=arm64")
		if err != nil {
			return err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte("kernel "+base+"/Image ")) {
			return fmt.Errorf("iPXE script: %s %v:\n%s", resp.Status, err, b)
		}
		return nil
	})
	step(&r.boot, func() error {
		if err := get("/Image", n.sums["Image"]); err != nil {
			return err
		}
		return get("/rootfs.cpio.gz", n.sums["rootfs.cpio.gz"])
	})
	step(&r.reports, func() error { return post("network-up", "eth0 "+scNodeAddr) })
	var rep time.Duration
	step(&r.image, func() error {
		if err := post("download", "images/root.img"); err != nil {
			return err
		}
		return get("/images/root.img", n.sums["images/root.img"])
	})
	step(&rep, func() error { return post("downloaded", "images/root.img") })
	r.reports += rep
	return r
}

// lease runs the init's DHCP (vendor class "ramboot") with serve and
// checks it grants the inventory's address, which the node's interface
// has already.
func (n *scNode) lease(deadline time.Time) error {
	mac, _ := net.ParseMAC(scNodeMAC)
	mods := []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClassIdentifier("ramboot"))}
	exchange := func(m *dhcpv4.DHCPv4, want dhcpv4.MessageType) (*dhcpv4.DHCPv4, error) {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			p, err := n.dhcp.SendAndRead(ctx, nclient4.DefaultServers, m, func(p *dhcpv4.DHCPv4) bool {
				return p.MessageType() == want && p.ServerIdentifier().Equal(net.ParseIP(lab.Addr))
			})
			cancel()
			if err == nil {
				return p, nil
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("no %s from serve: %v", want, err)
			}
		}
	}
	disc, err := dhcpv4.NewDiscovery(mac, mods...)
	if err != nil {
		return err
	}
	offer, err := exchange(disc, dhcpv4.MessageTypeOffer)
	if err != nil {
		return err
	}
	req, err := dhcpv4.NewRequestFromOffer(offer, mods...)
	if err != nil {
		return err
	}
	ack, err := exchange(req, dhcpv4.MessageTypeAck)
	if err != nil {
		return err
	}
	if !ack.YourIPAddr.Equal(net.ParseIP(scNodeAddr)) {
		return fmt.Errorf("ACK for %v, want the inventory's %s", ack.YourIPAddr, scNodeAddr)
	}
	return nil
}

// scMetric scrapes serve's /metrics from the lab host (another client
// address than the attacker's) and returns the named sample, or -1.
func scMetric(t *testing.T, l *lab.Lab, name string) float64 {
	t.Helper()
	v, ok, err := l.Metric("http://"+lab.Addr+":8080", name)
	if err != nil {
		t.Logf("%v", err)
		return -1
	}
	if !ok {
		t.Fatalf("/metrics has no %s", name)
	}
	return v
}

// scWait polls f every 200 ms until it is true or timeout passes.
func scWait(timeout time.Duration, f func() bool) bool {
	for deadline := time.Now().Add(timeout); ; time.Sleep(200 * time.Millisecond) {
		if f() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// scFillBoard fills the status board from the attacker's host: iPXE
// scripts for made-up MACs, each a node with steps, so that /status.json
// is large (DefaultMaxOthers nodes).
func scFillBoard(t *testing.T, atk *lab.Peer) {
	t.Helper()
	c := scClient(atk.NS)
	defer c.Transport.(*http.Transport).CloseIdleConnections()
	const nodes, steps, workers = 1024, 8, 8
	urls := make([]string, 0, nodes*steps)
	for i := range nodes * steps {
		urls = append(urls, fmt.Sprintf("http://%s:8080/boot/02-5c-00-00-%02x-%02x.ipxe", lab.Addr, (i%nodes)>>8, (i%nodes)&0xff))
	}
	if err := lab.GetAll(c, urls, workers); err != nil {
		t.Fatalf("filling the status board: %v", err)
	}
}

// scHostile is the attacker's connection and what it asked for.
type scHostile struct {
	c    net.Conn
	path string
}

// scAttack opens n connections from the attacker's namespace, each
// asking for a path of paths in turn, and reads nothing.
func scAttack(atk *lab.Peer, n int, paths []string) ([]scHostile, error) {
	var hs []scHostile
	err := netnstest.Do(atk.NS, func() error {
		d := net.Dialer{Timeout: 5 * time.Second}
		for i := range n {
			c, err := d.Dial("tcp4", lab.Addr+":8080")
			if err != nil {
				return fmt.Errorf("connection %d: %w", i, err)
			}
			p := paths[i%len(paths)]
			// A refused connection may be closed already: no error here.
			fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s:8080\r\nUser-Agent: slowloris\r\n\r\n", p, lab.Addr)
			hs = append(hs, scHostile{c, p})
		}
		return nil
	})
	return hs, err
}

// scOutcome reads what one attacker connection got: "refused" (serve's
// 503, or closed with nothing), "closed" (200 and part of the answer,
// then closed), "open" (the server still holds it).
func scOutcome(h scHostile) (string, string) {
	h.c.SetReadDeadline(time.Now().Add(time.Second))
	br := bufio.NewReader(h.c)
	status, err := br.ReadString('\n')
	if err != nil && status == "" {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return "open", "no answer"
		}
		return "refused", "closed without an answer: " + err.Error()
	}
	if strings.HasPrefix(status, "HTTP/1.1 503") {
		return "refused", "503"
	}
	n, err := io.Copy(io.Discard, br)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return "open", fmt.Sprintf("%s, then %d bytes and no end", strings.TrimSpace(status), n)
	}
	return "closed", fmt.Sprintf("%s, then %d bytes and %v", strings.TrimSpace(status), n, err)
}

func TestSlowClients(t *testing.T) {
	t0 := time.Now()
	l := lab.New(t)
	tree := filepath.Join(l.Dir, "tree")
	sums := scTree(t, tree)
	nodesYAML := filepath.Join(l.Dir, "nodes.yaml")
	lab.WriteFile(t, nodesYAML, fmt.Sprintf("nodes:\n  - mac: %s\n    hostname: slow-1\n    address: %s\n", scNodeMAC, scNodeAddr))
	srv := l.Serve(t, tree, "--dhcp", "full", "--range", hsRange, "--nodes", nodesYAML,
		"--http-stall-timeout", scStall.String())
	pid := srv.ServerPid(t, "ramboot")
	startMB := float64(lab.StatusKB(pid, "VmHWM")) / 1024

	p, dc := client.DHCPPeer(t, l, "192.0.2.251", scNodeMAC)
	lab.Run(t, "ip", "-n", p.NS, "addr", "add", scNodeAddr+"/24", "dev", p.Iface)
	node := &scNode{peer: p, dhcp: dc, http: scClient(p.NS), sums: sums}
	atk := l.Peer(t, scAtkAddr)

	// The board full, as a hostile host can make it.
	scFillBoard(t, atk)
	js, err := lab.Get(l.NS, "http://"+lab.Addr+":8080/status.json")
	if err != nil {
		t.Fatalf("GET /status.json: %v", err)
	}
	t.Logf("/status.json: %d bytes", len(js))
	if len(js) < 512<<10 {
		t.Fatalf("/status.json is %d bytes: too small to fill the sockets' buffers", len(js))
	}
	// The filler's connections are given back.
	if !scWait(10*time.Second, func() bool { return scMetric(t, l, "ramboot_http_connections") == 1 }) {
		t.Fatalf("ramboot_http_connections %v once the board is filled, want 1 (the scrape's own)", scMetric(t, l, "ramboot_http_connections"))
	}

	// The node against an idle server.
	idle := node.run(20 * time.Second)
	t.Logf("node, idle server: %s", idle)
	if idle.err != nil {
		t.Fatalf("the node is not served by an idle server: %v\n%s", idle.err, lastLines(srv.Output(), 30))
	}
	node.http.Transport.(*http.Transport).CloseIdleConnections()

	// The attack, and the node again while it is on.
	s := lab.Sample(pid)
	beforeMB := float64(s.StartHWM) / 1024
	logFrom := len(lab.Log(srv))
	ta := time.Now()
	hs, err := scAttack(atk, scConns, []string{"/images/big.img", "/status.json"})
	defer func() {
		for _, h := range hs {
			h.c.Close()
		}
	}()
	if err != nil {
		t.Fatalf("attacker: %v", err)
	}
	dialed := time.Since(ta)
	// What serve holds: the attacker's places and no more, the rest
	// refused.
	refused := -1.0
	scWait(10*time.Second, func() bool {
		refused = scMetric(t, l, "ramboot_http_connections_refused_total")
		return refused == scConns-scPerConn
	})
	// The gauge read once can count the last poll's own connection still
	// open on serve's side (seen under load): read until it settles.
	open := -1.0
	scWait(5*time.Second, func() bool {
		open = scMetric(t, l, "ramboot_http_connections")
		return open == scPerConn+1
	})
	loaded := node.run(20 * time.Second)
	node.http.Transport.(*http.Transport).CloseIdleConnections()
	t.Logf("node, %d hostile connections open: %s", scConns, loaded)
	if since := time.Since(ta); since > scStall {
		t.Errorf("the node's run under the load ended %v after the attack began, past --http-stall-timeout %v: it did not run under the whole load", since, scStall)
	}
	// The held ones end once the stall timeout has passed.
	stalled := -1.0
	scWait(scStall+20*time.Second, func() bool {
		stalled = scMetric(t, l, "ramboot_http_stalled_total")
		return stalled >= scPerConn
	})
	tStalled := time.Since(ta)
	// The gauge follows the counter: a stalled connection is counted
	// before it is closed, and the last poll's own connection may not be
	// closed on serve's side yet.
	openAfter := -1.0
	scWait(5*time.Second, func() bool {
		openAfter = scMetric(t, l, "ramboot_http_connections")
		return openAfter == 1
	})
	s.Stop()
	outcomes := map[string]int{}
	var examples []string
	got503 := 0
	for i, h := range hs {
		o, why := scOutcome(h)
		outcomes[o]++
		if why == "503" {
			got503++
		}
		if i < 2 || o == "open" && len(examples) < 8 {
			examples = append(examples, fmt.Sprintf("#%d %s: %s (%s)", i, h.path, o, why))
		}
	}
	lines := lab.Log(srv)[logFrom:]
	refusedLogged := countLog(srv, logFrom, func(e lab.LogLine) bool {
		return strings.Contains(e.Msg(), "over --http-max-conns-per-client") && strings.HasPrefix(e.Str("remote"), scAtkAddr+":")
	})
	stalledLogged := countLog(srv, logFrom, func(e lab.LogLine) bool {
		return strings.Contains(e.Msg(), "client stopped reading") && strings.HasPrefix(e.Str("remote"), scAtkAddr+":")
	})
	t.Logf("attacker: %d connections dialed in %.1fs; serve: %v refused (metric), %v open before the node ran (metric, with the scrape's own), %v closed as stalled within %.0fs, %v open after; client side: %v (%d of the refused read serve's 503 before the close); %s",
		scConns, dialed.Seconds(), refused, open, stalled, tStalled.Seconds(), openAfter, outcomes, got503, strings.Join(examples, "; "))
	t.Logf("row: | %d non-reading connections, one host (%s) | %v held, %v refused | %v closed after --http-stall-timeout %v | node idle %.2fs | node under load %.2fs | peak RSS %.1f MB (%.1f at start, %.1f before the attack, board full), threads %d, fds %d | %d log lines | %.0fs |",
		scConns, "images/big.img and /status.json", scConns-int(refused), refused, stalled, scStall, idle.total.Seconds(), loaded.total.Seconds(),
		s.MB(), startMB, beforeMB, s.PeakThreads, s.PeakFDs, len(lines), time.Since(t0).Seconds())

	select {
	case <-srv.Done():
		t.Fatalf("ramboot serve exited: %v\n%s", srv.Err(), lastLines(srv.Output(), 30))
	default:
	}
	if loaded.err != nil {
		t.Errorf("the node was not served while %d hostile connections were open: %v", scConns, loaded.err)
	} else if limit := 3*idle.total + 3*time.Second; loaded.total > limit {
		t.Errorf("the node took %v under the load, %v idle: bound %v", loaded.total, idle.total, limit)
	}
	if refused != scConns-scPerConn {
		t.Errorf("ramboot_http_connections_refused_total %v, want %d (%d connections, %d per client)", refused, scConns-scPerConn, scConns, scPerConn)
	}
	if open != scPerConn+1 {
		t.Errorf("ramboot_http_connections %v while the attacker's were open, want %d (its %d and the scrape's own)", open, scPerConn+1, scPerConn)
	}
	if stalled != scPerConn {
		t.Errorf("ramboot_http_stalled_total %v, want %d: every held connection closed after --http-stall-timeout %v", stalled, scPerConn, scStall)
	}
	if openAfter != 1 {
		t.Errorf("ramboot_http_connections %v after the stall timeout, want 1 (the scrape's own)", openAfter)
	}
	if outcomes["refused"] != scConns-scPerConn || outcomes["closed"] != scPerConn || outcomes["open"] != 0 {
		t.Errorf("the attacker's connections: %v, want %d refused, %d closed (after part of their answer), none open", outcomes, scConns-scPerConn, scPerConn)
	}
	if refusedLogged != 1 {
		t.Errorf("%d log lines of the refusals, want 1 (once per client a minute)", refusedLogged)
	}
	if stalledLogged != 1 {
		t.Errorf("%d log lines of the stalls, want 1 (once per client a minute)", stalledLogged)
	}
	if s.MB() > scMaxMB {
		t.Errorf("serve's peak RSS %.1f MB, bound %d MB", s.MB(), scMaxMB)
	}
	// The node's reports are on its record.
	var got []string
	for _, n := range lab.Status(t, node.peer) {
		if n.MAC == scNodeMAC {
			for _, st := range n.Steps {
				got = append(got, st.Stage)
			}
		}
	}
	for _, want := range []string{"network-up", "download", "downloaded"} {
		if !slices.Contains(got, want) {
			t.Errorf("the node's steps on the board: %q, want its report %q among them", got, want)
		}
	}
	if d := time.Since(t0); d > 3*time.Minute {
		t.Errorf("took %v, bound 3m", d.Round(time.Second))
	}
}
