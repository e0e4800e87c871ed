package ipxe

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	serve := func(p, body string) {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(body)) })
	}
	serve("/pi/boot.ipxe", "#!ipxe\nisset ${serial} || goto fail\nchain scripts/${serial}.ipxe || goto fail\n:fail\nshell\n")
	serve("/pi/scripts/42.ipxe", "#!ipxe\nkernel ../vmlinuz console=ttyAMA0 host=${hostname}\ninitrd /initrd.cpio.gz\nkernel missing || boot\n")
	serve("/pi/vmlinuz", "KERNEL-BYTES")
	serve("/initrd.cpio.gz", "INITRD-BYTES")
	mux.HandleFunc("/short", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.Write([]byte("only ten b"))
	})
	mux.HandleFunc("/big-declared", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.Write(make([]byte, 1000))
	})
	mux.HandleFunc("/big-chunked", func(w http.ResponseWriter, r *http.Request) {
		w.Write(make([]byte, 10))
		w.(http.Flusher).Flush() // no Content-Length
		w.Write(make([]byte, 1000))
	})
	mux.HandleFunc("/exact", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "64")
		w.Write(make([]byte, 64))
	})
	srv := httptest.NewServer(mux) // listens on 127.0.0.1
	t.Cleanup(srv.Close)
	return srv
}

func TestRunHTTP(t *testing.T) {
	srv := newServer(t)
	f := HTTPFetcher{Client: srv.Client(), MaxBytes: 1 << 20}
	base := mustURL(srv.URL + "/pi/boot.ipxe")
	script, err := f.Fetch(context.Background(), base.String())
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	p, err := Run(context.Background(), script, base, map[string]string{"serial": "42", "hostname": "pi-a"}, f, &out)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, out.String())
	}
	if string(p.Kernel) != "KERNEL-BYTES" || p.Source != srv.URL+"/pi/vmlinuz" || p.Cmdline != "console=ttyAMA0 host=pi-a" {
		t.Errorf("kernel = %q from %q, cmdline %q", p.Kernel, p.Source, p.Cmdline)
	}
	if len(p.Initrds) != 1 || string(p.Initrds[0].Data) != "INITRD-BYTES" || p.Initrds[0].URL != srv.URL+"/initrd.cpio.gz" {
		t.Errorf("initrds = %+v", p.Initrds)
	}
	if !strings.Contains(out.String(), "/pi/scripts/missing... GET "+srv.URL+"/pi/scripts/missing: 404 Not Found") {
		t.Errorf("output does not show the 404:\n%s", out.String())
	}

	// Without a serial the script gives up to the shell.
	_, err = Run(context.Background(), script, base, nil, f, nil)
	if !errors.Is(err, ErrShell) || !strings.Contains(err.Error(), "line 5: script requested the shell") {
		t.Errorf("Run without serial: %v", err)
	}
}

func TestHTTPFetcher(t *testing.T) {
	srv := newServer(t)
	f := HTTPFetcher{Client: srv.Client(), MaxBytes: 100}
	for _, tt := range []struct {
		path    string
		wantLen int
		is      error
		wantErr string
	}{
		{path: "/exact", wantLen: 64},
		{path: "/pi/vmlinuz", wantLen: len("KERNEL-BYTES")},
		{path: "/short", is: ErrTruncated, wantErr: "download truncated: got 10 of 100 bytes"},
		{path: "/big-declared", is: ErrTooLarge, wantErr: "Content-Length 1000 exceeds limit 100"},
		{path: "/big-chunked", is: ErrTooLarge, wantErr: "more than 100 bytes"},
		{path: "/nope", wantErr: "404 Not Found"},
	} {
		t.Run(tt.path, func(t *testing.T) {
			b, err := f.Fetch(context.Background(), srv.URL+tt.path)
			if tt.wantErr == "" {
				if err != nil || len(b) != tt.wantLen {
					t.Fatalf("Fetch = %d bytes, %v; want %d bytes", len(b), err, tt.wantLen)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("Fetch error = %v, want %q (%v)", err, tt.wantErr, tt.is)
			}
		})
	}
	var he *HTTPError
	if _, err := f.Fetch(context.Background(), srv.URL+"/nope"); !errors.As(err, &he) || he.StatusCode != 404 {
		t.Errorf("Fetch 404 error = %#v, want *HTTPError 404", err)
	}
	if _, err := f.Fetch(context.Background(), "tftp://127.0.0.1/x"); err == nil || !strings.Contains(err.Error(), `unsupported scheme "tftp"`) {
		t.Errorf("Fetch tftp error = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.Fetch(ctx, srv.URL+"/exact"); !errors.Is(err, context.Canceled) {
		t.Errorf("Fetch with canceled ctx = %v", err)
	}
	// Defaults: nil client, no limit set.
	if b, err := (HTTPFetcher{}).Fetch(context.Background(), srv.URL+"/exact"); err != nil || len(b) != 64 {
		t.Errorf("default HTTPFetcher = %d, %v", len(b), err)
	}
}
