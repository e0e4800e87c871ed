package eeprom

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var ts = time.Unix(1700000000, 0)

func TestDigestSha256sum(t *testing.T) {
	needTool(t, "sha256sum")
	data := layouts()[0].image
	p := filepath.Join(t.TempDir(), "pieeprom.bin")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sha256sum", p).Output()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Fields(string(out))[0] + "\nts: 1700000000\n"
	if got := string(Digest(data, ts)); got != want {
		t.Errorf("Digest = %q, want %q", got, want)
	}
}

// TestDigestPeer runs upstream rpi-eeprom-digest (testdata/).
func TestDigestPeer(t *testing.T) {
	needTool(t, "sh", "sha256sum", "awk", "mktemp")
	dir := t.TempDir()
	for i, data := range [][]byte{layouts()[0].image, layouts()[2].image, []byte("x")} {
		in := filepath.Join(dir, "in.bin")
		sig := filepath.Join(dir, "out.sig")
		if err := os.WriteFile(in, data, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("sh", "testdata/rpi-eeprom-digest", "-i", in, "-o", sig)
		cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=1700000000")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("rpi-eeprom-digest: %v\n%s", err, out)
		}
		want, err := os.ReadFile(sig)
		if err != nil {
			t.Fatal(err)
		}
		if got := Digest(data, ts); !bytes.Equal(got, want) {
			t.Errorf("input %d: Digest = %q, rpi-eeprom-digest wrote %q", i, got, want)
		}
	}
}

func TestWriteRecovery(t *testing.T) {
	l := layouts()[0]
	recovery := []byte("not really recovery.bin, but not an EEPROM image either")
	set := []Setting{{"BOOT_ORDER", "0xf21"}, {"TFTP_IP", "192.0.2.1"}}
	dir := filepath.Join(t.TempDir(), "card")
	res, err := WriteRecovery(dir, Recovery{Image: l.image, Recovery: recovery, Settings: set, Time: ts})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"recovery.bin", "pieeprom.bin", "pieeprom.sig", "README.txt"}; !slices.Equal(res.Files, want) || len(res.Replaced) != 0 || len(res.Removed) != 0 {
		t.Errorf("Files %v, Replaced %v, Removed %v; want %v, none, none", res.Files, res.Replaced, res.Removed, want)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 4 {
		t.Errorf("%d files in %s, want 4", len(entries), dir)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "recovery.bin")); !bytes.Equal(got, recovery) {
		t.Errorf("recovery.bin is not a copy")
	}
	img, _ := os.ReadFile(filepath.Join(dir, "pieeprom.bin"))
	im, err := Parse(img)
	if err != nil {
		t.Fatal(err)
	}
	wantConf := baseConfig + "BOOT_ORDER=0xf21\nTFTP_IP=192.0.2.1\n"
	if im.Config() != wantConf || res.NewConfig != wantConf || res.OldConfig != baseConfig {
		t.Errorf("config %q (result %q, old %q), want %q", im.Config(), res.NewConfig, res.OldConfig, wantConf)
	}
	sig, _ := os.ReadFile(filepath.Join(dir, "pieeprom.sig"))
	if !bytes.Equal(sig, Digest(img, ts)) || !strings.HasPrefix(string(sig), res.SHA256+"\n") {
		t.Errorf("pieeprom.sig = %q, want Digest of pieeprom.bin (%s)", sig, res.SHA256)
	}
	readme, _ := os.ReadFile(filepath.Join(dir, "README.txt"))
	for _, w := range []string{"Raspberry Pi 4", "    BOOT_ORDER=0xf21", "SD card, then network, then restart", "FAT32", "blinks rapidly", "next Pi"} {
		if !strings.Contains(string(readme), w) {
			t.Errorf("README.txt lacks %q:\n%s", w, readme)
		}
	}

	// Again into the same folder: its own files are replaced. --once
	// swaps pieeprom.bin for pieeprom.upd (recovery.bin prefers .upd, so
	// a stale one must not stay).
	res, err = WriteRecovery(dir, Recovery{Image: l.image, Recovery: recovery, Settings: set, Time: ts, Once: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.ImageFile != "pieeprom.upd" || !slices.Equal(res.Removed, []string{"pieeprom.bin"}) || !slices.Equal(res.Replaced, []string{"recovery.bin", "pieeprom.sig", "README.txt"}) {
		t.Errorf("once: %+v", res)
	}
	if _, err := os.Stat(filepath.Join(dir, "pieeprom.bin")); err == nil {
		t.Errorf("pieeprom.bin left next to pieeprom.upd")
	}
	upd, _ := os.ReadFile(filepath.Join(dir, "pieeprom.upd"))
	if !bytes.Equal(upd, img) {
		t.Errorf("pieeprom.upd differs from the pieeprom.bin written before")
	}
	readme, _ = os.ReadFile(filepath.Join(dir, "README.txt"))
	if !strings.Contains(string(readme), "RECOVERY.000") {
		t.Errorf("once: README.txt does not say the card is used up:\n%s", readme)
	}

	// A folder with anything else in it is refused, and left alone.
	if err := os.WriteFile(filepath.Join(dir, "kernel8.img"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = WriteRecovery(dir, Recovery{Image: l.image, Recovery: recovery, Time: ts})
	if !errors.Is(err, ErrDirNotEmpty) || !strings.Contains(err.Error(), "kernel8.img") || !strings.Contains(err.Error(), "new or empty directory") {
		t.Errorf("non-empty folder: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "pieeprom.upd")); err != nil {
		t.Errorf("a refused write touched the folder: %v", err)
	}
}

func TestWriteRecoveryErrors(t *testing.T) {
	l := layouts()[0]
	for _, tc := range []struct {
		name string
		r    Recovery
		want string
	}{
		{"bad setting", Recovery{Image: l.image, Recovery: []byte("r"), Settings: []Setting{{"BOOT_ORDER", "0xf0"}}}, "BOOT_ORDER=0xf0"},
		{"bad image", Recovery{Image: []byte("nope"), Recovery: []byte("r")}, "not a Raspberry Pi bootloader EEPROM image"},
		{"no recovery", Recovery{Image: l.image}, "recovery.bin is empty"},
		{"swapped", Recovery{Image: l.image, Recovery: l.image}, "are the two files swapped"},
		{"too big", Recovery{Image: l.image, Recovery: []byte("r"), Settings: []Setting{{"PXE_OPTION43", strings.Repeat("x", 4100)}}}, "the limit is 4076 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "card")
			_, err := WriteRecovery(dir, tc.r)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v, want an error with %q", err, tc.want)
			}
			if _, err := os.Stat(dir); err == nil {
				t.Errorf("a failed WriteRecovery created %s", dir)
			}
		})
	}
}

// TestWriteRecoveryHTTP: with PublicKey and HTTP_HOST the key is embedded
// after the config, and README.txt has the URL, the key's sha256 and the
// key-loss warning; without either it has none of them.
func TestWriteRecoveryHTTP(t *testing.T) {
	key, _ := testKey(t)
	fp, err := KeySHA256(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	set := []Setting{{"BOOT_ORDER", "0xf27"}, {"HTTP_HOST", "192.0.2.1"}, {"HTTP_PORT", "8080"}, {"HTTP_PATH", "rpi4"}}
	for _, l := range layouts() {
		if _, ok := l.File(PubkeyFile); !ok {
			continue
		}
		t.Run(l.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "card")
			res, err := WriteRecovery(dir, Recovery{Image: l.image, Recovery: []byte("r"), Settings: set, Time: ts, PublicKey: &key.PublicKey})
			if err != nil {
				t.Fatal(err)
			}
			img, _ := os.ReadFile(filepath.Join(dir, ImageName))
			im, err := Parse(img)
			if err != nil {
				t.Fatal(err)
			}
			if got, ok := im.PublicKey(); !ok || !got.Equal(&key.PublicKey) || !res.KeyAdded || res.KeySHA256 != fp {
				t.Errorf("key %v, %v; KeyAdded %v, KeySHA256 %s; want the key, %s", got, ok, res.KeyAdded, res.KeySHA256, fp)
			}
			// SetConfig then SetPublicKey, upstream's order.
			want, _ := Parse(l.image)
			if err := want.SetConfig(MergeConfig(baseConfig, set)); err != nil {
				t.Fatal(err)
			}
			if err := want.SetPublicKey(&key.PublicKey); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(img, want.Bytes()) {
				t.Errorf("%s is not SetConfig then SetPublicKey", ImageName)
			}
			readme, _ := os.ReadFile(filepath.Join(dir, ReadmeName))
			for _, w := range []string{"HTTP boot fetches http://192.0.2.1:8080/rpi4/boot.img and boot.sig", "sha256 " + fp, KeyLossWarning, "HTTP, then network, then restart"} {
				if !strings.Contains(string(readme), w) {
					t.Errorf("README.txt lacks %q:\n%s", w, readme)
				}
			}
		})
	}

	l := layouts()[0]
	dir := filepath.Join(t.TempDir(), "card")
	res, err := WriteRecovery(dir, Recovery{Image: l.image, Recovery: []byte("r"), Settings: set[:1], Time: ts})
	if err != nil {
		t.Fatal(err)
	}
	readme, _ := os.ReadFile(filepath.Join(dir, ReadmeName))
	if res.KeyAdded || res.KeySHA256 != "" || strings.Contains(string(readme), "public key") || strings.Contains(string(readme), "HTTP boot") {
		t.Errorf("no key, no HTTP_HOST: %+v\n%s", res, readme)
	}

	// An image without a pubkey.bin section.
	_, err = WriteRecovery(filepath.Join(t.TempDir(), "card"), Recovery{Image: layouts()[1].image, Recovery: []byte("r"), PublicKey: &key.PublicKey})
	if err == nil || !strings.Contains(err.Error(), "no pubkey.bin section") || !strings.Contains(err.Error(), "firmware-2711/latest/") {
		t.Errorf("no pubkey.bin: %v", err)
	}
}
