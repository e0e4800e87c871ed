//go:build linux

package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ramboot/ramboot/internal/testenv"
)

func TestAllZero(t *testing.T) {
	b := make([]byte, 4099)
	if !allZero(b) || !allZero(nil) {
		t.Fatal("zeros not seen as zeros")
	}
	for _, i := range []int{0, 7, 8, 4095, 4098} {
		b[i] = 1
		if allZero(b) {
			t.Errorf("a one at %d not seen", i)
		}
		b[i] = 0
	}
}

// TestZeroWriterLoop writes data, zeros and data through zeroWriter onto
// a real block device (a loop device over a file of 0xff bytes): the
// device must read back exactly what was written, zeros included.
func TestZeroWriterLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("needs root and a loop device")
	}
	if os.Geteuid() != 0 {
		testenv.Skip(t, "needs root for a loop device")
	}
	if _, err := exec.LookPath("losetup"); err != nil {
		testenv.Skip(t, "losetup (util-linux) not installed")
	}
	file := filepath.Join(t.TempDir(), "dev.img")
	if err := os.WriteFile(file, bytes.Repeat([]byte{0xff}, 16<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "--find", "--show", file).Output()
	if err != nil {
		testenv.Skip(t, "losetup: ", err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("ramboot!"), 512<<7) // 4 MiB
	want := append(append(append([]byte{}, data...), make([]byte, 8<<20)...), data[:1000]...)
	z := &zeroWriter{f: f}
	for _, chunk := range [][]byte{data, make([]byte, 4<<20), make([]byte, 4<<20), data[:1000]} {
		if n, err := z.Write(chunk); err != nil || n != len(chunk) {
			t.Fatalf("Write: %d, %v", n, err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	got, err := os.ReadFile(dev)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:len(want)], want) {
		t.Fatalf("the device does not hold what was written")
	}
	if !bytes.Equal(got[len(want):], bytes.Repeat([]byte{0xff}, len(got)-len(want))) {
		t.Errorf("bytes past the end were changed")
	}
	t.Logf("%d bytes zeroed by BLKZEROOUT (plain writes after a refusal: %v)", z.zeroed, z.plain)
	if z.zeroed == 0 {
		t.Errorf("BLKZEROOUT was not used on a loop device")
	}
}
