package eeprom

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The files of an update folder (boot-eeprom.adoc, "Bootloader update
// files"), and the README.txt ramboot adds.
const (
	RecoveryName = "recovery.bin" // run by the boot ROM from the SD card instead of the EEPROM
	ImageName    = "pieeprom.bin" // flashed; then recovery.bin stops: LED blinks rapidly, HDMI green
	UpdateName   = "pieeprom.upd" // flashed; then recovery.bin renames itself RECOVERY.000 and reboots
	SigName      = "pieeprom.sig" // the sha256 and timestamp of the image file
	ReadmeName   = "README.txt"
)

// OwnFiles are the names WriteRecovery writes or replaces; it refuses a
// directory holding anything else.
var OwnFiles = []string{RecoveryName, ImageName, UpdateName, SigName, ReadmeName}

// ErrDirNotEmpty is returned by WriteRecovery for a directory that holds
// files it did not write.
var ErrDirNotEmpty = errors.New("directory is not empty")

// Recovery is what WriteRecovery writes.
type Recovery struct {
	Image    []byte    // an official pieeprom-*.bin
	Recovery []byte    // recovery.bin from the same rpi-eeprom release
	Settings []Setting // merged into the image's config with MergeConfig
	Time     time.Time // the ts: line of pieeprom.sig; zero means now
	// Once writes pieeprom.upd instead of pieeprom.bin: recovery.bin then
	// renames itself to RECOVERY.000 after flashing and reboots the Pi into
	// its new boot order, so the card updates one Pi only. With
	// pieeprom.bin, as in the official recovery zip, the card stays
	// usable for the next Pi.
	Once bool
	// PublicKey, when set, is embedded in pubkey.bin after the config is
	// written, as `rpi-eeprom-config --config C --pubkey K` does: the key
	// the bootloader checks boot.sig with when HTTP_HOST is set.
	PublicKey *rsa.PublicKey
}

// KeyLossWarning says what a public EEPROM update does to an image with
// HTTP boot set up: WriteRecovery puts it in README.txt, and `ramboot
// eeprom` prints it.
const KeyLossWarning = `A public EEPROM update removes the public key embedded here: rpi-eeprom-update
(run by Raspberry Pi OS's updates) flashes Raspberry Pi's own image with the
config carried over but no key, and an official recovery card or Raspberry Pi
Imager's bootloader image also resets the config, HTTP_HOST, HTTP_PORT and
HTTP_PATH included. HTTP boot then fails (boot.sig no longer verifies), and
the Pi goes on to the next mode of its BOOT_ORDER (TFTP with 0xf27). To put
the key and the HTTP settings back, boot the Pi from a card written by
'ramboot eeprom' again. FREEZE_VERSION=1 (--set FREEZE_VERSION=1) keeps
rpi-eeprom-update from flashing a public image.
`

// A Result tells what WriteRecovery did.
type Result struct {
	Dir       string
	Model     string   // Image.Model
	ImageFile string   // ImageName or UpdateName
	Files     []string // written, in order
	Replaced  []string // of Files, those that existed before
	Removed   []string // stale files of ours removed (the other image name)
	OldConfig string
	NewConfig string
	Size      int    // of the image
	SHA256    string // of the image file, as in pieeprom.sig
	// KeySHA256 is KeySHA256 of the key in the written image's pubkey.bin
	// ("" when it holds none); KeyAdded says it is r.PublicKey.
	KeySHA256 string
	KeyAdded  bool
}

// WriteRecovery writes an SD-card folder that flashes r.Image, with
// r.Settings merged into its config, to the EEPROM of the Pi that boots it:
// recovery.bin, pieeprom.bin (or pieeprom.upd), pieeprom.sig and a
// README.txt. dir is created if needed; if it exists it may hold only
// files named in OwnFiles, which are replaced.
func WriteRecovery(dir string, r Recovery) (*Result, error) {
	for _, s := range r.Settings {
		if err := ValidateSetting(s); err != nil {
			return nil, err
		}
	}
	img, err := Parse(r.Image)
	if err != nil {
		return nil, err
	}
	if len(r.Recovery) == 0 {
		return nil, fmt.Errorf("recovery.bin is empty; take it from the same rpi-eeprom release as the image")
	}
	if _, err := Parse(r.Recovery); err == nil {
		return nil, fmt.Errorf("the recovery.bin given is an EEPROM image, not recovery.bin; are the two files swapped?")
	}
	res := &Result{Dir: dir, Model: img.Model(), OldConfig: img.Config(), ImageFile: ImageName}
	res.NewConfig = MergeConfig(res.OldConfig, r.Settings)
	if err := img.SetConfig(res.NewConfig); err != nil {
		return nil, err
	}
	if r.PublicKey != nil {
		if _, ok := img.File(PubkeyFile); !ok {
			return nil, fmt.Errorf("the image has no %s section to embed the public key in; take a current pieeprom-*.bin from firmware-2711/latest/ (Pi 4) or firmware-2712/latest/ (Pi 5) of github.com/raspberrypi/rpi-eeprom", PubkeyFile)
		}
		if err := img.SetPublicKey(r.PublicKey); err != nil {
			return nil, err
		}
		res.KeyAdded = true
	}
	if pub, ok := img.PublicKey(); ok {
		res.KeySHA256, _ = KeySHA256(pub)
	}
	data := img.Bytes()
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	sig := Digest(data, r.Time)
	res.Size = len(data)
	res.SHA256 = strings.SplitN(string(sig), "\n", 2)[0]
	stale := UpdateName
	if r.Once {
		res.ImageFile, stale = UpdateName, ImageName
	}

	existing, err := checkDir(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// recovery.bin prefers pieeprom.upd, so a stale one would win.
	if existing[stale] {
		if err := os.Remove(filepath.Join(dir, stale)); err != nil {
			return nil, err
		}
		res.Removed = append(res.Removed, stale)
	}
	files := []struct {
		name string
		data []byte
	}{
		{RecoveryName, r.Recovery},
		{res.ImageFile, data},
		{SigName, sig},
		{ReadmeName, []byte(readme(img, res, r))},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, 0o644); err != nil {
			return nil, err
		}
		res.Files = append(res.Files, f.name)
		if existing[f.name] {
			res.Replaced = append(res.Replaced, f.name)
		}
	}
	return res, nil
}

// checkDir returns which of OwnFiles dir holds, or an error if it holds
// anything else. A missing dir holds nothing.
func checkDir(dir string) (map[string]bool, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	var foreign []string
	for _, e := range entries {
		if e.Type().IsRegular() && slices.Contains(OwnFiles, e.Name()) {
			have[e.Name()] = true
			continue
		}
		foreign = append(foreign, e.Name())
	}
	if len(foreign) > 0 {
		if len(foreign) > 3 {
			foreign = append(foreign[:3], fmt.Sprintf("and %d more", len(foreign)-3))
		}
		return nil, fmt.Errorf("%s: %w (it has %s): use a new or empty directory; only a folder holding nothing but %s is replaced", dir, ErrDirNotEmpty, strings.Join(foreign, ", "), strings.Join(OwnFiles, ", "))
	}
	return have, nil
}

func readme(img *Image, res *Result, r Recovery) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Bootloader EEPROM update card for the %s\n", img.Model())
	b.WriteString("Written by 'ramboot eeprom'.\n\n")
	b.WriteString("It writes the bootloader EEPROM of each Pi booted from it with " + res.ImageFile + ",\nwhose bootloader config is:\n\n")
	for _, l := range strings.Split(strings.TrimRight(res.NewConfig, "\n"), "\n") {
		b.WriteString("    " + l + "\n")
	}
	if v, ok := Lookup(res.NewConfig, "BOOT_ORDER"); ok {
		if _, err := BootOrderModes(v); err == nil {
			fmt.Fprintf(&b, "\nBOOT_ORDER=%s: the Pi tries %s.\n", v, DescribeBootOrder(v))
		}
	}
	if u, ok := HTTPBootURL(res.NewConfig); ok {
		fmt.Fprintf(&b, "\nHTTP boot fetches %s and boot.sig from the same directory.\n", u)
	}
	if res.KeySHA256 != "" {
		fmt.Fprintf(&b, "The public key that checks boot.sig is in pubkey.bin: sha256 %s\n(of its 264-byte pubkey.bin form).\n", res.KeySHA256)
	}
	if _, ok := HTTPBootURL(res.NewConfig); ok || res.KeySHA256 != "" {
		b.WriteString("\n" + KeyLossWarning)
	}
	b.WriteString(`
To update a Pi:

1. Copy every file in this folder to the top folder of a FAT32-formatted
   SD card (the FAT partition must be smaller than 32 GB). Nothing else
   needs to be on the card.
2. Power the Pi off, insert the card, power it on.
3. Wait at least 10 seconds.
`)
	if r.Once {
		b.WriteString(`4. On success recovery.bin renames itself to RECOVERY.000 and the Pi reboots
   with the new bootloader, following its boot order. The card is then
   used up: rename RECOVERY.000 back to recovery.bin to update another Pi.
   An unsuccessful update shows a red HDMI screen and an error pattern on
   the green LED.
`)
	} else {
		b.WriteString(`4. On success the green LED blinks rapidly and without end, and an HDMI
   display turns green. A red screen or another blink pattern means the
   update failed (see "LED warning flash codes" in the Raspberry Pi
   documentation).
5. Power the Pi off and take the card out: it boots with the new bootloader.
   The same card updates the next Pi.
`)
	}
	b.WriteString(`
A Compute Module 4 or 4S cannot load recovery.bin from its eMMC: update it
with rpiboot (github.com/raspberrypi/usbboot) instead.

Files:
  recovery.bin  run by the boot ROM from the SD card instead of the EEPROM; it
                flashes ` + res.ImageFile + `
  ` + res.ImageFile + `  the bootloader EEPROM image with the config above
  pieeprom.sig  its sha256 and a timestamp, checked by recovery.bin
`)
	return b.String()
}
