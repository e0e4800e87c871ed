package cli

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ramboot/ramboot/eeprom"
	"github.com/ramboot/ramboot/internal/testenv"
)

const testEEPROMConfig = "[all]\nBOOT_UART=0\nBOOT_ORDER=0x1\n\n[none]\nFREEZE_VERSION=0\n"

// testEEPROM writes a synthetic 512 KiB image and a recovery.bin next to
// it, and returns the image's path.
func testEEPROM(t *testing.T) string {
	t.Helper()
	return testEEPROMImage(t, eeprom.SizePi4, true)
}

// testEEPROMImage writes a synthetic image of size bytes, laid out as the
// official ones: a code section, bootconf.txt at 64 KiB (where
// rpi-eeprom-config edits files) in its own 4 KiB sector with a padding
// section after it, then, with pubkey, pubkey.bin holding 512 zero bytes
// (as in the releases), then bootconf.sig, 0xff to the end. A recovery.bin
// is written next to it.
func testEEPROMImage(t *testing.T, size int, pubkey bool) string {
	t.Helper()
	data := bytes.Repeat([]byte{0xff}, size)
	be := binary.BigEndian
	be.PutUint32(data[0:], eeprom.Magic)
	be.PutUint32(data[4:], 0x3000)
	for i := 8; i < 8+0x3000; i++ {
		data[i] = byte(i * 7)
	}
	be.PutUint32(data[0x3008:], eeprom.PadMagic)
	be.PutUint32(data[0x300c:], 0x10000-0x3008-8)
	c := 0x10000
	be.PutUint32(data[c:], eeprom.FileMagic)
	be.PutUint32(data[c+4:], uint32(len(testEEPROMConfig)+16))
	copy(data[c+8:c+20], "bootconf.txt")
	copy(data[c+24:], testEEPROMConfig)
	p := (c + 24 + len(testEEPROMConfig) + 7) &^ 7
	be.PutUint32(data[p:], eeprom.PadMagic)
	be.PutUint32(data[p+4:], uint32(0x11000-p-8))
	sig := 0x11000
	if pubkey {
		be.PutUint32(data[0x11000:], eeprom.FileMagic)
		be.PutUint32(data[0x11004:], 512+16)
		copy(data[0x11008:], "pubkey.bin\x00\x00\x00\x00\x00\x00")
		clear(data[0x11018 : 0x11018+512])
		be.PutUint32(data[0x11218:], eeprom.PadMagic)
		be.PutUint32(data[0x1121c:], 0x12000-0x11218-8)
		sig = 0x12000
	}
	be.PutUint32(data[sig:], eeprom.FileMagic)
	be.PutUint32(data[sig+4:], 16)
	copy(data[sig+8:], "bootconf.sig")

	dir := t.TempDir()
	img := filepath.Join(dir, "pieeprom-2025-05-08.bin")
	if err := os.WriteFile(img, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "recovery.bin"), []byte("recovery code"), 0o644); err != nil {
		t.Fatal(err)
	}
	return img
}

func TestCLIEEPROM(t *testing.T) {
	img := testEEPROM(t)
	out := filepath.Join(t.TempDir(), "sdcard")
	code, stdout, stderr := runCLI(t, "eeprom", "--image", img, "--out", out, "--tftp-ip", "192.0.2.1",
		"--set", "NET_BOOT_MAX_RETRIES=-1", "--set", "NETCONSOLE=6665@192.0.2.50/,6666@/", "--timestamp", "1700000000")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	got, err := os.ReadFile(filepath.Join(out, "pieeprom.bin"))
	if err != nil {
		t.Fatal(err)
	}
	im, err := eeprom.Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	want := "[all]\nBOOT_UART=0\nBOOT_ORDER=0xf21\nTFTP_IP=192.0.2.1\nNET_BOOT_MAX_RETRIES=-1\nNETCONSOLE=6665@192.0.2.50/,6666@/\n\n[none]\nFREEZE_VERSION=0\n"
	if im.Config() != want {
		t.Errorf("config:\n%s\nwant:\n%s", im.Config(), want)
	}
	sig, _ := os.ReadFile(filepath.Join(out, "pieeprom.sig"))
	if !bytes.Equal(sig, eeprom.Digest(got, time.Unix(1700000000, 0))) {
		t.Errorf("pieeprom.sig = %q", sig)
	}
	if rec, _ := os.ReadFile(filepath.Join(out, "recovery.bin")); string(rec) != "recovery code" {
		t.Errorf("recovery.bin = %q, want the one next to --image", rec)
	}
	if _, err := os.Stat(filepath.Join(out, "README.txt")); err != nil {
		t.Error(err)
	}
	sum := strings.Fields(string(sig))[0]
	for _, w := range []string{"Wrote " + out, "Raspberry Pi 4", "pieeprom.bin  524288 bytes, sha256 " + sum, "ts: 1700000000",
		"- BOOT_ORDER=0x1\n  + BOOT_ORDER=0xf21\n  + TFTP_IP=192.0.2.1\n", "SD card, then network, then restart", "FAT32"} {
		if !strings.Contains(stdout, w) {
			t.Errorf("stdout lacks %q:\n%s", w, stdout)
		}
	}
	if stderr != "" {
		t.Errorf("stderr: %s", stderr)
	}

	// Again, into the same folder, with the time from SOURCE_DATE_EPOCH.
	t.Setenv("SOURCE_DATE_EPOCH", "1234")
	code, stdout, stderr = runCLI(t, "eeprom", "--image", img, "--out", out)
	if code != 0 || !strings.Contains(stdout, "Replaced the recovery.bin, pieeprom.bin, pieeprom.sig, README.txt written there before") {
		t.Fatalf("second run: exit %d\n%s%s", code, stdout, stderr)
	}
	if sig, _ := os.ReadFile(filepath.Join(out, "pieeprom.sig")); !strings.HasSuffix(string(sig), "\nts: 1234\n") {
		t.Errorf("SOURCE_DATE_EPOCH=1234: pieeprom.sig = %q", sig)
	}

	// --upd writes pieeprom.upd and drops pieeprom.bin.
	code, stdout, _ = runCLI(t, "eeprom", "--image", img, "--out", out, "--upd")
	if _, err := os.Stat(filepath.Join(out, "pieeprom.bin")); code != 0 || err == nil || !strings.Contains(stdout, "Removed the old pieeprom.bin") || !strings.Contains(stdout, "RECOVERY.000") {
		t.Errorf("--upd: exit %d, pieeprom.bin stat %v\n%s", code, err, stdout)
	}

	// --print shows the image's own config, byte for byte.
	code, stdout, _ = runCLI(t, "eeprom", "--image", img, "--print")
	if code != 0 || stdout != testEEPROMConfig {
		t.Errorf("--print: exit %d, %q", code, stdout)
	}
	code, stdout, _ = runCLI(t, "eeprom", "--image", filepath.Join(out, "pieeprom.upd"), "--print")
	if code != 0 || !strings.Contains(stdout, "BOOT_ORDER=0xf21\n") {
		t.Errorf("--print of our image: exit %d, %q", code, stdout)
	}

	// A boot order without the network gets a warning.
	code, _, stderr = runCLI(t, "eeprom", "--image", img, "--out", filepath.Join(t.TempDir(), "sd"), "--boot-order", "0xf41")
	if code != 0 || !strings.Contains(stderr, "BOOT_ORDER=0xf41 has no network mode") {
		t.Errorf("0xf41: exit %d, stderr %q", code, stderr)
	}
}

func TestCLIEEPROMErrors(t *testing.T) {
	img := testEEPROM(t)
	noRecovery := filepath.Join(t.TempDir(), "pieeprom.bin")
	data, _ := os.ReadFile(img)
	if err := os.WriteFile(noRecovery, data, 0o644); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(t.TempDir(), "garbage.bin")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("not an image"), 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	busy := t.TempDir()
	if err := os.WriteFile(filepath.Join(busy, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		env  string // SOURCE_DATE_EPOCH
		out  string // --out, default a new folder
		code int
		want []string
	}{
		{"no image", []string{}, "", "", 2, []string{"no image", "--image", "firmware-2711"}},
		{"missing image", []string{"--image", filepath.Join(busy, "nope.bin")}, "", "", 1, []string{"--image", "nope.bin", "no such file"}},
		{"garbage image", []string{"--image", garbage}, "", "", 1, []string{"garbage.bin", "not a Raspberry Pi bootloader EEPROM image", "no section header at offset 0"}},
		{"no out", []string{"--image", img}, "", "-", 2, []string{"no output folder", "--out DIR"}},
		{"missing recovery.bin", []string{"--image", noRecovery}, "", "", 1, []string{"recovery.bin not found at " + filepath.Join(filepath.Dir(noRecovery), "recovery.bin"), "--recovery FILE", "firmware-2711/latest/", "rpi-boot-eeprom-recovery"}},
		{"missing --recovery", []string{"--image", img, "--recovery", filepath.Join(busy, "rec.bin")}, "", "", 1, []string{"recovery.bin not found at " + filepath.Join(busy, "rec.bin")}},
		{"bad boot order", []string{"--image", img, "--boot-order", "0xf0"}, "", "", 2, []string{"--boot-order", "BOOT_ORDER=0xf0", "0x0 (SD CARD DETECT) is deprecated"}},
		{"boot order not hex", []string{"--image", img, "--boot-order", "f21"}, "", "", 2, []string{"want hex like 0xf21"}},
		{"bad tftp ip", []string{"--image", img, "--tftp-ip", "192.0.2"}, "", "", 2, []string{"--tftp-ip", "TFTP_IP=192.0.2", "IPv4"}},
		{"ipv6 tftp ip", []string{"--image", img, "--tftp-ip", "2001:db8::1"}, "", "", 2, []string{"IPv4"}},
		{"bad client ip", []string{"--image", img, "--set", "CLIENT_IP=10.0.0.256"}, "", "", 2, []string{"--set CLIENT_IP=10.0.0.256", "IPv4"}},
		{"bad tftp prefix", []string{"--image", img, "--tftp-prefix", "3"}, "", "", 2, []string{"--tftp-prefix", "want 0"}},
		{"bad set", []string{"--image", img, "--set", "BOOT_ORDER"}, "", "", 2, []string{"--set BOOT_ORDER", "KEY=VALUE"}},
		{"lower-case key", []string{"--image", img, "--set", "boot_order=0xf21"}, "", "", 2, []string{"upper case"}},
		{"twice", []string{"--image", img, "--boot-order", "0xf2", "--set", "BOOT_ORDER=0xf21"}, "", "", 2, []string{"BOOT_ORDER given by both --boot-order and --set"}},
		{"set twice", []string{"--image", img, "--set", "TFTP_IP=192.0.2.1", "--set", "TFTP_IP=192.0.2.2"}, "", "", 2, []string{"--set TFTP_IP given twice"}},
		{"too big", []string{"--image", img, "--set", "PXE_OPTION43=" + strings.Repeat("x", 4100)}, "", "", 1, []string{"the limit is 4076 bytes"}},
		{"busy out", []string{"--image", img}, "", busy, 1, []string{busy, "not empty", "notes.txt", "new or empty directory"}},
		{"bad epoch", []string{"--image", img}, "yesterday", "", 2, []string{"SOURCE_DATE_EPOCH"}},
		{"bad timestamp", []string{"--image", img, "--timestamp", "-5"}, "", "", 2, []string{"--timestamp -5"}},
		{"stray arg", []string{"--image", img, "pieeprom.bin"}, "", "", 2, []string{`unexpected argument "pieeprom.bin"`}},
		{"bad flag", []string{"--imgae", img}, "", "", 2, []string{"unknown flag: --imgae", "ramboot help eeprom"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SOURCE_DATE_EPOCH", tc.env)
			args := append([]string{"eeprom"}, tc.args...)
			out := tc.out
			switch out {
			case "":
				out = filepath.Join(t.TempDir(), "sdcard")
				args = append(args, "--out", out)
			case "-":
				out = ""
			default:
				args = append(args, "--out", out)
			}
			code, _, stderr := runCLI(t, args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if out != "" {
				if _, err := os.Stat(filepath.Join(out, "pieeprom.bin")); err == nil {
					t.Errorf("a failed run wrote %s", filepath.Join(out, "pieeprom.bin"))
				}
			}
		})
	}
}

func TestCLIEEPROMHelp(t *testing.T) {
	code, out, _ := runCLI(t, "help", "eeprom")
	if code != 0 || !strings.Contains(out, "--boot-order") || !strings.Contains(out, "Examples:") || !strings.Contains(out, "firmware-2712") {
		t.Fatalf("help eeprom: exit %d\n%s", code, out)
	}
	code, _, stderr := runCLI(t, "eeprom", "--help")
	if code != 0 || !strings.Contains(stderr, "Examples:") {
		t.Fatalf("eeprom --help: exit %d\n%s", code, stderr)
	}
	code, out, _ = runCLI(t, "help")
	if code != 0 || !strings.Contains(out, "ramboot eeprom --image pieeprom.bin --out DIR") {
		t.Fatalf("help: exit %d\n%s", code, out)
	}
}

func TestLineDiff(t *testing.T) {
	got := strings.Join(lineDiff("a\nb\nc\n", "a\nB\nc\nd\n"), "|")
	if got != "- b|+ B|+ d" {
		t.Errorf("lineDiff = %q", got)
	}
	if d := lineDiff("", "x\n"); len(d) != 1 || d[0] != "+ x" {
		t.Errorf("lineDiff from empty = %q", d)
	}
	if d := lineDiff("x\n", "x\n"); len(d) != 0 {
		t.Errorf("lineDiff of equal = %q", d)
	}
}

// testKeyFiles writes an RSA-2048 key in the PEM forms --pubkey takes: the
// private key as openssl genrsa writes it (PKCS#1) and its public half as
// openssl rsa -pubout writes it (PKIX).
func testKeyFiles(t *testing.T, bits int) (key *rsa.PrivateKey, private, public string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	pkix, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	private, public = filepath.Join(dir, "boot-key.pem"), filepath.Join(dir, "boot-pub.pem")
	if err := os.WriteFile(private, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(public, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix}), 0o644); err != nil {
		t.Fatal(err)
	}
	return key, private, public
}

// readEEPROMOut parses the pieeprom.bin a run wrote into dir.
func readEEPROMOut(t *testing.T, dir string) *eeprom.Image {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "pieeprom.bin"))
	if err != nil {
		t.Fatal(err)
	}
	im, err := eeprom.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return im
}

// TestCLIEEPROMHTTP: --http-host sets HTTP boot up with its defaults
// (BOOT_ORDER=0xf27, HTTP_PORT=8080, HTTP_PATH=the board), embeds --pubkey,
// and warns, on stderr and in README.txt, that a public EEPROM update
// removes the key.
func TestCLIEEPROMHTTP(t *testing.T) {
	key, private, public := testKeyFiles(t, 2048)
	fp, err := eeprom.KeySHA256(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	img := testEEPROM(t)
	const warning = "A public EEPROM update removes the public key embedded here"
	run := func(t *testing.T, img string, args ...string) (out, stdout, stderr string) {
		t.Helper()
		out = filepath.Join(t.TempDir(), "sdcard")
		code, stdout, stderr := runCLI(t, append([]string{"eeprom", "--image", img, "--out", out, "--timestamp", "1700000000"}, args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d\nstdout:\n%s\nstderr:\n%s", args, code, stdout, stderr)
		}
		return out, stdout, stderr
	}
	config := func(mid string) string {
		return "[all]\nBOOT_UART=0\n" + mid + "\n[none]\nFREEZE_VERSION=0\n"
	}

	t.Run("defaults", func(t *testing.T) {
		out, stdout, stderr := run(t, img, "--http-host", "192.0.2.1", "--pubkey", public)
		im := readEEPROMOut(t, out)
		want := config("BOOT_ORDER=0xf27\nHTTP_HOST=192.0.2.1\nHTTP_PORT=8080\nHTTP_PATH=rpi4\n")
		if im.Config() != want {
			t.Errorf("config:\n%s\nwant:\n%s", im.Config(), want)
		}
		if got, ok := im.PublicKey(); !ok || !got.Equal(&key.PublicKey) {
			t.Errorf("pubkey.bin holds %v, %v; want the --pubkey key", got, ok)
		}
		for _, w := range []string{
			"BOOT_ORDER=0xf27: HTTP, then network, then restart.",
			"HTTP boot: the Pi fetches http://192.0.2.1:8080/rpi4/boot.sig, then http://192.0.2.1:8080/rpi4/boot.img.",
			"for CM4s pass --http-path cm4",
			"pubkey.bin: the RSA-2048 public key of " + public + ", sha256 " + fp,
		} {
			if !strings.Contains(stdout, w) {
				t.Errorf("stdout lacks %q:\n%s", w, stdout)
			}
		}
		if !strings.HasPrefix(stderr, "ramboot: warning: "+warning) || !strings.Contains(stderr, "rpi-eeprom-update") || !strings.Contains(stderr, "next mode of its BOOT_ORDER") {
			t.Errorf("stderr is not the key-loss warning:\n%s", stderr)
		}
		readme, _ := os.ReadFile(filepath.Join(out, "README.txt"))
		for _, w := range []string{eeprom.KeyLossWarning, "HTTP boot fetches http://192.0.2.1:8080/rpi4/boot.img", "sha256 " + fp, "    HTTP_HOST=192.0.2.1"} {
			if !strings.Contains(string(readme), w) {
				t.Errorf("README.txt lacks %q:\n%s", w, readme)
			}
		}
	})

	t.Run("flags and --set win", func(t *testing.T) {
		out, _, _ := run(t, img, "--http-host", "boot.rack-1.lan", "--http-port", "80", "--http-path", "images/cm4", "--pubkey", private, "--set", "BOOT_ORDER=0xf217")
		im := readEEPROMOut(t, out)
		want := config("BOOT_ORDER=0xf217\nHTTP_HOST=boot.rack-1.lan\nHTTP_PORT=80\nHTTP_PATH=images/cm4\n")
		if im.Config() != want {
			t.Errorf("config:\n%s\nwant:\n%s", im.Config(), want)
		}
		if got, ok := im.PublicKey(); !ok || !got.Equal(&key.PublicKey) {
			t.Errorf("the private key's public half is not in pubkey.bin")
		}
		out, _, _ = run(t, img, "--http-host", "192.0.2.1", "--pubkey", public, "--boot-order", "0xf7", "--set", "HTTP_PORT=8081")
		if got, want := readEEPROMOut(t, out).Config(), config("BOOT_ORDER=0xf7\nHTTP_HOST=192.0.2.1\nHTTP_PATH=rpi4\nHTTP_PORT=8081\n"); got != want {
			t.Errorf("config:\n%s\nwant:\n%s", got, want)
		}
	})

	t.Run("--set HTTP_HOST gets the same defaults", func(t *testing.T) {
		out, _, stderr := run(t, img, "--set", "HTTP_HOST=boot.lan", "--pubkey", public)
		if got, want := readEEPROMOut(t, out).Config(), config("BOOT_ORDER=0xf27\nHTTP_PORT=8080\nHTTP_PATH=rpi4\nHTTP_HOST=boot.lan\n"); got != want {
			t.Errorf("config:\n%s\nwant:\n%s", got, want)
		}
		if !strings.Contains(stderr, warning) {
			t.Errorf("no key-loss warning:\n%s", stderr)
		}
	})

	t.Run("pi5", func(t *testing.T) {
		out, stdout, _ := run(t, testEEPROMImage(t, eeprom.SizePi5, true), "--http-host", "192.0.2.1", "--pubkey", public)
		if got, _ := eeprom.Lookup(readEEPROMOut(t, out).Config(), "HTTP_PATH"); got != "rpi5" {
			t.Errorf("a Pi 5 image: HTTP_PATH=%s, want rpi5", got)
		}
		if strings.Contains(stdout, "cm4") {
			t.Errorf("a Pi 5 image gets the CM4 note:\n%s", stdout)
		}
	})

	t.Run("an image that has the key already", func(t *testing.T) {
		first, _, _ := run(t, img, "--http-host", "192.0.2.1", "--pubkey", public)
		dir := t.TempDir()
		again := filepath.Join(dir, "pieeprom.bin")
		data, _ := os.ReadFile(filepath.Join(first, "pieeprom.bin"))
		if err := os.WriteFile(again, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "recovery.bin"), []byte("r"), 0o644); err != nil {
			t.Fatal(err)
		}
		out, stdout, stderr := run(t, again, "--http-host", "192.0.2.2")
		if got, ok := readEEPROMOut(t, out).PublicKey(); !ok || !got.Equal(&key.PublicKey) {
			t.Errorf("the key in the image was lost")
		}
		if !strings.Contains(stdout, "pubkey.bin: keeps the key already in the image, sha256 "+fp) || !strings.Contains(stderr, warning) {
			t.Errorf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
		}
	})

	t.Run("warnings", func(t *testing.T) {
		_, _, stderr := run(t, img, "--http-host", "192.0.2.1", "--pubkey", public, "--boot-order", "0xf21")
		if !strings.Contains(stderr, "HTTP_HOST is set but BOOT_ORDER=0xf21 has no HTTP mode (7)") || !strings.Contains(stderr, "0xf27") {
			t.Errorf("0xf21 with --http-host:\n%s", stderr)
		}
		_, _, stderr = run(t, img, "--boot-order", "0xf7")
		if !strings.Contains(stderr, "BOOT_ORDER=0xf7 has HTTP (7) but no HTTP_HOST") || strings.Contains(stderr, warning) {
			t.Errorf("0xf7 without --http-host:\n%s", stderr)
		}
		_, _, stderr = run(t, img, "--http-host", "192.0.2.1", "--pubkey", public, "--set", "HTTP_CACERT_HASH="+strings.Repeat("ab", 32))
		if !strings.Contains(stderr, "HTTP_CACERT_HASH is set, so the Pi fetches over HTTPS") {
			t.Errorf("HTTP_CACERT_HASH:\n%s", stderr)
		}
		// --pubkey alone embeds the key, and warns that it can be lost.
		out, _, stderr := run(t, img, "--pubkey", public)
		if _, ok := readEEPROMOut(t, out).PublicKey(); !ok || !strings.Contains(stderr, warning) {
			t.Errorf("--pubkey alone: key %v, stderr:\n%s", ok, stderr)
		}
	})
}

func TestCLIEEPROMHTTPErrors(t *testing.T) {
	img := testEEPROM(t)
	noPubkey := testEEPROMImage(t, eeprom.SizePi4, false)
	_, _, public := testKeyFiles(t, 2048)
	_, small, _ := testKeyFiles(t, 1024)
	notPEM := filepath.Join(t.TempDir(), "key.pub")
	if err := os.WriteFile(notPEM, []byte("ssh-rsa AAAAB3Nza"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"no pubkey", []string{"--http-host", "192.0.2.1"}, 2, []string{"--http-host without --pubkey", "must be signed", "public key in its EEPROM", "--pubkey KEY.pem", "openssl genrsa -out boot-key.pem 2048"}},
		{"set host, no pubkey", []string{"--set", "HTTP_HOST=192.0.2.1"}, 2, []string{"--set HTTP_HOST without --pubkey", "openssl genrsa"}},
		{"upper case", []string{"--http-host", "Boot.LAN", "--pubkey", public}, 2, []string{"--http-host", "HTTP_HOST=Boot.LAN has upper-case letters", "silently ignores", "HTTP_HOST=boot.lan"}},
		{"set upper case", []string{"--set", "HTTP_HOST=Boot.LAN", "--pubkey", public}, 2, []string{"--set HTTP_HOST=Boot.LAN", "lower case: HTTP_HOST=boot.lan"}},
		{"scheme", []string{"--http-host", "http://192.0.2.1/rpi4", "--pubkey", public}, 2, []string{"without http://", "HTTP_HOST=192.0.2.1"}},
		{"host with port", []string{"--http-host", "192.0.2.1:8080", "--pubkey", public}, 2, []string{"the port goes in HTTP_PORT (--http-port)"}},
		{"ipv6 host", []string{"--http-host", "2001:db8::1", "--pubkey", public}, 2, []string{"no IPv6"}},
		{"bad ip", []string{"--http-host", "192.0.2.300", "--pubkey", public}, 2, []string{"HTTP_HOST=192.0.2.300 is not an IPv4 address"}},
		{"underscore", []string{"--http-host", "boot_server", "--pubkey", public}, 2, []string{`"_" is not allowed`, "lower-case letters, digits, '-' and '.'"}},
		{"empty host", []string{"--http-host", "", "--pubkey", public}, 2, []string{"--http-host is empty"}},
		{"port 0", []string{"--http-host", "192.0.2.1", "--http-port", "0", "--pubkey", public}, 2, []string{"--http-port", "HTTP_PORT=0", "1 to 65535", "8080"}},
		{"port too big", []string{"--http-host", "192.0.2.1", "--http-port", "65536", "--pubkey", public}, 2, []string{"HTTP_PORT=65536", "1 to 65535"}},
		{"port name", []string{"--http-host", "192.0.2.1", "--http-port", "http", "--pubkey", public}, 2, []string{"HTTP_PORT=http"}},
		{"path slashes", []string{"--http-host", "192.0.2.1", "--http-path", "/rpi4/", "--pubkey", public}, 2, []string{"--http-path", "leave out the leading and trailing '/'", "HTTP_PATH=rpi4"}},
		{"path space", []string{"--http-host", "192.0.2.1", "--http-path", "my images", "--pubkey", public}, 2, []string{"space"}},
		{"empty path", []string{"--http-host", "192.0.2.1", "--http-path", "", "--pubkey", public}, 2, []string{"HTTP_PATH is empty", "rpi4"}},
		{"dot-dot path", []string{"--http-host", "192.0.2.1", "--http-path", "a/../rpi4", "--pubkey", public}, 2, []string{`".." segment`, "never redirects"}},
		{"port without host", []string{"--http-port", "80"}, 2, []string{"--http-port needs --http-host", "ignores HTTP_PORT and HTTP_PATH"}},
		{"path without host", []string{"--http-path", "rpi4"}, 2, []string{"--http-path needs --http-host"}},
		{"host twice", []string{"--http-host", "192.0.2.1", "--set", "HTTP_HOST=192.0.2.2", "--pubkey", public}, 2, []string{"HTTP_HOST given by both --http-host and --set"}},
		{"missing key", []string{"--http-host", "192.0.2.1", "--pubkey", filepath.Join(t.TempDir(), "nope.pem")}, 1, []string{"--pubkey", "nope.pem", "no such file"}},
		{"not pem", []string{"--http-host", "192.0.2.1", "--pubkey", notPEM}, 1, []string{"--pubkey " + notPEM, "no PEM block", "openssl genrsa"}},
		{"1024 bits", []string{"--http-host", "192.0.2.1", "--pubkey", small}, 1, []string{"a 1024-bit RSA key", "RSA-2048 only", "openssl genrsa -out key.pem 2048"}},
		{"no pubkey.bin", []string{"--image", noPubkey, "--http-host", "192.0.2.1", "--pubkey", public}, 1, []string{"no pubkey.bin section", "firmware-2711/latest/"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "sdcard")
			args := append([]string{"eeprom", "--image", img, "--out", out}, tc.args...)
			code, _, stderr := runCLI(t, args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("a failed run created %s", out)
			}
		})
	}
}

// upstreamConfigScript is the copy of rpi-eeprom-config the eeprom tests
// run as a peer (eeprom/testdata/README.md says which).
const upstreamConfigScript = "../eeprom/testdata/rpi-eeprom-config"

// cryptodomePython returns a Python that can import Cryptodome, which
// rpi-eeprom-config --pubkey needs (as the eeprom package's test of the
// same name: pyenv's python3 may not see Debian's python3-pycryptodome).
func cryptodomePython(t *testing.T) string {
	t.Helper()
	var tried []string
	for _, py := range []string{"python3", "/usr/bin/python3"} {
		p, err := exec.LookPath(py)
		if err != nil {
			continue
		}
		if exec.Command(p, "-c", "from Cryptodome.PublicKey import RSA").Run() == nil {
			return p
		}
		tried = append(tried, p)
	}
	testenv.Skipf(t, "no Python here can import Cryptodome (tried %s), which rpi-eeprom-config --pubkey needs: apt-get install python3-pycryptodome (e2e/deps.sh does; make test runs it)", strings.Join(tried, ", "))
	return ""
}

// TestCLIEEPROMHTTPPeer: the pieeprom.bin 'ramboot eeprom --http-host
// --pubkey' writes is byte for byte what upstream `rpi-eeprom-config
// --config C --pubkey K --out OUT IN` writes for the same config text
// (the one in our image) and key, for a Pi 4 and a Pi 5 image and for a
// public and a private PEM. The peer is the vendored script, and also the
// current one when RAMBOOT_RPI_EEPROM names a raspberrypi/rpi-eeprom
// checkout (eeprom/testdata/README.md).
func TestCLIEEPROMHTTPPeer(t *testing.T) {
	if testing.Short() {
		t.Skip("runs upstream's Python script: not in -short (make unit)")
	}
	py := cryptodomePython(t)
	scripts := []string{upstreamConfigScript}
	if dir := os.Getenv("RAMBOOT_RPI_EEPROM"); dir != "" {
		scripts = append(scripts, filepath.Join(dir, "rpi-eeprom-config"))
	}
	_, private, public := testKeyFiles(t, 2048)
	for _, tc := range []struct {
		name string
		size int
		key  string
		args []string
	}{
		{"pi4-public", eeprom.SizePi4, public, []string{"--http-host", "192.0.2.1"}},
		{"pi4-private", eeprom.SizePi4, private, []string{"--http-host", "boot.lan", "--http-port", "80", "--http-path", "cm4", "--tftp-ip", "192.0.2.1"}},
		{"pi5-public", eeprom.SizePi5, public, []string{"--http-host", "10.0.0.1", "--set", "NET_INSTALL_ENABLED=0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := testEEPROMImage(t, tc.size, true)
			out := filepath.Join(t.TempDir(), "sdcard")
			code, stdout, stderr := runCLI(t, append([]string{"eeprom", "--image", img, "--out", out, "--pubkey", tc.key}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
			}
			ours, err := os.ReadFile(filepath.Join(out, "pieeprom.bin"))
			if err != nil {
				t.Fatal(err)
			}
			im, err := eeprom.Parse(ours)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			conf := filepath.Join(dir, "boot.conf")
			if err := os.WriteFile(conf, []byte(im.Config()), 0o644); err != nil {
				t.Fatal(err)
			}
			upstream := func(script string, extra ...string) []byte {
				t.Helper()
				up := filepath.Join(dir, "upstream.bin")
				cmd := exec.Command(py, append(append([]string{script, "--config", conf}, extra...), "--out", up, img)...)
				if b, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("%v: %v\n%s", cmd.Args, err, b)
				}
				data, err := os.ReadFile(up)
				if err != nil {
					t.Fatal(err)
				}
				return data
			}
			for _, script := range scripts {
				want := upstream(script, "--pubkey", tc.key)
				if !bytes.Equal(ours, want) {
					i := 0
					for i < len(ours) && i < len(want) && ours[i] == want[i] {
						i++
					}
					t.Errorf("differs from %s --pubkey at 0x%x (of %d and %d bytes)", script, i, len(ours), len(want))
				}
			}
			// The comparison sees the key: without --pubkey upstream's
			// image differs from ours, in pubkey.bin's sector only
			// (0x11000, testEEPROMImage).
			noKey := upstream(upstreamConfigScript)
			diff := 0
			for i := range ours {
				if ours[i] != noKey[i] {
					diff++
					if i < 0x11000 || i >= 0x12000 {
						t.Fatalf("without --pubkey upstream differs from ours at 0x%x, outside pubkey.bin", i)
					}
				}
			}
			if diff == 0 {
				t.Errorf("upstream's image without --pubkey equals ours: the key is not in ours")
			}
		})
	}
}
