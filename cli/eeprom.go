package cli

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/ramboot/ramboot/eeprom"
)

type eepromOpts struct {
	image, recovery, out string
	bootOrder            string
	tftpIP, tftpPrefix   string
	httpHost, httpPort   string
	httpPath, pubkey     string
	set                  []string
	print, upd           bool
	timestamp            int64
}

func eepromFlags(stderr io.Writer) (*pflag.FlagSet, *eepromOpts) {
	o := &eepromOpts{}
	fs := pflag.NewFlagSet("eeprom", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.image, "image", "", "the official bootloader image: pieeprom-DATE.bin from rpi-eeprom's firmware-2711/ (Pi 4) or firmware-2712/ (Pi 5)")
	fs.StringVar(&o.recovery, "recovery", "", "recovery.bin from the same release (default: recovery.bin next to --image)")
	fs.StringVarP(&o.out, "out", "o", "", "the folder to write, to be copied to a FAT32 SD card")
	fs.StringVar(&o.bootOrder, "boot-order", "0xf21", "BOOT_ORDER, read right to left: 1 SD card, 2 network (TFTP), 4 USB, 6 NVMe, 7 HTTP, f restart (default with --http-host: 0xf27, HTTP, then TFTP, then restart)")
	fs.StringVar(&o.tftpIP, "tftp-ip", "", "TFTP_IP: the TFTP server, instead of the one the DHCP reply names")
	fs.StringVar(&o.tftpPrefix, "tftp-prefix", "", "TFTP_PREFIX: per-Pi TFTP directory: 0 serial number, 1 TFTP_PREFIX_STR, 2 MAC address")
	fs.StringVar(&o.httpHost, "http-host", "", "HTTP_HOST: set up HTTP boot from 'ramboot serve' at this IPv4 address or lower-case host name; needs --pubkey")
	fs.StringVar(&o.httpPort, "http-port", "8080", "HTTP_PORT, with --http-host: ramboot serve's HTTP port (the bootloader's own default is 80)")
	fs.StringVar(&o.httpPath, "http-path", "", "HTTP_PATH, with --http-host: the directory of boot.img on the server (default: the board, rpi4 for a Pi 4 image, rpi5 for a Pi 5 image; pass cm4 for CM4s)")
	fs.StringVar(&o.pubkey, "pubkey", "", "a PEM RSA-2048 key (public, or the private key boot.img is signed with) to embed in pubkey.bin, as rpi-eeprom-config --pubkey does")
	fs.StringArrayVar(&o.set, "set", nil, "any other bootloader setting, KEY=VALUE; repeatable")
	fs.BoolVar(&o.print, "print", false, "print the image's bootloader config and exit")
	fs.BoolVar(&o.upd, "upd", false, "write pieeprom.upd instead of pieeprom.bin: the Pi reboots into its new boot order after flashing, but the card then updates only one Pi")
	fs.Int64Var(&o.timestamp, "timestamp", 0, "Unix seconds for the ts: line of pieeprom.sig (default $SOURCE_DATE_EPOCH, else now)")
	return fs, o
}

func eepromUsage(fs *pflag.FlagSet) string {
	return `Usage: ramboot eeprom --image pieeprom.bin --out DIR [flags]

Writes an SD-card folder that sets the bootloader EEPROM of a Raspberry Pi 4
or 5 up for network boot, without booting Raspberry Pi OS on each Pi to run
'rpi-eeprom-config --edit': recovery.bin, pieeprom.bin with the new config
in it, pieeprom.sig and a README.txt, as in the official
rpi-boot-eeprom-recovery zip. Copy the folder to a FAT32 SD card, boot each
Pi from it once and wait for the green LED to blink rapidly.

Take pieeprom-DATE.bin and recovery.bin from the same directory of
github.com/raspberrypi/rpi-eeprom: firmware-2711/latest/ for a Pi 4, Pi 400
or CM4, firmware-2712/latest/ for a Pi 5, Pi 500 or CM5.

The default boot order, 0xf21, tries the SD card, then the network, and
repeats. Settings already in the image's config are changed in place, new
ones added; everything else is kept.

HTTP boot (Pi 4 bootloader 2022-03-10 or later, Pi 5): --http-host points
the Pi at 'ramboot serve', which answers GET /<board>/boot.sig and
/<board>/boot.img on port 8080. Every file the Pi fetches over HTTP must be
signed, and with your own HTTP_HOST the bootloader checks boot.sig with the
public key in its EEPROM, so --http-host needs --pubkey: the key that
'ramboot build --http-boot --sign-key' signs boot.img with (make one:
openssl genrsa -out boot-key.pem 2048). The boot order then defaults to
0xf27: HTTP, then TFTP, then restart. A public EEPROM update removes the
key again (README.txt on the card says more).

Examples:
  ramboot eeprom --image pieeprom-2025-05-08.bin --out sdcard
  ramboot eeprom --image pieeprom.bin --out sdcard --http-host 192.0.2.1 --pubkey boot-key.pem
  ramboot eeprom --image pieeprom.bin --out sdcard --boot-order 0xf2 --tftp-prefix 2
  ramboot eeprom --image pieeprom.bin --out sdcard --tftp-ip 192.0.2.1 --set NET_BOOT_MAX_RETRIES=-1
  ramboot eeprom --image pieeprom.bin --print

Flags:
` + fs.FlagUsages()
}

const recoveryHelp = "take recovery.bin from the same directory of github.com/raspberrypi/rpi-eeprom as the image (firmware-2711/latest/ for a Pi 4, firmware-2712/latest/ for a Pi 5) or from an rpi-boot-eeprom-recovery-*.zip, and pass it with --recovery FILE or put it next to --image"

func runEEPROM(_ context.Context, args []string, stdout, stderr io.Writer) error {
	flags, o := eepromFlags(stderr)
	flags.Usage = func() { fmt.Fprint(stderr, eepromUsage(flags)) }
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: eeprom: %v (see 'ramboot help eeprom')", errUsage, err)
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("%w: eeprom: unexpected argument %q (flags only; see 'ramboot help eeprom')", errUsage, flags.Arg(0))
	}
	if o.image == "" {
		return fmt.Errorf("%w: eeprom: no image: pass --image pieeprom.bin, from firmware-2711/ (Pi 4) or firmware-2712/ (Pi 5) of github.com/raspberrypi/rpi-eeprom", errUsage)
	}
	data, err := os.ReadFile(o.image)
	if err != nil {
		return fmt.Errorf("eeprom: --image: %w", err)
	}
	img, err := eeprom.Parse(data)
	if err != nil {
		return fmt.Errorf("eeprom: %s: %w", o.image, err)
	}
	if o.print {
		fmt.Fprint(stdout, img.Config())
		return nil
	}
	if o.out == "" {
		return fmt.Errorf("%w: eeprom: no output folder: pass --out DIR (a new or empty directory)", errUsage)
	}
	settings, err := eepromSettings(flags, o, img)
	if err != nil {
		return err
	}
	var pub *rsa.PublicKey
	if o.pubkey != "" {
		pem, err := os.ReadFile(o.pubkey)
		if err != nil {
			return fmt.Errorf("eeprom: --pubkey: %w", err)
		}
		if pub, err = eeprom.ParsePublicKey(pem); err != nil {
			return fmt.Errorf("eeprom: --pubkey %s: %w", o.pubkey, err)
		}
	}
	if err := needKey(flags, img, settings, pub); err != nil {
		return err
	}
	ts, err := eepromTime(flags, o)
	if err != nil {
		return err
	}
	recPath := o.recovery
	if recPath == "" {
		recPath = filepath.Join(filepath.Dir(o.image), eeprom.RecoveryName)
	}
	rec, err := os.ReadFile(recPath)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("eeprom: recovery.bin not found at %s: %s", recPath, recoveryHelp)
	}
	if err != nil {
		return fmt.Errorf("eeprom: --recovery: %w", err)
	}
	res, err := eeprom.WriteRecovery(o.out, eeprom.Recovery{Image: data, Recovery: rec, Settings: settings, Time: ts, Once: o.upd, PublicKey: pub})
	if err != nil {
		return fmt.Errorf("eeprom: %w", err)
	}
	printEEPROMSummary(stdout, stderr, res, recPath, ts, o)
	return nil
}

// needKey refuses a config with HTTP_HOST when no public key will be in
// pubkey.bin: neither --pubkey nor one already in the image.
func needKey(flags *pflag.FlagSet, img *eeprom.Image, settings []eeprom.Setting, pub *rsa.PublicKey) error {
	if _, ok := eeprom.HTTPBootURL(eeprom.MergeConfig(img.Config(), settings)); !ok || pub != nil {
		return nil
	}
	if _, ok := img.PublicKey(); ok {
		return nil
	}
	from := "--set HTTP_HOST"
	if flags.Changed("http-host") {
		from = "--http-host"
	}
	return fmt.Errorf("%w: eeprom: %s without --pubkey: every file the Pi fetches over HTTP must be signed, and with your own HTTP_HOST the bootloader checks boot.sig with the public key in its EEPROM, which the image does not have; pass --pubkey KEY.pem, the key 'ramboot build --http-boot --sign-key KEY.pem' signs boot.img with (make one: openssl genrsa -out boot-key.pem 2048)", errUsage, from)
}

// boardOf is the board whose directory 'ramboot serve' serves boot.img
// from for img's Pis: rpi4 for a BCM2711 image (a CM4's is cm4), rpi5 for a
// BCM2712 one.
func boardOf(img *eeprom.Image) string {
	if img.Size() == eeprom.SizePi5 {
		return "rpi5"
	}
	return "rpi4"
}

// eepromSettings gathers the flags' settings in order: BOOT_ORDER, TFTP_IP,
// TFTP_PREFIX, HTTP_HOST, HTTP_PORT, HTTP_PATH, then the --set ones. With
// HTTP_HOST (--http-host or --set), BOOT_ORDER defaults to 0xf27 and
// HTTP_PORT and HTTP_PATH are always written; without it --http-port and
// --http-path are refused.
func eepromSettings(flags *pflag.FlagSet, o *eepromOpts, img *eeprom.Image) ([]eeprom.Setting, error) {
	var extra []eeprom.Setting
	given := map[string]bool{}
	for _, kv := range o.set {
		s, err := eeprom.ParseSetting(kv)
		if err != nil {
			return nil, fmt.Errorf("%w: eeprom: --set %s: %v", errUsage, kv, err)
		}
		if given[s.Key] {
			return nil, fmt.Errorf("%w: eeprom: --set %s given twice", errUsage, s.Key)
		}
		given[s.Key] = true
		extra = append(extra, s)
	}
	httpBoot := strings.TrimSpace(o.httpHost) != ""
	for _, e := range extra {
		httpBoot = httpBoot || e.Key == "HTTP_HOST" && e.Value != ""
	}
	if flags.Changed("http-host") && !httpBoot {
		return nil, fmt.Errorf("%w: eeprom: --http-host is empty: give the server's IPv4 address or lower-case host name", errUsage)
	}
	for _, f := range []string{"http-port", "http-path"} {
		if flags.Changed(f) && !httpBoot {
			return nil, fmt.Errorf("%w: eeprom: --%s needs --http-host: without HTTP_HOST the bootloader ignores HTTP_PORT and HTTP_PATH and fetches Raspberry Pi's own network-install image", errUsage, f)
		}
	}
	bootOrder, httpPath := o.bootOrder, o.httpPath
	if httpBoot && !flags.Changed("boot-order") {
		bootOrder = "0xf27"
	}
	if !flags.Changed("http-path") {
		httpPath = boardOf(img)
	}
	var settings []eeprom.Setting
	for _, f := range []struct {
		flag, key, val string
		always         bool // written even when the flag is not given
	}{
		{"boot-order", "BOOT_ORDER", bootOrder, true},
		{"tftp-ip", "TFTP_IP", o.tftpIP, false},
		{"tftp-prefix", "TFTP_PREFIX", o.tftpPrefix, false},
		{"http-host", "HTTP_HOST", o.httpHost, false},
		{"http-port", "HTTP_PORT", o.httpPort, httpBoot},
		{"http-path", "HTTP_PATH", httpPath, httpBoot},
	} {
		if given[f.key] {
			if flags.Changed(f.flag) {
				return nil, fmt.Errorf("%w: eeprom: %s given by both --%s and --set: use one", errUsage, f.key, f.flag)
			}
			continue
		}
		if !flags.Changed(f.flag) && !f.always {
			continue
		}
		s := eeprom.Setting{Key: f.key, Value: strings.TrimSpace(f.val)}
		if err := eeprom.ValidateSetting(s); err != nil {
			return nil, fmt.Errorf("%w: eeprom: --%s: %v", errUsage, f.flag, err)
		}
		settings = append(settings, s)
	}
	return append(settings, extra...), nil
}

func eepromTime(flags *pflag.FlagSet, o *eepromOpts) (time.Time, error) {
	if flags.Changed("timestamp") {
		if o.timestamp < 0 {
			return time.Time{}, fmt.Errorf("%w: eeprom: --timestamp %d is before 1970", errUsage, o.timestamp)
		}
		return time.Unix(o.timestamp, 0), nil
	}
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return time.Time{}, fmt.Errorf("%w: SOURCE_DATE_EPOCH=%q is not a number of seconds", errUsage, s)
		}
		return time.Unix(n, 0), nil
	}
	return time.Now(), nil
}

func printEEPROMSummary(stdout, stderr io.Writer, res *eeprom.Result, recPath string, ts time.Time, o *eepromOpts) {
	once := o.upd
	dir := res.Dir
	fmt.Fprintf(stdout, "Wrote %s for the %s:\n", dir, res.Model)
	for _, f := range res.Files {
		info := ""
		switch f {
		case eeprom.RecoveryName:
			if st, err := os.Stat(filepath.Join(dir, f)); err == nil {
				info = fmt.Sprintf("%d bytes, from %s", st.Size(), recPath)
			}
		case res.ImageFile:
			info = fmt.Sprintf("%d bytes, sha256 %s", res.Size, res.SHA256)
		case eeprom.SigName:
			info = fmt.Sprintf("ts: %d", ts.Unix())
		case eeprom.ReadmeName:
			info = "what to do with the card"
		}
		fmt.Fprintf(stdout, "  %-13s %s\n", f, info)
	}
	if len(res.Replaced) > 0 {
		fmt.Fprintf(stdout, "Replaced the %s written there before.\n", strings.Join(res.Replaced, ", "))
	}
	for _, f := range res.Removed {
		fmt.Fprintf(stdout, "Removed the old %s (recovery.bin would have used it).\n", f)
	}
	fmt.Fprintf(stdout, "Bootloader config, %d of at most %d bytes:\n", len(res.NewConfig), eeprom.MaxFileSize)
	diff := lineDiff(res.OldConfig, res.NewConfig)
	if len(diff) == 0 {
		fmt.Fprintln(stdout, "  unchanged from the image")
	}
	for _, l := range diff {
		fmt.Fprintf(stdout, "  %s\n", l)
	}
	url, httpBoot := eeprom.HTTPBootURL(res.NewConfig)
	bootOrder, ok := eeprom.Lookup(res.NewConfig, "BOOT_ORDER")
	if ok {
		if modes, err := eeprom.BootOrderModes(bootOrder); err == nil {
			fmt.Fprintf(stdout, "BOOT_ORDER=%s: %s.\n", bootOrder, eeprom.DescribeBootOrder(bootOrder))
			net, http := false, false
			for _, m := range modes {
				net = net || m == 0x2 || m == 0x7
				http = http || m == 0x7
			}
			switch {
			case !net:
				fmt.Fprintf(stderr, "ramboot: warning: BOOT_ORDER=%s has no network mode (2): these Pis will not network boot\n", bootOrder)
			case httpBoot && !http:
				fmt.Fprintf(stderr, "ramboot: warning: HTTP_HOST is set but BOOT_ORDER=%s has no HTTP mode (7): these Pis will not boot over HTTP; leave out --boot-order for 0xf27 (HTTP, then TFTP, then restart)\n", bootOrder)
			case !httpBoot && http:
				fmt.Fprintf(stderr, "ramboot: warning: BOOT_ORDER=%s has HTTP (7) but no HTTP_HOST: the Pi would fetch Raspberry Pi's own network-install image, not ramboot's; add --http-host\n", bootOrder)
			}
		}
	}
	if httpBoot {
		fmt.Fprintf(stdout, "HTTP boot: the Pi fetches %sboot.sig, then %s.\n", strings.TrimSuffix(url, "boot.img"), url)
		if o.httpPath == "" {
			if p, _ := eeprom.Lookup(res.NewConfig, "HTTP_PATH"); p == "rpi4" {
				fmt.Fprintln(stdout, "  HTTP_PATH=rpi4 is the rpi4 board's directory; for CM4s pass --http-path cm4.")
			}
		}
		if strings.HasPrefix(url, "https:") {
			fmt.Fprintln(stderr, "ramboot: warning: HTTP_CACERT_HASH is set, so the Pi fetches over HTTPS (Pi 5 only); ramboot serve speaks plain HTTP")
		}
	}
	switch {
	case res.KeyAdded:
		fmt.Fprintf(stdout, "pubkey.bin: the RSA-2048 public key of %s, sha256 %s (of its 264-byte pubkey.bin form).\n", o.pubkey, res.KeySHA256)
	case res.KeySHA256 != "":
		fmt.Fprintf(stdout, "pubkey.bin: keeps the key already in the image, sha256 %s.\n", res.KeySHA256)
	}
	if httpBoot || res.KeySHA256 != "" {
		fmt.Fprint(stderr, "ramboot: warning: "+eeprom.KeyLossWarning)
	}
	if p, _ := eeprom.Lookup(res.NewConfig, "TFTP_PREFIX"); p == "1" {
		if s, _ := eeprom.Lookup(res.NewConfig, "TFTP_PREFIX_STR"); s == "" {
			fmt.Fprintln(stderr, "ramboot: warning: TFTP_PREFIX=1 without TFTP_PREFIX_STR: add --set TFTP_PREFIX_STR=dir/")
		}
	}
	if len(res.NewConfig) > eeprom.LegacyConfigSize {
		fmt.Fprintf(stderr, "ramboot: warning: the config is over %d bytes; older bootloaders cannot report it through 'vcgencmd bootloader_config'\n", eeprom.LegacyConfigSize)
	}
	if once {
		fmt.Fprintf(stdout, "Next: copy the files in %s to a FAT32 SD card and boot one Pi from it: it flashes, renames recovery.bin to RECOVERY.000 and reboots with the new boot order (README.txt has the steps).\n", dir)
	} else {
		fmt.Fprintf(stdout, "Next: copy the files in %s to a FAT32 SD card, boot each Pi from it and wait for the green LED to blink rapidly (README.txt has the steps).\n", dir)
	}
}

// lineDiff lists the lines removed ("- ") and added ("+ ") from a to b, by
// longest common subsequence (configs are a few dozen lines).
func lineDiff(a, b string) []string {
	al := strings.Split(strings.TrimSuffix(a, "\n"), "\n")
	bl := strings.Split(strings.TrimSuffix(b, "\n"), "\n")
	if a == "" {
		al = nil
	}
	if b == "" {
		bl = nil
	}
	// lcs[i][j] is the LCS length of al[i:] and bl[j:].
	lcs := make([][]int, len(al)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(bl)+1)
	}
	for i := len(al) - 1; i >= 0; i-- {
		for j := len(bl) - 1; j >= 0; j-- {
			if al[i] == bl[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out []string
	i, j := 0, 0
	for i < len(al) || j < len(bl) {
		switch {
		case i < len(al) && j < len(bl) && al[i] == bl[j]:
			i++
			j++
		case i < len(al) && (j == len(bl) || lcs[i+1][j] >= lcs[i][j+1]):
			out = append(out, "- "+al[i])
			i++
		default:
			out = append(out, "+ "+bl[j])
			j++
		}
	}
	return out
}
