package cli

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ramboot/ramboot/eeprom"
)

const testEEPROMConfig = "[all]\nBOOT_UART=0\nBOOT_ORDER=0x1\n\n[none]\nFREEZE_VERSION=0\n"

// testEEPROM writes a synthetic 512 KiB image (a code section, bootconf.txt
// in its own 4 KiB sector with a padding section after it, 0xff to the end)
// and a recovery.bin next to it, and returns the image's path.
func testEEPROM(t *testing.T) string {
	t.Helper()
	data := bytes.Repeat([]byte{0xff}, eeprom.SizePi4)
	be := binary.BigEndian
	be.PutUint32(data[0:], eeprom.Magic)
	be.PutUint32(data[4:], 0x3000)
	for i := 8; i < 8+0x3000; i++ {
		data[i] = byte(i * 7)
	}
	be.PutUint32(data[0x3008:], eeprom.PadMagic)
	be.PutUint32(data[0x300c:], 0x4000-0x3008-8)
	c := 0x4000
	be.PutUint32(data[c:], eeprom.FileMagic)
	be.PutUint32(data[c+4:], uint32(len(testEEPROMConfig)+16))
	copy(data[c+8:c+20], "bootconf.txt")
	copy(data[c+24:], testEEPROMConfig)
	p := (c + 24 + len(testEEPROMConfig) + 7) &^ 7
	be.PutUint32(data[p:], eeprom.PadMagic)
	be.PutUint32(data[p+4:], uint32(0x5000-p-8))
	be.PutUint32(data[0x5000:], eeprom.FileMagic)
	be.PutUint32(data[0x5004:], 16)
	copy(data[0x5008:], "bootconf.sig")

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
