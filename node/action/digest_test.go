package action

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckSHA256(t *testing.T) {
	b := []byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG3e2e root@admin\n")
	sum := sha256.Sum256(b)
	good := hex.EncodeToString(sum[:])
	other := strings.Repeat("0", 64)
	const u = "http://192.0.2.1:8080/keys/n1"
	for _, tc := range []struct {
		name, want string
		err        []string // in the error; nil: no error
		mismatch   bool
	}{
		{"match", good, nil, false},
		{"match, upper case", strings.ToUpper(good), nil, false},
		{"no digest", "", nil, false},
		{"mismatch", other, []string{u, "sha256 mismatch", "want sha256=" + other, "got " + good, "install keys:/seed:"}, true},
		{"malformed", "abc", []string{u, `"abc" is not 64 hex digits`}, false},
		{"malformed, 64 but not hex", strings.Repeat("g", 64), []string{"is not 64 hex digits"}, false},
	} {
		err := checkSHA256(u, b, tc.want)
		if tc.err == nil {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		for _, w := range tc.err {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v\nwant it to say %q", tc.name, err, w)
			}
		}
		if errors.Is(err, errDigest) != tc.mismatch {
			t.Errorf("%s: errors.Is(%v, errDigest) = %v", tc.name, err, !tc.mismatch)
		}
	}
}

// fetchChecked hands back the bytes only when they match.
func TestFetchChecked(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "user-data")
	b := []byte("#cloud-config\nhostname: n1\n")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	ctx := context.Background()
	got, err := fetchChecked(ctx, fetcher{}, "file://"+p, hex.EncodeToString(sum[:]))
	if err != nil || string(got) != string(b) {
		t.Errorf("matching digest: %q, %v", got, err)
	}
	got, err = fetchChecked(ctx, fetcher{}, "file://"+p, strings.Repeat("f", 64))
	if !errors.Is(err, errDigest) || got != nil {
		t.Errorf("wrong digest: %q, %v; want no bytes and a mismatch", got, err)
	}
	if _, err := fetchChecked(ctx, fetcher{}, "file://"+filepath.Join(dir, "missing"), ""); err == nil || errors.Is(err, errDigest) {
		t.Errorf("missing file: %v, want the fetch's error", err)
	}
}
