package status

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

// fullBoard is a board at its bound: DefaultMaxOthers nodes with
// DefaultMaxSteps steps of long details (/status.json is about 8 MB).
func fullBoard() *Board {
	b := &Board{}
	for i := range DefaultMaxOthers {
		mac := fmt.Sprintf("02:00:00:00:%02x:%02x", i>>8, i&0xff)
		for j := range DefaultMaxSteps {
			b.Record(mac, Node{MAC: mac, IP: fmt.Sprintf("10.0.%d.%d", i>>8, i&0xff)}, "dhcp offer", strings.Repeat("x", 190)+fmt.Sprint(j))
		}
	}
	return b
}

// stuckWriter is a client that takes 64 kB (what socket buffers would)
// and then stops reading: the write that would pass 64 kB blocks until
// release is closed, then fails.
type stuckWriter struct {
	header  http.Header
	n       int
	stuck   chan struct{} // closed when a write blocks
	release chan struct{}
}

func newStuckWriter() *stuckWriter {
	return &stuckWriter{header: http.Header{}, stuck: make(chan struct{}), release: make(chan struct{})}
}

func (w *stuckWriter) Header() http.Header { return w.header }
func (w *stuckWriter) WriteHeader(int)     {}
func (w *stuckWriter) Write(p []byte) (int, error) {
	if w.n+len(p) <= 64<<10 {
		w.n += len(p)
		return len(p), nil
	}
	if w.n >= 0 {
		w.n = -1 << 40 // every later write fails at once
		close(w.stuck)
		<-w.release
	}
	return 0, errors.New("client gone")
}

// /status.json and /status are written a node at a time: a reader that
// stops reading holds neither the board's lock nor a copy of the board.
// Fifty of them at once cost a few MB; the board's JSON is 8 MB, so
// building it whole for each (as before) would be 400 MB.
func TestServeHTTPStreams(t *testing.T) {
	b := fullBoard()
	serve := b.ServeHTTP
	rec := httptest.NewRecorder()
	b.ServeHTTP(rec, httptest.NewRequest("GET", "/status.json", nil))
	full := rec.Body.Len()
	if full < 7<<20 {
		t.Fatalf("the full board's JSON is %d bytes, want about 8 MB", full)
	}

	for _, path := range []string{"/status.json", "/status"} {
		const readers = 50
		runtime.GC()
		runtime.GC() // and what sync.Pools kept
		var before, during runtime.MemStats
		runtime.ReadMemStats(&before)
		var ws []*stuckWriter
		done := make(chan struct{}, readers)
		for range readers {
			w := newStuckWriter()
			ws = append(ws, w)
			go func() {
				serve(w, httptest.NewRequest("GET", path, nil))
				done <- struct{}{}
			}()
			<-w.stuck
		}
		// The lock is free: recording goes on while every reader is stuck.
		rec := make(chan struct{})
		go func() {
			b.Record("02:00:00:00:00:01", Node{}, "tftp", "while readers are stuck")
			close(rec)
		}()
		select {
		case <-rec:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: Record blocked while readers are stuck: the lock is held while writing", path)
		}
		runtime.GC()
		runtime.ReadMemStats(&during)
		grew := int64(during.HeapAlloc) - int64(before.HeapAlloc)
		t.Logf("%s: %d stuck readers hold %.1f MB of heap (the board's JSON is %.1f MB)", path, readers, float64(grew)/(1<<20), float64(full)/(1<<20))
		if grew > readers*(256<<10) {
			t.Errorf("%s: %d stuck readers hold %d bytes of heap, want at most 256 kB each", path, readers, grew)
		}
		for _, w := range ws {
			close(w.release)
		}
		for range readers {
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatalf("%s: a reader whose writes fail does not end", path)
			}
		}
	}
}

// The streamed JSON is what it was when it was built whole: {"nodes":
// [...]}, most recently seen first, every field and step.
func TestServeHTTPJSON(t *testing.T) {
	b := &Board{}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	now := t0
	b.Now = func() time.Time { now = now.Add(time.Second); return now }
	b.Record("aa:aa:aa:aa:aa:aa", Node{MAC: "aa:aa:aa:aa:aa:aa", Serial: "1234abcd", Kind: "pi4"}, "dhcp offer", "")
	b.Record("bb:bb:bb:bb:bb:bb", Node{MAC: "bb:bb:bb:bb:bb:bb", Hostname: "pi-2"}, "tftp", "start4.elf <&>")
	b.Report("aa:aa:aa:aa:aa:aa", Node{IP: "10.0.0.5"}, "download", "50%")
	b.Record("ip 10.0.0.9", Node{IP: "10.0.0.9"}, "image download", "x")

	rec := httptest.NewRecorder()
	b.ServeHTTP(rec, httptest.NewRequest("GET", "/status.json", nil))
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var got struct {
		Nodes []Node `json:"nodes"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("%v:\n%s", err, rec.Body)
	}
	if want := b.Nodes(); !reflect.DeepEqual(got.Nodes, want) {
		t.Errorf("status.json:\n%+v\nwant Nodes():\n%+v", got.Nodes, want)
	}
	if !strings.HasSuffix(rec.Body.String(), "]}\n") {
		t.Errorf("body does not end the object: %q", rec.Body.String()[max(0, rec.Body.Len()-20):])
	}

	empty := httptest.NewRecorder()
	(&Board{}).ServeHTTP(empty, httptest.NewRequest("GET", "/status.json", nil))
	if empty.Body.String() != "{\"nodes\":[]}\n" {
		t.Errorf("empty board: %q", empty.Body)
	}

	page := httptest.NewRecorder()
	b.ServeHTTP(page, httptest.NewRequest("GET", "/status", nil))
	body := page.Body.String()
	for _, want := range []string{"<title>ramboot: 3 nodes</title>", "3 seen, 0 listed in nodes.yaml and not seen yet", "<code>bb:bb:bb:bb:bb:bb</code>", "start4.elf &lt;&amp;&gt;", "<b>download</b> ", "<small>50%", "</script></body></html>"} {
		if !strings.Contains(body, want) {
			t.Errorf("/status lacks %q:\n%s", want, body)
		}
	}
	if strings.Index(body, "10.0.0.9") > strings.Index(body, "bb:bb:bb:bb:bb:bb") {
		t.Errorf("/status: not most recently seen first:\n%s", body)
	}
}
