//go:build linux

package initd

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ramboot/ramboot/internal/report"
)

// The init's reports reach a receiver that reads them as `ramboot
// serve`'s endpoint does (internal/report: a JSON report.Report POSTed to
// report.Path, at most report.MaxBody, keyed by Check), for the node's
// MAC, in the order they were made; reports made before the network was
// up wait for it. The server's side of the same contract (who may
// report, the status board) is tested in server/report_test.go.
func TestReportsReachServer(t *testing.T) {
	const mac = "52:54:00:12:34:56"
	var mu sync.Mutex
	var got []string
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, report.MaxBody+1))
		if r.Method != http.MethodPost || r.URL.Path != report.Path || err != nil || len(body) > report.MaxBody {
			http.Error(w, "want a POST to "+report.Path+" of at most MaxBody bytes", http.StatusBadRequest)
			return
		}
		var rep report.Report
		if err := json.Unmarshal(body, &rep); err != nil {
			http.Error(w, "malformed report: "+err.Error(), http.StatusBadRequest)
			return
		}
		key, err := rep.Check()
		if err != nil {
			http.Error(w, "bad report: "+err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		got = append(got, key+" "+rep.Stage)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer hs.Close()

	var r reporter
	r.send(report.Report{Stage: report.Action, Detail: "shell"}) // before the network
	hw, _ := net.ParseMAC(mac)
	r.start(hs.URL+report.Path, hw.String(), "ramboot-init/test (mac="+mac+")", t.Logf)
	r.send(report.Report{Stage: report.Download, Bytes: 10, Total: 100})
	r.send(report.Report{Stage: report.SwitchRoot, Detail: "/newroot, exec /sbin/init"})
	if !r.flush(5 * time.Second) {
		t.Fatal("flush: the reports did not go out")
	}
	mu.Lock()
	want := []string{mac + " action", mac + " download", mac + " switch_root"}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("the server took %q, want %q", got, want)
	}
	mu.Unlock()
	if r.failed.Load() != 0 || r.dropped.Load() != 0 {
		t.Errorf("%d failed, %d dropped", r.failed.Load(), r.dropped.Load())
	}
}

// A server that never answers delays nothing: sending never blocks, a
// full queue drops, and the flush before the point of no return gives up
// after its bound.
func TestReportsNeverBlock(t *testing.T) {
	hang := make(chan struct{})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		<-hang
	}))
	defer hs.Close()
	defer close(hang)

	var r reporter
	t0 := time.Now()
	for range 10 * reportQueue {
		r.send(report.Report{Stage: report.Download, Bytes: 1})
	}
	if d := time.Since(t0); d > time.Second {
		t.Errorf("queueing %d reports with nowhere to send them took %v", 10*reportQueue, d)
	}
	if got := r.dropped.Load(); got != 9*reportQueue {
		t.Errorf("dropped %d, want %d (queue of %d)", got, 9*reportQueue, reportQueue)
	}
	if r.flush(time.Second) {
		t.Error("flush with nowhere to send claimed success")
	}

	r.start(hs.URL+report.Path, "52:54:00:12:34:56", "test", t.Logf)
	t0 = time.Now()
	r.send(report.Report{Stage: report.SwitchRoot})
	ok := r.flush(300 * time.Millisecond)
	if d := time.Since(t0); ok || d > time.Second {
		t.Errorf("flush against a server that hangs: %v after %v, want false after about 300ms", ok, d)
	}
}

func TestReportURL(t *testing.T) {
	from := net.ParseIP("192.0.2.1")
	for _, tc := range []struct {
		cmdline string
		from    net.IP
		want    string
	}{
		{"console=ttyAMA0", from, "http://192.0.2.1:8080/report"},
		{"console=ttyAMA0", nil, ""},
		{"ramboot.report=http://198.51.100.7:9000/report", from, "http://198.51.100.7:9000/report"},
		{"ramboot.report=off", from, ""},
		{"ramboot.report=ftp://x/y", from, ""},
	} {
		if got := reportURL(tc.cmdline, tc.from); got != tc.want {
			t.Errorf("reportURL(%q, %v) = %q, want %q", tc.cmdline, tc.from, got, tc.want)
		}
	}
}

// A report whose first try fails on the network is tried once more; one
// the server refuses is not.
func TestReportRetry(t *testing.T) {
	var mu sync.Mutex
	var tries []string
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rep report.Report
		json.NewDecoder(r.Body).Decode(&rep)
		mu.Lock()
		tries = append(tries, rep.Stage)
		first := len(tries) == 1
		mu.Unlock()
		switch {
		case first: // the connection drops
			c, _, _ := http.NewResponseController(w).Hijack()
			c.Close()
		case rep.Stage == report.Failed:
			http.Error(w, "no", http.StatusForbidden)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer hs.Close()
	var r reporter
	r.start(hs.URL+report.Path, "52:54:00:12:34:56", "test", t.Logf)
	r.send(report.Report{Stage: report.NetworkUp})
	r.send(report.Report{Stage: report.Failed})
	if !r.flush(10 * time.Second) {
		t.Fatal("flush timed out")
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(tries, " ") != "network-up network-up failed" {
		t.Errorf("the server saw %q, want network-up twice and failed once", tries)
	}
}

// An install's outcome is delivered until the server acknowledges it: a
// server that refuses it (network error, 503, 429, 403 while it does not
// know the node yet, 404) gets it again after a backoff, each attempt
// logged; the reports queued before it arrive first.
func TestDeliverRetries(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	var at []time.Time
	answers := []int{0, http.StatusServiceUnavailable, http.StatusTooManyRequests, http.StatusForbidden, http.StatusNotFound, http.StatusNoContent}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rep report.Report
		json.NewDecoder(r.Body).Decode(&rep)
		mu.Lock()
		seen = append(seen, rep.Stage)
		if rep.Stage != report.InstallDone {
			mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
			return
		}
		at = append(at, time.Now())
		code := answers[len(at)-1]
		mu.Unlock()
		if rep.MAC != "52:54:00:12:34:56" {
			http.Error(w, "no mac", http.StatusBadRequest)
			return
		}
		if code == 0 { // the connection drops
			c, _, _ := http.NewResponseController(w).Hijack()
			c.Close()
			return
		}
		w.WriteHeader(code)
	}))
	defer hs.Close()
	var logs syncLog
	var r reporter
	r.start(hs.URL+report.Path, "52:54:00:12:34:56", "test", logs.logf)
	r.send(report.Report{Stage: report.Install, Detail: "started"})
	n, err := r.deliver(report.Report{Stage: report.InstallDone, Detail: "/dev/vda sha256=none gen=1"}, 20*time.Second, 50*time.Millisecond, logs.logf)
	if err != nil || n != len(answers) {
		t.Fatalf("deliver: %d attempts, %v; want %d, nil", n, err, len(answers))
	}
	mu.Lock()
	defer mu.Unlock()
	if seen[0] != report.Install {
		t.Errorf("the server saw %q: the report queued before the outcome came after it", seen)
	}
	// The waits double: 50, 100, 200, 400, 800 ms.
	for i := 1; i < len(at); i++ {
		if d, min := at[i].Sub(at[i-1]), 50*time.Millisecond<<(i-1); d < min {
			t.Errorf("attempt %d came %v after the one before, want at least %v", i+1, d, min)
		}
	}
	if got := strings.Count(logs.String(), "report: install done: attempt"); got != len(answers)-1 {
		t.Errorf("%d failed attempts logged, want %d:\n%s", got, len(answers)-1, logs.String())
	}
	for _, want := range []string{"503 Service Unavailable; again in", "429 Too Many Requests", "403 Forbidden", "404 Not Found"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no %q in the log:\n%s", want, logs.String())
		}
	}
}

// A refusal that the same report would get again ends the delivery at
// once; a server that never acknowledges ends it at its bound; with
// nowhere to report, nothing waits.
func TestDeliverGivesUp(t *testing.T) {
	code := http.StatusBadRequest
	var mu sync.Mutex
	tries := 0
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		tries++
		c := code
		mu.Unlock()
		w.WriteHeader(c)
	}))
	defer hs.Close()
	var r reporter
	r.start(hs.URL+report.Path, "52:54:00:12:34:56", "test", t.Logf)
	n, err := r.deliver(report.Report{Stage: report.InstallFailed}, 5*time.Second, 10*time.Millisecond, t.Logf)
	mu.Lock()
	if err == nil || n != 1 || tries != 1 {
		t.Errorf("400: %d attempts (server saw %d), %v; want 1 and an error", n, tries, err)
	}
	mu.Unlock()

	mu.Lock()
	code, tries = http.StatusBadGateway, 0
	mu.Unlock()
	t0 := time.Now()
	n, err = r.deliver(report.Report{Stage: report.InstallDone}, time.Second, 10*time.Millisecond, t.Logf)
	d := time.Since(t0)
	if err == nil || n < 5 || d < 900*time.Millisecond || d > 3*time.Second {
		t.Errorf("502 for ever: %d attempts in %v, %v; want several, about 1s, an error", n, d, err)
	}

	var off reporter
	t0 = time.Now()
	if _, err := off.deliver(report.Report{Stage: report.InstallDone}, time.Minute, time.Second, t.Logf); !errors.Is(err, errNoReports) || time.Since(t0) > 100*time.Millisecond {
		t.Errorf("with nowhere to report: %v after %v", err, time.Since(t0))
	}
}

// syncLog collects log lines from several goroutines.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) logf(f string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(&l.b, f+"\n", a...)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestParseBootImgDigest: the bootloader's boot_img_sha256 is taken as
// 32 bytes of digest or as its hex digits, and nothing else.
func TestParseBootImgDigest(t *testing.T) {
	sum := sha256.Sum256([]byte("boot.img"))
	hexSum := hex.EncodeToString(sum[:])
	for _, tc := range []struct {
		in   []byte
		want string
	}{
		{sum[:], hexSum},
		{[]byte(hexSum), hexSum},
		{[]byte(hexSum + "\x00"), hexSum},
		{[]byte(strings.ToUpper(hexSum) + "\n"), hexSum},
		{[]byte(hexSum[:63]), ""},
		{[]byte(hexSum[:62] + "zz"), ""},
		{sum[:31], ""},
		{nil, ""},
	} {
		got, ok := parseBootImgDigest(tc.in)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("parseBootImgDigest(%q) = %q, %v; want %q", tc.in, got, ok, tc.want)
		}
	}
}
