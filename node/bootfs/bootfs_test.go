package bootfs

import (
	"context"
	"errors"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"testing"
)

func TestPartition(t *testing.T) {
	dir := t.TempDir()
	part := filepath.Join(dir, "part")
	for name, data := range map[string]string{"../outside": "OUTSIDE", "boot/vmlinuz": "K", "big": ""} {
		p := filepath.Join(part, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Truncate(filepath.Join(part, "big"), 3<<20)
	os.Symlink("../outside", filepath.Join(part, "rel-out"))
	os.Symlink("/etc/passwd", filepath.Join(part, "abs-out"))
	os.Symlink("boot/vmlinuz", filepath.Join(part, "vmlinuz"))

	p, err := Open(part, 2<<20, 4<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, tt := range []struct {
		name string
		want error // nil: reads "K"
	}{
		{"boot/vmlinuz", nil},
		{"/boot/vmlinuz", nil},
		{"vmlinuz", nil}, // a link inside
		{"boot/../boot/vmlinuz", nil},
		{"../outside", ErrOutside},
		{"/../outside", ErrOutside},
		{"boot/../../outside", ErrOutside},
		{"rel-out", ErrOutside},
		{"abs-out", ErrOutside},
		{"big", ErrTooLarge},
		{"boot", ErrNotRegular},
	} {
		p.StartParse()
		b, err := p.ReadFile(tt.name)
		switch {
		case tt.want == nil && (err != nil || string(b) != "K"):
			t.Errorf("ReadFile(%q) = %q, %v; want K", tt.name, b, err)
		case tt.want != nil && !errors.Is(err, tt.want):
			t.Errorf("ReadFile(%q) = %v; want %v", tt.name, err, tt.want)
		case tt.want != nil && !errors.Is(p.Refused(), tt.want):
			t.Errorf("ReadFile(%q): Refused() = %v; want %v", tt.name, p.Refused(), tt.want)
		}
	}

	// The scheme: URLs under the mount point only; configuration files
	// counted while parsing.
	s := p.Schemes()
	p.StartParse()
	for i := range MaxConfigs {
		if _, err := s.Fetch(context.Background(), &url.URL{Scheme: "file", Path: part + "/boot/vmlinuz"}); err != nil {
			t.Fatalf("fetch %d: %v", i, err)
		}
	}
	if _, err := s.Fetch(context.Background(), &url.URL{Scheme: "file", Path: part + "/boot/vmlinuz"}); !errors.Is(err, ErrTooMany) {
		t.Errorf("fetch %d: %v, want ErrTooMany", MaxConfigs+1, err)
	}
	p.EndParse()
	for _, u := range []string{"file:///etc/passwd", "file://" + dir + "/outside", "file://host" + part + "/boot/vmlinuz", "http://192.0.2.1/k"} {
		pu, _ := url.Parse(u)
		if _, err := s.Fetch(context.Background(), pu); err == nil {
			t.Errorf("Fetch(%s) succeeded", u)
		}
	}
	r, err := s.FetchWithoutCache(context.Background(), &url.URL{Scheme: "file", Path: part + "/vmlinuz"})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(r); string(b) != "K" {
		t.Errorf("FetchWithoutCache read %q", b)
	}
}
