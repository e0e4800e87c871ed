// Package eeprom edits the bootloader config inside a Raspberry Pi 4 or 5
// EEPROM image (pieeprom.bin) and writes the SD-card folder that flashes it,
// so a Pi can be set up for network boot without first booting Raspberry Pi
// OS and running `rpi-eeprom-config --edit` on it.
//
// It does in Go what the upstream tools do:
//
//   - Parse, Image.Config and Image.SetConfig are `rpi-eeprom-config
//     pieeprom.bin` and `rpi-eeprom-config --config boot.conf --out new.bin
//     pieeprom.bin`: same section walk, same limits, same bytes out (a test
//     runs the Python tool on the same input and compares).
//   - Image.SetPublicKey is `--pubkey key.pem` added to that: pubkey.bin
//     becomes the key's modulus (256 bytes) and exponent (8 bytes), both
//     little-endian, which the bootloader checks boot.img's boot.sig with.
//   - Digest is `rpi-eeprom-digest -i pieeprom.bin -o pieeprom.sig`, and
//     SignDigest is `rpi-eeprom-digest -k key.pem -i boot.img -o boot.sig`:
//     the .sig an HTTP-boot boot.img needs. VerifySig checks one as
//     `rpi-eeprom-digest -k pub.pem -i boot.img -v boot.sig` does, and its
//     sha256 line too.
//   - WriteRecovery lays out the files of the official
//     rpi-boot-eeprom-recovery zip: recovery.bin, pieeprom.bin, pieeprom.sig.
//
// Example:
//
//	img, err := eeprom.Parse(pieepromBin)
//	if err != nil {
//		return err
//	}
//	cfg := eeprom.MergeConfig(img.Config(), []eeprom.Setting{
//		{Key: "BOOT_ORDER", Value: "0xf21"}, // SD card, then network, repeat
//	})
//	if err := img.SetConfig(cfg); err != nil {
//		return err
//	}
//	os.WriteFile("pieeprom.bin", img.Bytes(), 0o644)
//	os.WriteFile("pieeprom.sig", eeprom.Digest(img.Bytes(), time.Now()), 0o644)
//
// or, for the whole folder, WriteRecovery(dir, Recovery{...}).
//
// # Image format
//
// Checked against these upstream sources (github.com/raspberrypi/rpi-eeprom
// unless named otherwise):
//
//   - rpi-eeprom-config at 86759b04b22173e10186139ac3ae4debcd0d7252
//     (2026-08-19; the file last changed in 53989398, "Support AB updates",
//     committed 2026-05-21). Before that change: the copy in
//     github.com/Noltari/rpi-eeprom at 8d1e47c9 (vendored in testdata/),
//     and older upstream versions 12907d02 (Pi 4 only, 2024-byte limit,
//     padding to the next 4 KiB boundary) and 008d5061.
//   - rpi-eeprom-digest at 01300506bf710e00281f541853232d98d2e95684.
//   - rpi-eeprom-update at 016c5025 and imager/make-release at 77e4322e:
//     how update and recovery folders are laid out.
//   - github.com/raspberrypi/documentation boot-eeprom.adoc ("Bootloader
//     update files") and eeprom-bootloader.adoc (BOOT_ORDER, TFTP_*, the
//     static IP settings).
//
// The facts taken from them:
//
//   - An image is 512 KiB (BCM2711: Pi 4, Pi 400, CM4) or 2 MiB (BCM2712:
//     Pi 5, Pi 500, CM5) (VALID_IMAGE_SIZES).
//   - It is a chain of sections from offset 0. Each starts with two
//     big-endian 32-bit words, a magic and a length; magic&0xfffff00f is
//     0x55aaf00f for every section (MAGIC_MASK, MAGIC), and the next section
//     starts at the 8-byte aligned offset after header+length. A magic of 0
//     or 0xffffffff ends the chain; any other word that fails the mask means
//     the image is corrupt.
//   - 0x55aaf11f (FILE_MAGIC) sections are the modifiable files (bootconf.txt,
//     pubkey.bin, bootconf.sig): after the 8-byte header come a 12-byte
//     NUL-padded name and 4 more bytes, then the content; the length word is
//     len(content)+16. 0x55aafeef (PAD_MAGIC) sections are padding.
//   - Only files in [64 KiB, 64 KiB + 988 KiB) are edited (READ_ONLY_SIZE,
//     PARTITION_SIZE). A Pi 5 image since 2026 has an A/B layout: a
//     read-only part (its own updatetime) below 64 KiB, partition A with
//     bootsys, the code and the files, then partition B, one empty padding
//     section at 0x107000.
//   - Replacing a file writes the new length and content, fills 0xff to the
//     next 8-byte boundary, then fills up to the next section that is not
//     padding (or, without one, to the end of partition A or the last 4 KiB,
//     which the bootloader keeps for itself, whichever comes first) with a
//     padding section header and 0xff, or only 0xff when fewer than 8 bytes
//     are left or the file is the last section. So a bigger config grows
//     into the padding after it, the image keeps its size, and partition B
//     is not touched.
//   - A file's content is at most 4076 bytes (one 4 KiB erase sector less the
//     20-byte header, MAX_FILE_SIZE). Configs over 2024 bytes were the old
//     limit; older bootloaders cannot report them through `vcgencmd
//     bootloader_config`.
//
// One deliberate difference, where upstream writes an image whose later
// sections are lost (SetFile returns an error instead): upstream checks the
// room left for a file as 20+len(content) where the section really takes
// 24+len(content), so a content that ends in the 4 bytes before the next
// section overwrites that section's magic. (Until 53989398 upstream also
// wrote no padding header when exactly 8 bytes were left, which ended the
// chain there; it now writes a zero-length padding section, and so does
// SetFile.)
//
// And one where upstream refuses: in an image without the A/B layout, a
// file below 64 KiB (no official image has one) is edited where it is, as
// upstream did before its A/B change; in an A/B image SetFile refuses it
// too.
//
// # Update folder
//
// At power on the boot ROM runs recovery.bin from the SD card instead of the
// EEPROM. recovery.bin flashes pieeprom.upd if there is one, else
// pieeprom.bin, after checking it against pieeprom.sig (hex sha256, then
// "ts: UNIXTIME"). After pieeprom.upd it renames itself to RECOVERY.000 and
// reboots (that is what rpi-eeprom-update stages on a running Pi); after
// pieeprom.bin it stops, HDMI green and the LED blinking rapidly (that is the
// official recovery zip). WriteRecovery writes pieeprom.bin, so one card
// updates any number of Pis; Recovery.Once writes pieeprom.upd instead.
package eeprom

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// The section format constants of rpi-eeprom-config.
const (
	Magic      = 0x55aaf00f // every section's magic, under MagicMask
	MagicMask  = 0xfffff00f
	FileMagic  = 0x55aaf11f // a modifiable file: bootconf.txt, pubkey.bin, bootconf.sig
	PadMagic   = 0x55aafeef // padding
	EraseAlign = 4096       // the flash erase sector; the image's last one is the bootloader's

	fileHdrLen  = 20 // magic, length, name
	filenameLen = 12
	// A file section's content starts after the header and 4 more bytes;
	// its length word counts the name, those 4 bytes and the content.
	fileDataOff = 4 + fileHdrLen

	// MaxFileSize is the largest content of a modifiable file, so the
	// largest config: one erase sector less the file header.
	MaxFileSize = EraseAlign - fileHdrLen
	// LegacyConfigSize was the config limit before MaxFileSize; older
	// bootloaders cannot report a bigger config via vcgencmd.
	LegacyConfigSize = 2024

	SizePi4 = 512 << 10 // BCM2711 images: Pi 4, Pi 400, CM4
	SizePi5 = 2 << 20   // BCM2712 images: Pi 5, Pi 500, CM5

	// ConfigFile is the name of the config section.
	ConfigFile = "bootconf.txt"

	// PartitionStart and PartitionEnd bound the files SetFile edits
	// (rpi-eeprom-config's READ_ONLY_SIZE and READ_ONLY_SIZE +
	// PARTITION_SIZE). A Pi 5 A/B image holds a read-only part below
	// PartitionStart, partition A (the files) up to PartitionEnd, then an
	// empty partition B; a Pi 4 image ends before PartitionEnd.
	PartitionStart = 64 << 10
	PartitionEnd   = PartitionStart + 988<<10
)

var (
	// ErrNotImage is returned by Parse for data that is not a bootloader
	// EEPROM image.
	ErrNotImage = errors.New("not a Raspberry Pi bootloader EEPROM image")
	// ErrNoConfig is returned by Parse for an image without bootconf.txt.
	ErrNoConfig = errors.New("no bootconf.txt section")
	// ErrTooLarge is returned by SetConfig and SetFile when the content does
	// not fit.
	ErrTooLarge = errors.New("too large")
)

// A Section is one entry in an image's section chain.
type Section struct {
	Magic  uint32
	Offset int    // of the 8-byte header
	Length int    // the header's length word: the bytes after the header
	Name   string // FileMagic sections only, NULs removed
}

// An Image is a parsed bootloader EEPROM image.
type Image struct {
	data     []byte
	sections []Section
}

// Parse checks and indexes an EEPROM image: a 512 KiB (Pi 4) or 2 MiB (Pi 5)
// pieeprom.bin from the rpi-eeprom releases. It keeps a copy of image.
func Parse(image []byte) (*Image, error) {
	if len(image) < 8 || binary.BigEndian.Uint32(image)&MagicMask != Magic {
		first := "nothing"
		if len(image) >= 4 {
			first = fmt.Sprintf("%08x", binary.BigEndian.Uint32(image))
		}
		return nil, fmt.Errorf("%w: no section header at offset 0 (found %s; an image starts with a word w where w&0x%08x == 0x%08x); use a pieeprom-*.bin from github.com/raspberrypi/rpi-eeprom", ErrNotImage, first, uint32(MagicMask), uint32(Magic))
	}
	if len(image) != SizePi4 && len(image) != SizePi5 {
		return nil, fmt.Errorf("%w: %d bytes, but images are %d bytes (Pi 4, firmware-2711/) or %d bytes (Pi 5, firmware-2712/)", ErrNotImage, len(image), SizePi4, SizePi5)
	}
	im := &Image{data: append([]byte(nil), image...)}
	if err := im.parse(); err != nil {
		return nil, err
	}
	i := im.find(ConfigFile)
	if i < 0 {
		return nil, fmt.Errorf("%w: the image has %d sections but none is the %s file section; rpi-eeprom-config cannot edit it either", ErrNoConfig, len(im.sections), ConfigFile)
	}
	return im, nil
}

// parse is rpi-eeprom-config's BootloaderImage.parse, with bounds checks
// where Python would raise or read short.
func (im *Image) parse() error {
	im.sections = im.sections[:0]
	size := len(im.data)
	for off := 0; off < size; {
		if off+8 > size {
			return fmt.Errorf("%w: corrupted: the section header at 0x%x runs past the end", ErrNotImage, off)
		}
		magic := binary.BigEndian.Uint32(im.data[off:])
		length := int(binary.BigEndian.Uint32(im.data[off+4:]))
		if magic == 0 || magic == 0xffffffff {
			break
		}
		if magic&MagicMask != Magic {
			return fmt.Errorf("%w: corrupted: word %08x at offset 0x%x is not a section header", ErrNotImage, magic, off)
		}
		s := Section{Magic: magic, Offset: off, Length: length}
		if magic == FileMagic {
			if off+fileDataOff > size || length < filenameLen+4 || off+8+length > size {
				return fmt.Errorf("%w: corrupted: the file section at 0x%x (length %d) does not fit in the image", ErrNotImage, off, length)
			}
			s.Name = strings.ReplaceAll(string(im.data[off+8:off+fileHdrLen]), "\x00", "")
		}
		im.sections = append(im.sections, s)
		off = (off + 8 + length + 7) &^ 7
	}
	return nil
}

// find returns the index of the file section name, or -1.
func (im *Image) find(name string) int {
	for i, s := range im.sections {
		if s.Magic == FileMagic && s.Name == name {
			return i
		}
	}
	return -1
}

// Size is the image size in bytes.
func (im *Image) Size() int { return len(im.data) }

// Model names the boards the image is for, from its size.
func (im *Image) Model() string {
	if len(im.data) == SizePi5 {
		return "Raspberry Pi 5 (BCM2712: Pi 5, Pi 500, CM5)"
	}
	return "Raspberry Pi 4 (BCM2711: Pi 4, Pi 400, CM4)"
}

// IsAB reports whether the image has the A/B layout of current Pi 5 images:
// a read-only part below PartitionStart, then partition A, which starts
// with a bootsys file section, then partition B (rpi-eeprom-config's
// _is_ab_image).
func (im *Image) IsAB() bool {
	for _, s := range im.sections {
		if s.Magic == FileMagic && s.Name == "bootsys" {
			return true
		}
	}
	return false
}

// Sections lists the image's sections in order.
func (im *Image) Sections() []Section { return append([]Section(nil), im.sections...) }

// File returns the content of a file section.
func (im *Image) File(name string) ([]byte, bool) {
	i := im.find(name)
	if i < 0 {
		return nil, false
	}
	s := im.sections[i]
	start := s.Offset + fileDataOff
	return append([]byte(nil), im.data[start:start+s.Length-filenameLen-4]...), true
}

// Config returns the bootloader config (bootconf.txt), as
// `rpi-eeprom-config pieeprom.bin` prints it.
func (im *Image) Config() string {
	b, _ := im.File(ConfigFile)
	return string(b)
}

// SetConfig replaces the bootloader config exactly as `rpi-eeprom-config
// --config` does. The image keeps its size; the config may be at most
// MaxFileSize bytes and must fit before the next section.
func (im *Image) SetConfig(text string) error {
	return im.SetFile(ConfigFile, []byte(text))
}

// SetFile replaces the content of a file section: rpi-eeprom-config's
// update_file and update. Like upstream since its A/B change, it edits
// only the file in the first partition (offsets [PartitionStart,
// PartitionEnd)), and the padding after it stops at PartitionEnd when no
// other section follows the file, so the second partition of a Pi 5 A/B
// image is left alone.
func (im *Image) SetFile(name string, content []byte) error {
	if len(content) > MaxFileSize {
		return fmt.Errorf("%s is %w: %d bytes, the limit is %d bytes (one %d-byte flash sector less the %d-byte file header)", name, ErrTooLarge, len(content), MaxFileSize, EraseAlign, fileHdrLen)
	}
	i := -1
	for k, s := range im.sections {
		if s.Offset >= PartitionStart && s.Offset < PartitionEnd && s.Magic == FileMagic && s.Name == name {
			i = k
			break
		}
	}
	if i < 0 {
		k := im.find(name)
		if k < 0 {
			return fmt.Errorf("the image has no %s file section", name)
		}
		if im.IsAB() {
			return fmt.Errorf("the image has its %s file section at 0x%x, in the read-only part of an A/B image; rpi-eeprom-config edits files in [0x%x, 0x%x) only", name, im.sections[k].Offset, PartitionStart, PartitionEnd)
		}
		// Not an A/B image: edit it where it is, as rpi-eeprom-config did
		// before its A/B change (the package doc).
		i = k
	}
	size := len(im.data)
	hdr := im.sections[i].Offset
	isLast := i == len(im.sections)-1
	// The next section that is not padding bounds the file; without one,
	// the end of the first partition or the bootloader's scratch sector
	// at the end of the image does, whichever comes first. (Upstream does
	// not cap a following non-padding section at the partition end.)
	next := min(size-EraseAlign, PartitionEnd)
	for _, s := range im.sections[i+1:] {
		if s.Magic != PadMagic {
			next = s.Offset
			break
		}
	}
	end := hdr + fileDataOff + len(content)
	if end > size-EraseAlign {
		return fmt.Errorf("%s is %w: %d bytes at offset 0x%x would reach the bootloader's last %d bytes of the image", name, ErrTooLarge, len(content), hdr, EraseAlign)
	}
	if end > next {
		return fmt.Errorf("%s is %w: %d bytes, but only %d fit before the next section at 0x%x", name, ErrTooLarge, len(content), next-hdr-fileDataOff, next)
	}

	binary.BigEndian.PutUint32(im.data[hdr+4:], uint32(len(content)+filenameLen+4))
	copy(im.data[hdr+fileDataOff:], content)
	pad := end
	for pad%8 != 0 {
		im.data[pad] = 0xff
		pad++
	}
	// A padding section even when only its 8-byte header fits (length 0):
	// 0xff there would end the section chain.
	padBytes := next - pad
	if padBytes >= 8 && !isLast {
		padBytes -= 8
		binary.BigEndian.PutUint32(im.data[pad:], PadMagic)
		binary.BigEndian.PutUint32(im.data[pad+4:], uint32(padBytes))
		pad += 8
	}
	for k := 0; k < padBytes; k++ {
		im.data[pad+k] = 0xff
	}
	if err := im.parse(); err != nil {
		return fmt.Errorf("internal error: the image does not parse after writing %s: %v", name, err)
	}
	return nil
}

// Bytes returns a copy of the image.
func (im *Image) Bytes() []byte { return append([]byte(nil), im.data...) }
