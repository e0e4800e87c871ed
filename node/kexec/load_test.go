//go:build linux

package kexec

import (
	"bytes"
	"compress/gzip"
	"strings"
	"testing"
)

// ARM64Kernel is the smallest arm64 Image Kernel takes (its "ARM\x64"
// magic at byte 56); AMD64Kernel the smallest x86 bzImage ("HdrS" at
// 0x202).
func arm64Kernel() []byte {
	k := make([]byte, 64)
	copy(k[56:], "ARM\x64")
	return k
}

func amd64Kernel() []byte {
	k := make([]byte, 0x206)
	copy(k[0x202:], "HdrS")
	return k
}

// A kernel of the other architecture, or no kernel at all, is refused
// with the reason before kexec sees it; a gzipped one is unpacked.
func TestKernel(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(arm64Kernel())
	zw.Close()
	for _, tc := range []struct {
		name, arch string
		k          []byte
		err        string // "" : taken
	}{
		{"arm64 on arm64", "arm64", arm64Kernel(), ""},
		{"gzipped arm64 on arm64", "arm64", gz.Bytes(), ""},
		{"amd64 on amd64", "amd64", amd64Kernel(), ""},
		{"bzImage on arm64", "arm64", amd64Kernel(), "this is an x86 bzImage; this machine is arm64"},
		{"garbage on arm64", "arm64", []byte("<html>not found</html>"), "not an arm64 Image"},
		{"arm64 on amd64", "amd64", arm64Kernel(), "not an x86 bzImage"},
		{"truncated gzip", "arm64", gz.Bytes()[:20], "kernel: gunzip"},
	} {
		got, err := Kernel(tc.k, tc.arch)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.err == "" && !bytes.Equal(got[56:60], []byte("ARM\x64")) && !bytes.Equal(got[0x202:0x206], []byte("HdrS")):
			t.Errorf("%s: got %q, not the unpacked kernel", tc.name, got)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.err)
		}
	}
}
