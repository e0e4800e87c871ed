package eeprom

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// imgBuilder lays out a synthetic image the way the published ones are
// documented (rpi-eeprom-config's comments and code): 8-byte aligned
// sections from offset 0, padding sections up to 4 KiB boundaries, 0xff
// after the last section.
type imgBuilder struct {
	data []byte
	off  int
	rnd  *rand.Rand
}

func newBuilder(size int) *imgBuilder {
	return &imgBuilder{data: bytes.Repeat([]byte{0xff}, size), rnd: rand.New(rand.NewPCG(1, 2))}
}

func (b *imgBuilder) header(magic uint32, length int) {
	binary.BigEndian.PutUint32(b.data[b.off:], magic)
	binary.BigEndian.PutUint32(b.data[b.off+4:], uint32(length))
}

func (b *imgBuilder) advance(n int) { b.off = (b.off + n + 7) &^ 7 }

// blob is a section of opaque code, like bootcode or the main bootloader.
func (b *imgBuilder) blob(magic uint32, n int) {
	b.header(magic, n)
	for i := 0; i < n; i++ {
		b.data[b.off+8+i] = byte(b.rnd.UintN(256))
	}
	b.advance(8 + n)
}

// file is a FILE_MAGIC section; word is the 4 bytes between the name and
// the content.
func (b *imgBuilder) file(name string, word uint32, content []byte) {
	b.header(FileMagic, len(content)+16)
	copy(b.data[b.off+8:b.off+20], make([]byte, 12))
	copy(b.data[b.off+8:], name)
	binary.BigEndian.PutUint32(b.data[b.off+20:], word)
	copy(b.data[b.off+24:], content)
	// rpi-eeprom-config fills the alignment bytes with 0xff.
	b.advance(24 + len(content))
}

// padTo writes a padding section that ends at off.
func (b *imgBuilder) padTo(off int) {
	b.header(PadMagic, off-b.off-8)
	b.off = off
}

const baseConfig = "[all]\nBOOT_UART=0\nWAKE_ON_GPIO=1\nPOWER_OFF_ON_HALT=0\n"

type layout struct {
	name      string
	image     []byte
	confAt    int  // offset of the bootconf.txt header
	nextAt    int  // the next section that is not padding (or size-4096)
	maxConfig int  // the largest config that fits
	padAfter  bool // sections follow bootconf.txt, so padding sections are written
}

// layouts are the synthetic images the tests use.
func layouts() []layout {
	var ls []layout
	// Pi 4: code, config in its own sector followed by pubkey.bin and
	// bootconf.sig (as in signed-boot capable images), 0xff to the end.
	b := newBuilder(SizePi4)
	b.blob(0x55aaf00f, 0x5e00)
	b.blob(0x55aaf33f, 0x9001)
	b.padTo(0x10000)
	b.file(ConfigFile, 0x12345678, []byte(baseConfig))
	b.padTo(0x11000)
	b.file("pubkey.bin", 0, bytes.Repeat([]byte{0xa5}, 264))
	b.padTo(0x12000)
	b.file("bootconf.sig", 0, nil)
	ls = append(ls, layout{"pi4", b.data, 0x10000, 0x11000, 0x1000 - 24, true})

	// Pi 4 image with bootconf.txt as the last section.
	b = newBuilder(SizePi4)
	b.blob(0x55aaf00f, 0x7ff0)
	b.padTo(0x9000)
	b.file(ConfigFile, 0, []byte(baseConfig))
	ls = append(ls, layout{"pi4-config-last", b.data, 0x9000, SizePi4 - EraseAlign, MaxFileSize, false})

	// Pi 5: 2 MiB, more code, config followed by padding then another file.
	b = newBuilder(SizePi5)
	b.blob(0x55aaf00f, 0x1f000)
	b.blob(0x55aaf44f, 0x40003)
	b.padTo(0x70000)
	b.file(ConfigFile, 0xdeadbeef, []byte(baseConfig))
	b.padTo(0x72000)
	b.file("pubkey.bin", 0, bytes.Repeat([]byte{0x5a}, 264))
	ls = append(ls, layout{"pi5", b.data, 0x70000, 0x72000, MaxFileSize, true})
	return ls
}

// configOfLen makes a config of exactly n bytes.
func configOfLen(n int) string {
	var b strings.Builder
	b.WriteString("[all]\nBOOT_ORDER=0xf21\n")
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "# filler line %d\n", i)
	}
	return b.String()[:n]
}

func TestParseSynthetic(t *testing.T) {
	for _, l := range layouts() {
		t.Run(l.name, func(t *testing.T) {
			im, err := Parse(l.image)
			if err != nil {
				t.Fatal(err)
			}
			if got := im.Config(); got != baseConfig {
				t.Errorf("Config() = %q, want %q", got, baseConfig)
			}
			var conf *Section
			for _, s := range im.Sections() {
				if s.Name == ConfigFile {
					conf = &s
				}
			}
			if conf == nil || conf.Offset != l.confAt || conf.Magic != FileMagic || conf.Length != len(baseConfig)+16 {
				t.Fatalf("bootconf.txt section = %+v, want at 0x%x with length %d", conf, l.confAt, len(baseConfig)+16)
			}
			if im.Size() != len(l.image) {
				t.Errorf("Size() = %d", im.Size())
			}
			if want := map[int]string{SizePi4: "Raspberry Pi 4", SizePi5: "Raspberry Pi 5"}[len(l.image)]; !strings.HasPrefix(im.Model(), want) {
				t.Errorf("Model() = %q, want %s", im.Model(), want)
			}
			// Writing the same config back gives the same bytes, as
			// upstream's loopback test checks.
			if err := im.SetConfig(im.Config()); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(im.Bytes(), l.image) {
				t.Errorf("SetConfig(Config()) changed the image at 0x%x", firstDiff(im.Bytes(), l.image))
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestSetConfigGrowAndShrink(t *testing.T) {
	for _, l := range layouts() {
		t.Run(l.name, func(t *testing.T) {
			im, err := Parse(l.image)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range []int{200, l.maxConfig, 0, 3000, len(baseConfig)} {
				conf := configOfLen(n)
				if err := im.SetConfig(conf); err != nil {
					t.Fatalf("SetConfig(%d bytes): %v", n, err)
				}
				out := im.Bytes()
				if len(out) != len(l.image) {
					t.Fatalf("%d-byte config: image is %d bytes, want %d", n, len(out), len(l.image))
				}
				again, err := Parse(out)
				if err != nil {
					t.Fatalf("%d-byte config: re-Parse: %v", n, err)
				}
				if again.Config() != conf {
					t.Fatalf("%d-byte config: re-Parse gives a %d-byte config", n, len(again.Config()))
				}
				// Everything outside the config's room is untouched,
				// including the 4 bytes after the file name.
				if !bytes.Equal(out[:l.confAt], l.image[:l.confAt]) || !bytes.Equal(out[l.nextAt:], l.image[l.nextAt:]) {
					t.Fatalf("%d-byte config: bytes outside [0x%x, 0x%x) changed", n, l.confAt, l.nextAt)
				}
				if !bytes.Equal(out[l.confAt+8:l.confAt+24], l.image[l.confAt+8:l.confAt+24]) {
					t.Fatalf("%d-byte config: the name or the word after it changed", n)
				}
				// The rest of the room is a padding section (unless the
				// config is last) and 0xff.
				end := (l.confAt + 24 + n + 7) &^ 7
				rest := out[end:l.nextAt]
				if l.padAfter && len(rest) > 8 {
					if binary.BigEndian.Uint32(rest) != PadMagic || int(binary.BigEndian.Uint32(rest[4:])) != len(rest)-8 {
						t.Fatalf("%d-byte config: no padding section at 0x%x: % x", n, end, rest[:8])
					}
					rest = rest[8:]
				}
				if len(bytes.Trim(rest, "\xff")) != 0 || len(bytes.Trim(out[l.confAt+24+n:end], "\xff")) != 0 {
					t.Fatalf("%d-byte config: the room after it is not erased (0xff)", n)
				}
			}
			if err := im.SetConfig(baseConfig); err != nil {
				t.Fatal(err)
			}
			if again, _ := Parse(im.Bytes()); !bytes.Equal(again.Bytes(), l.image) {
				t.Errorf("back to the first config: the image differs at 0x%x", firstDiff(again.Bytes(), l.image))
			}
		})
	}
}

func TestSetConfigTooLarge(t *testing.T) {
	for _, l := range layouts() {
		t.Run(l.name, func(t *testing.T) {
			im, _ := Parse(l.image)
			err := im.SetConfig(configOfLen(MaxFileSize + 1))
			if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "4077 bytes, the limit is 4076 bytes") {
				t.Errorf("4077 bytes: %v", err)
			}
			if l.maxConfig < MaxFileSize {
				err := im.SetConfig(configOfLen(l.maxConfig + 1))
				if want := fmt.Sprintf("only %d fit before the next section at 0x%x", l.maxConfig, l.nextAt); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), want) {
					t.Errorf("%d bytes: %v, want %q", l.maxConfig+1, err, want)
				}
			}
			if !bytes.Equal(im.Bytes(), l.image) {
				t.Errorf("a refused SetConfig changed the image")
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	pi4 := layouts()[0].image
	garbage := make([]byte, SizePi4)
	rand.NewChaCha8([32]byte{3, 4}).Read(garbage)
	garbage[0] = 0x7f // not 0x55
	noConfig := newBuilder(SizePi4)
	noConfig.blob(Magic, 100)
	noConfig.file("pubkey.bin", 0, make([]byte, 264))
	corrupt := bytes.Clone(pi4)
	binary.BigEndian.PutUint32(corrupt[0x5e08:], 0x12345678) // the second section's magic
	for _, tc := range []struct {
		name string
		data []byte
		is   error
		want string
	}{
		{"empty", nil, ErrNotImage, "no section header at offset 0 (found nothing"},
		{"garbage", garbage, ErrNotImage, "no section header at offset 0 (found 7f"},
		{"text", []byte("[all]\nBOOT_ORDER=0xf21\n"), ErrNotImage, "no section header at offset 0"},
		{"truncated", pi4[:SizePi4-1], ErrNotImage, "524287 bytes, but images are 524288 bytes (Pi 4, firmware-2711/) or 2097152 bytes (Pi 5"},
		{"doubled", append(bytes.Clone(pi4), pi4...), ErrNotImage, "1048576 bytes"},
		{"no config", noConfig.data, ErrNoConfig, "none is the bootconf.txt file section"},
		{"corrupt", corrupt, ErrNotImage, "corrupted: word 12345678 at offset 0x5e08"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.data)
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse: %v\nwant %v containing %q", err, tc.is, tc.want)
			}
		})
	}
}

// needTool fails the test when a program the upstream peers need is
// missing: these tests must not pass by skipping.
func needTool(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Fatalf("%s not found: install %s (make test does); the upstream-peer tests need it", n, n)
		}
	}
}

// TestPythonPeer runs upstream rpi-eeprom-config (testdata/) on the same
// images and configs and wants the same bytes.
func TestPythonPeer(t *testing.T) {
	if testing.Short() {
		t.Skip("runs upstream's Python script hundreds of times (~30 s): not in -short (make unit)")
	}
	needTool(t, "python3")
	script, err := filepath.Abs("testdata/rpi-eeprom-config")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	py := func(args ...string) (string, error) {
		cmd := exec.Command("python3", append([]string{script}, args...)...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			return out.String(), fmt.Errorf("python3 rpi-eeprom-config %s: %v\n%s", strings.Join(args, " "), err, errb.String())
		}
		return out.String(), nil
	}
	write := func(t *testing.T, name string, data []byte) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Run("edge", func(t *testing.T) { t.Parallel(); pythonEdges(t, py, write, dir) })
	for _, l := range layouts() {
		t.Run(l.name, func(t *testing.T) {
			t.Parallel()
			im, err := Parse(l.image)
			if err != nil {
				t.Fatal(err)
			}
			pyIn := write(t, l.name+"-0.bin", l.image)
			if got, err := py(pyIn); err != nil || got != baseConfig {
				t.Fatalf("python reads %q, %v; want %q", got, err, baseConfig)
			}
			// A chain of edits, each applied to the previous output: grow,
			// fill the room, leave the smallest padding section, shrink,
			// empty, back.
			sizes := []int{300, l.maxConfig, l.maxConfig - 16, 10, 0, 2024, len(baseConfig) + 1}
			for step, n := range sizes {
				conf := configOfLen(n)
				cfg := write(t, fmt.Sprintf("%s-%d.txt", l.name, step+1), []byte(conf))
				pyOut := filepath.Join(dir, fmt.Sprintf("%s-%d.bin", l.name, step+1))
				if _, err := py("--config", cfg, "--out", pyOut, pyIn); err != nil {
					t.Fatal(err)
				}
				if err := im.SetConfig(conf); err != nil {
					t.Fatalf("step %d, %d bytes: %v", step+1, n, err)
				}
				want, err := os.ReadFile(pyOut)
				if err != nil {
					t.Fatal(err)
				}
				if got := im.Bytes(); !bytes.Equal(got, want) {
					i := firstDiff(got, want)
					t.Fatalf("step %d, %d-byte config: differs from rpi-eeprom-config at 0x%x: ours % x, python % x", step+1, n, i, got[i:min(i+16, len(got))], want[i:min(i+16, len(want))])
				}
				// And python reads back what we wrote.
				ours := write(t, fmt.Sprintf("%s-%d-ours.bin", l.name, step+1), im.Bytes())
				if got, err := py(ours); err != nil || got != conf {
					t.Fatalf("step %d: python reads %q from our image, %v; want %q", step+1, got, err, conf)
				}
				pyIn = pyOut
			}
			// Both refuse more than 4076 bytes.
			cfg := write(t, l.name+"-big.txt", []byte(configOfLen(MaxFileSize+1)))
			if _, err := py("--config", cfg, "--out", filepath.Join(dir, l.name+"-big.bin"), pyIn); err == nil || !strings.Contains(err.Error(), "The maximum size is 4076 bytes") {
				t.Errorf("python took a 4077-byte config: %v", err)
			}
		})
	}
}

// pythonEdges shows where SetConfig is stricter than rpi-eeprom-config.
func pythonEdges(t *testing.T, py func(...string) (string, error), write func(*testing.T, string, []byte) string, dir string) {
	// l's config is followed by pubkey.bin.
	l := layouts()[0]
	in := write(t, "edge-in.bin", l.image)
	edge := func(n int) []byte {
		t.Helper()
		cfg := write(t, fmt.Sprintf("edge-%d.txt", n), []byte(configOfLen(n)))
		out := filepath.Join(dir, fmt.Sprintf("edge-%d.bin", n))
		if _, err := py("--config", cfg, "--out", out, in); err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(out)
		im, _ := Parse(l.image)
		if err := im.SetConfig(configOfLen(n)); err == nil {
			t.Errorf("SetConfig(%d bytes) took a config upstream mangles", n)
		}
		return data
	}
	// A section ending in the 4 bytes before the next passes upstream's
	// check (20+len) and overwrites the next section's magic.
	if _, err := Parse(edge(l.maxConfig + 4)); !errors.Is(err, ErrNotImage) || !strings.Contains(err.Error(), "corrupted") {
		t.Errorf("upstream's +4 output parses (%v): has upstream changed its size check?", err)
	}
	// Exactly 8 bytes left: 0xff without a padding header ends the chain
	// and pubkey.bin is gone.
	im, err := Parse(edge(l.maxConfig - 12))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := im.File("pubkey.bin"); ok {
		t.Errorf("upstream's 8-byte-tail output still shows pubkey.bin: %+v", im.Sections())
	}
}
