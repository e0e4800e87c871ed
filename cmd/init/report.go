//go:build linux

package main

// The init reports its own stages (internal/report) to the server that
// gave it option 224, for that server's status page and metrics. Reports
// are best effort and never hold up a boot: a report is queued without
// waiting (a full queue drops it), one goroutine sends the queue, each
// POST is bounded by reportTimeout (and tried once more after a network
// error: an emulated or busy node's first connection can be slow), and
// past the point of no return the last report waits at most reportFlush
// to go out.
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
	"sync"
	"sync/atomic"
	"time"

	"github.com/ramboot/ramboot/cmd/init/internal/bootspec"
	"github.com/ramboot/ramboot/cmd/init/internal/netup"
	"github.com/ramboot/ramboot/internal/report"
)

const (
	// reportQueue is how many reports wait at most; more are dropped.
	reportQueue = 32
	// reportTimeout bounds one report's POST, connection included.
	reportTimeout = 5 * time.Second
	// reportFlush bounds the wait for the last report before switch_root
	// or kexec.
	reportFlush = time.Second
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
		err := r.post(t, it.r)
		var se statusError
		if err != nil && !errors.As(err, &se) {
			err = r.post(t, it.r)
		}
		if err != nil && r.failed.Add(1) == 1 {
			logf("report: %v (reports are best effort: the boot goes on)", err)
		}
	}
}

func (r *reporter) post(t *reportTarget, rep report.Report) error {
	body, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), reportTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
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
		return statusError("POST " + t.url + ": " + resp.Status)
	}
	return nil
}

// statusError is a server's answer other than 2xx: not tried again.
type statusError string

func (e statusError) Error() string { return string(e) }

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

// reportOutcome reports how the boot action ended: the shell option 224
// asked for, or a failure with its reason.
func (in *Init) reportOutcome(value, outcome string) {
	if spec, err := bootspec.Parse(value); err == nil && spec.Kind == bootspec.Shell {
		in.report(report.Shell, outcome)
		return
	}
	in.report(report.Failed, outcome)
}

// actionText is an Action report's detail: what option 224 says, without
// a URL's digest.
func actionText(spec bootspec.Spec, source string) string {
	what := spec.Kind.String()
	switch {
	case spec.URL != nil:
		what += " " + redact(spec.URL)
	case spec.Kind == bootspec.NFS:
		what += " " + spec.NFS.Source()
	}
	return what + " (from " + source + ")"
}
