//go:build linux

package initd

// The init reports its own stages (internal/report) to the server that
// gave it option 224, for that server's status page and metrics. Reports
// are best effort and never hold up a boot: a report is queued without
// waiting (a full queue drops it), one goroutine sends the queue, each
// POST is bounded by reportTimeout (and tried once more after a network
// error: an emulated or busy node's first connection can be slow), and
// past the point of no return the last report waits at most reportFlush
// to go out.
//
// An install's outcome ("install done", "install failed") is the
// exception: the server's next answer depends on it, so it is delivered
// (deliver): after the reports queued before it, posted until the server
// answers 2xx, with a backoff from deliverBackoff, for at most
// deliverFor, each failed attempt on the console. Then the node goes on
// either way: the install record on its disk keeps a lost "install done"
// from re-flashing it, and the next boot's report tells the server.
//
// Where reports go: the kernel command line's ramboot.report=URL (set by
// `ramboot serve`'s iPXE scripts; "off" for none), else
// http://SERVER:8080/report, SERVER being the DHCP server that sent
// option 224 (`ramboot serve` on its default port). Reports made before
// the network is up wait in the queue for it.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ramboot/ramboot/bootspec"
	"github.com/ramboot/ramboot/internal/report"
	"github.com/ramboot/ramboot/node/netup"
)

const (
	// reportQueue is how many reports wait at most; more are dropped.
	reportQueue = 32
	// reportTimeout bounds one report's POST, connection included.
	reportTimeout = 5 * time.Second
	// reportFlush bounds the wait for the last report before switch_root
	// or kexec.
	reportFlush = time.Second
	// deliverFor bounds the delivery of an install's outcome, attempts
	// and waits included.
	deliverFor = 30 * time.Second
	// deliverBackoff is the first wait between two attempts; it doubles.
	deliverBackoff = 500 * time.Millisecond
)

// reporter sends reports; its zero value queues them until start.
type reporter struct {
	once    sync.Once
	queue   chan reportItem
	client  *http.Client
	target  atomic.Pointer[reportTarget]
	started atomic.Bool
	dropped atomic.Int64
	failed  atomic.Int64
}

type reportTarget struct{ url, mac, agent string }

// reportItem is a report, or (done set) a marker that flush waits for.
type reportItem struct {
	r    report.Report
	done chan struct{}
}

func (r *reporter) init() {
	r.once.Do(func() {
		r.queue = make(chan reportItem, reportQueue)
		r.client = &http.Client{Timeout: reportTimeout, Transport: &http.Transport{
			DialContext:           (&net.Dialer{Timeout: reportTimeout}).DialContext,
			ResponseHeaderTimeout: reportTimeout,
			MaxIdleConns:          1,
		}}
	})
}

// send queues rep; it never blocks: a full queue drops it.
func (r *reporter) send(rep report.Report) {
	r.init()
	select {
	case r.queue <- reportItem{r: rep}:
	default:
		r.dropped.Add(1)
	}
}

// start sets where reports go and starts sending them (once; a later
// call only changes the target).
func (r *reporter) start(u, mac, agent string, logf func(string, ...any)) {
	r.init()
	r.target.Store(&reportTarget{url: u, mac: mac, agent: agent})
	if r.started.CompareAndSwap(false, true) {
		go r.drain(logf)
	}
}

func (r *reporter) drain(logf func(string, ...any)) {
	defer func() {
		if p := recover(); p != nil {
			logf("report: BUG: %v (no more reports)", p)
		}
	}()
	for it := range r.queue {
		if it.done != nil {
			close(it.done)
			continue
		}
		t := r.target.Load()
		it.r.MAC = t.mac
		err := r.post(context.Background(), t, it.r)
		var se *statusError
		if err != nil && !errors.As(err, &se) {
			err = r.post(context.Background(), t, it.r)
		}
		if err != nil && r.failed.Add(1) == 1 {
			logf("report: %v (reports are best effort: the boot goes on)", err)
		}
	}
}

func (r *reporter) post(ctx context.Context, t *reportTarget, rep report.Report) error {
	return r.postJSON(ctx, t, t.url, rep)
}

// sendFacts posts the node's facts to the server's report.FactsPath (beside
// its report.Path), best effort: at most three attempts, a second and two
// apart, while the server may not know the node's address yet.
func (r *reporter) sendFacts(f report.Facts, logf func(string, ...any)) {
	r.init()
	t := r.target.Load()
	if t == nil || !strings.HasSuffix(t.url, report.Path) {
		return
	}
	u := strings.TrimSuffix(t.url, report.Path) + report.FactsPath
	f.MAC = t.mac
	var err error
	for i, wait := 0, time.Second; i < 3; i, wait = i+1, wait*2 {
		if err = r.postJSON(context.Background(), t, u, f); err == nil || !retryable(err) {
			break
		}
		time.Sleep(wait)
	}
	if err != nil {
		logf("facts: %v (best effort: the boot goes on)", err)
	}
}

func (r *reporter) postJSON(ctx context.Context, t *reportTarget, url string, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, reportTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", t.agent)
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return &statusError{code: resp.StatusCode, msg: "POST " + url + ": " + resp.Status}
	}
	return nil
}

// statusError is a server's answer other than 2xx: a queued report is not
// tried again.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return e.msg }

// retryable tells whether a delivery tries again after err: after a
// network error, a server error, 429, and 403 or 404 (the server may not
// know the node's address yet, or its report endpoint is starting);
// not after another refusal, which the same report would get again.
func retryable(err error) bool {
	var se *statusError
	if !errors.As(err, &se) {
		return true
	}
	switch c := se.code; {
	case c >= 500, c == http.StatusTooManyRequests, c == http.StatusForbidden, c == http.StatusNotFound:
		return true
	}
	return false
}

// errNoReports is deliver's answer when reports have nowhere to go.
var errNoReports = errors.New("reports are off (no ramboot.report= URL and no DHCP server to send them to)")

// deliver sends rep after the reports queued before it (waiting for those
// at most reportFlush) and posts it until the server answers 2xx, at most
// for bound: attempts back off from first, doubling, and each failed one
// is logged. It returns how many attempts were made and nil once the
// server acknowledged, else the last error.
func (r *reporter) deliver(rep report.Report, bound, first time.Duration, logf func(string, ...any)) (int, error) {
	if !r.started.Load() {
		return 0, errNoReports
	}
	r.flush(reportFlush)
	t := r.target.Load()
	rep.MAC = t.mac
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	wait := first
	for n := 1; ; n++ {
		err := r.post(ctx, t, rep)
		if err == nil {
			return n, nil
		}
		if !retryable(err) {
			logf("report: %s: attempt %d: %v: not tried again", rep.Stage, n, err)
			return n, err
		}
		left := time.Until(deadlineOf(ctx))
		if left <= 0 {
			logf("report: %s: attempt %d: %v", rep.Stage, n, err)
			return n, err
		}
		wait = min(wait, left)
		logf("report: %s: attempt %d: %v; again in %v", rep.Stage, n, err, wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return n, err
		case <-time.After(wait):
		}
		wait *= 2
	}
}

func deadlineOf(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

// flush waits until the reports queued so far are sent (or given up),
// at most d. It returns at once if reports have nowhere to go.
func (r *reporter) flush(d time.Duration) bool {
	if !r.started.Load() {
		return false
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	done := make(chan struct{})
	select {
	case r.queue <- reportItem{done: done}:
	case <-timer.C:
		return false
	}
	select {
	case <-done:
		return true
	case <-timer.C:
		return false
	}
}

// reportURL is where reports go: ramboot.report= on the command line
// ("off": nowhere), else ramboot serve's default port on the server
// that sent option 224; "" if neither.
func reportURL(cmdline string, from net.IP) string {
	if v, ok := bootspec.CmdlineParam(cmdline, report.CmdlineParam); ok {
		if u, err := url.Parse(v); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
			return v
		}
		return ""
	}
	if from == nil || from.IsUnspecified() {
		return ""
	}
	return "http://" + net.JoinHostPort(from.String(), strconv.Itoa(report.DefaultPort)) + report.Path
}

// startReports starts sending reports once the network is up.
func (in *Init) startReports(res *netup.Result) {
	u := reportURL(in.cmdline, res.Option224From)
	if u == "" {
		return
	}
	in.rep.start(u, res.MAC.String(), in.agent(), func(f string, a ...any) { in.stage(f, a...) })
}

// report reports a stage, best effort, without waiting.
func (in *Init) report(stage, detail string) {
	in.rep.send(report.Report{Stage: stage, Detail: report.Clip(detail, report.MaxDetail)})
}

// reportProgress reports n of total bytes (total <= 0: unknown).
func (in *Init) reportProgress(stage string, n, total int64) {
	in.rep.send(report.Report{Stage: stage, Bytes: max(n, 0), Total: max(total, 0)})
}

// reportLast reports the stage past the point of no return and gives it
// at most reportFlush to go out.
func (in *Init) reportLast(stage, detail string) {
	in.report(stage, detail)
	in.rep.flush(reportFlush)
}

// deliverOutcome delivers an install's outcome (deliver): it reports
// whether the server acknowledged it.
func (in *Init) deliverOutcome(stage, detail string) bool {
	t0 := time.Now()
	n, err := in.rep.deliver(report.Report{Stage: stage, Detail: report.Clip(detail, report.MaxDetail)}, deliverFor, deliverBackoff, in.stage)
	switch {
	case err == nil:
		if n > 1 {
			in.stage("report: %s: acknowledged at attempt %d, after %v", stage, n, time.Since(t0).Round(time.Millisecond))
		}
		return true
	case errors.Is(err, errNoReports):
		return false
	}
	in.stage("report: %s: not acknowledged after %d attempts in %v: the node goes on (the install record on its disk tells the server at its next boot)", stage, n, time.Since(t0).Round(time.Second))
	return false
}

// reportOutcome reports how the boot action ended: the shell option 224
// asked for, or a failure with its reason.
func (in *Init) reportOutcome(value, outcome string) {
	if spec, err := bootspec.Parse(value); err == nil && spec.Kind == bootspec.Shell {
		in.report(report.Shell, outcome)
		return
	}
	in.report(report.Failed, outcome)
}
