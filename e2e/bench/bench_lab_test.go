package bench

// Servers for the benchmarks, in e2e/lab's lab. Same rules: every
// namespace is rbt-<pid>-<n> on 192.0.2.0/24 with no route out, every
// process is started here in its own process group, inside a namespace,
// and stopped by its pid (its group only if it ignores SIGTERM), and the
// namespaces are deleted when the benchmark ends.

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/ramboot/ramboot/e2e/cache"
	"github.com/ramboot/ramboot/e2e/lab"
)

// sbLab is e2e/lab's Lab, for a benchmark (no guest is booted).
type sbLab struct {
	*lab.Lab
	tb testing.TB
}

func newSBLab(tb testing.TB) *sbLab {
	tb.Helper()
	return &sbLab{Lab: lab.New(tb), tb: tb}
}

func (l *sbLab) peer(addr string) *lab.Peer { return l.Lab.Peer(l.tb, addr) }

// The servers, in the lab's own namespace on br0 (192.0.2.1).

// startRamboot runs `ramboot serve` on br0 with --dhcp mode (off, proxy)
// and any further flags.
func (l *sbLab) startRamboot(root, mode string, flags ...string) *lab.Proc {
	tb := l.tb
	tb.Helper()
	p := lab.StartIn(tb, l.NS, "ramboot-serve", cache.Ramboot(tb),
		append([]string{"serve", "--root", root, "--interface", "br0", "--dhcp", mode}, flags...)...)
	p.WaitFor(tb, `msg="http listening"`, 15*time.Second)
	p.MustBe(tb, "ramboot")
	return p
}

// startTftpdHPA runs tftpd-hpa on br0 (lab.TFTPDHPA).
func (l *sbLab) startTftpdHPA(root string) *lab.Proc { return l.Lab.TFTPDHPA(l.tb, root) }

// startDnsmasqTFTP runs dnsmasq as a TFTP server only (no DNS, no DHCP)
// on br0; tftpMax > 0 sets --tftp-max (dnsmasq's default is 50).
func (l *sbLab) startDnsmasqTFTP(root string, tftpMax int) *lab.Proc {
	tb := l.tb
	tb.Helper()
	lab.Need(tb, "dnsmasq", "dnsmasq")
	args := []string{"--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
		"--enable-tftp", "--tftp-root=" + root,
		"--interface=br0", "--bind-interfaces", "--except-interface=lo",
		"--log-facility=-", "--user=root", "--group=root",
		"--pid-file=" + filepath.Join(l.Dir, fmt.Sprintf("dnsmasq-tftp-%d.pid", tftpMax)),
	}
	if tftpMax > 0 {
		args = append(args, fmt.Sprintf("--tftp-max=%d", tftpMax))
	}
	p := lab.StartIn(tb, l.NS, "dnsmasq-tftp", "dnsmasq", args...)
	p.WaitFor(tb, `TFTP root is`, 15*time.Second)
	p.MustBe(tb, "dnsmasq")
	return p
}

// startDnsmasqProxy runs dnsmasq as the Raspberry Pi tutorial's proxyDHCP
// on br0: --dhcp-range=192.0.2.0,proxy --pxe-service=0,"Raspberry Pi
// Boot" (from a config file: dnsmasq strips the quotes only there). It
// logs each transaction, as ramboot serve does.
func (l *sbLab) startDnsmasqProxy() *lab.Proc {
	tb := l.tb
	tb.Helper()
	lab.Need(tb, "dnsmasq", "dnsmasq")
	cf := filepath.Join(l.Dir, "dnsmasq-proxy.conf")
	if err := os.WriteFile(cf, []byte("dhcp-range=192.0.2.0,proxy\npxe-service=0,\"Raspberry Pi Boot\"\n"), 0o644); err != nil {
		tb.Fatal(err)
	}
	p := lab.StartIn(tb, l.NS, "dnsmasq-proxy", "dnsmasq", "--keep-in-foreground",
		"--conf-file="+cf, "--port=0", "--interface=br0", "--bind-interfaces", "--except-interface=lo",
		"--dhcp-leasefile="+filepath.Join(l.Dir, "dnsmasq-proxy.leases"),
		"--log-facility=-", "--user=root", "--group=root",
		"--pid-file="+filepath.Join(l.Dir, "dnsmasq-proxy.pid"))
	p.WaitFor(tb, `DHCP, proxy on subnet`, 15*time.Second)
	p.MustBe(tb, "dnsmasq")
	return p
}

// sbCrowd is n clients at once: each runs boot(i) from the same instant
// (they wait at a gate). It returns the durations sorted, the errors
// (nil for a client that was done) and the time until the last was done.
func sbCrowd(n int, boot func(i int) error) (durs []time.Duration, errs []error, total time.Duration) {
	durs, errs = make([]time.Duration, n), make([]error, n)
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			t0 := time.Now()
			errs[i] = boot(i)
			durs[i] = time.Since(t0)
		}()
	}
	t0 := time.Now()
	close(gate)
	wg.Wait()
	total = time.Since(t0)
	sort.Slice(durs, func(i, j int) bool { return durs[i] < durs[j] })
	return durs, errs, total
}

// sbFailures counts the errors and keeps the first three.
func sbFailures(errs []error) (failed int, first []string) {
	for _, err := range errs {
		if err != nil {
			failed++
			if len(first) < 3 {
				first = append(first, err.Error())
			}
		}
	}
	return failed, first
}
