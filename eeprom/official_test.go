//go:build rpieeprom

package eeprom

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// The official images' check needs raspberrypi/rpi-eeprom's files at
// hand (its current scripts and firmware-*/latest images), which neither
// the repository nor `make test` has: it is built only with the tag,
//
//	RAMBOOT_RPI_EEPROM=/path/to/rpi-eeprom go test -tags rpieeprom -run TestUpstreamOfficialImages ./eeprom/
//
// so that `make test` neither runs it nor counts a skip. What it checked
// when last run is in the synthetic pi4-real and pi5-ab layouts (their
// section tables are the official images') and testdata/upstream.sha256.

// officialImages returns the pieeprom-*.bin files of $RAMBOOT_RPI_EEPROM's
// firmware-2711/latest and firmware-2712/latest, or skips: the official
// images are not part of this repository.
func officialImages(t *testing.T) []string {
	t.Helper()
	dir := upstreamDir(t)
	if dir == "" {
		t.Fatalf("%s is unset: the official images are checked only with raspberrypi/rpi-eeprom's files at hand (the synthetic pi4-real and pi5-ab layouts copy their section tables)", upstreamEnv)
	}
	var imgs []string
	for _, fw := range []string{"firmware-2711", "firmware-2712"} {
		m, _ := filepath.Glob(filepath.Join(dir, fw, "latest", "pieeprom-*.bin"))
		if len(m) == 0 {
			t.Fatalf("no %s/latest/pieeprom-*.bin in %s=%s", fw, upstreamEnv, dir)
		}
		imgs = append(imgs, m...)
	}
	return imgs
}

// TestUpstreamOfficialImages edits the official images with SetConfig (and
// SetPublicKey) and the current rpi-eeprom-config (--config, --pubkey) and
// wants the same bytes; a Pi 5 image's partition B stays as it was.
func TestUpstreamOfficialImages(t *testing.T) {
	if testing.Short() {
		t.Skip("runs upstream's Python script: not in -short (make unit)")
	}
	imgs := officialImages(t)
	_, head := configPeers(t)
	head.python = cryptodomePython(t)
	dir := t.TempDir()
	key, pkcs8 := testKey(t)
	keyPath := writeFile(t, dir, "key.pem", pkcs8)
	for _, p := range imgs {
		t.Run(filepath.Base(filepath.Dir(filepath.Dir(p)))+"/"+filepath.Base(p), func(t *testing.T) {
			t.Parallel()
			orig, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			for _, conf := range []string{
				"[all]\nBOOT_UART=0\nBOOT_ORDER=0xf21\nTFTP_IP=192.0.2.1\nTFTP_PREFIX=2\n",
				configOfLen(MaxFileSize),
				"",
			} {
				im, err := Parse(orig)
				if err != nil {
					t.Fatal(err)
				}
				if err := im.SetConfig(conf); err != nil {
					t.Fatalf("%d-byte config: %v", len(conf), err)
				}
				up := head.edit(t, dir, fmt.Sprintf("%s-%d", filepath.Base(p), len(conf)), orig, conf)
				if got := im.Bytes(); !bytes.Equal(got, up) {
					i := firstDiff(got, up)
					t.Errorf("%d-byte config: differs from upstream at 0x%x: ours % x, upstream % x", len(conf), i, got[i:min(i+16, len(got))], up[i:min(i+16, len(up))])
				}
				if len(orig) == SizePi5 && !bytes.Equal(im.Bytes()[PartitionEnd:], orig[PartitionEnd:]) {
					t.Errorf("%d-byte config: partition B (from 0x%x) changed", len(conf), PartitionEnd)
				}
				// And the key, as rpi-eeprom-config --config C --pubkey K.
				if err := im.SetPublicKey(&key.PublicKey); err != nil {
					t.Fatal(err)
				}
				up = head.edit(t, dir, fmt.Sprintf("%s-%d-key", filepath.Base(p), len(conf)), orig, conf, "--pubkey", keyPath)
				if got := im.Bytes(); !bytes.Equal(got, up) {
					i := firstDiff(got, up)
					t.Errorf("%d-byte config and key: differs from upstream at 0x%x: ours % x, upstream % x", len(conf), i, got[i:min(i+16, len(got))], up[i:min(i+16, len(up))])
				}
				if len(orig) == SizePi5 && !bytes.Equal(im.Bytes()[PartitionEnd:], orig[PartitionEnd:]) {
					t.Errorf("%d-byte config and key: partition B (from 0x%x) changed", len(conf), PartitionEnd)
				}
			}
		})
	}
}
