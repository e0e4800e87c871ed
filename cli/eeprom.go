package cli

import (
	"context"
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
	fs.StringVar(&o.bootOrder, "boot-order", "0xf21", "BOOT_ORDER, read right to left: 1 SD card, 2 network, 4 USB, 6 NVMe, 7 HTTP, f restart")
	fs.StringVar(&o.tftpIP, "tftp-ip", "", "TFTP_IP: the TFTP server, instead of the one the DHCP reply names")
	fs.StringVar(&o.tftpPrefix, "tftp-prefix", "", "TFTP_PREFIX: per-Pi TFTP directory: 0 serial number, 1 TFTP_PREFIX_STR, 2 MAC address")
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

Examples:
  ramboot eeprom --image pieeprom-2025-05-08.bin --out sdcard
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
	settings, err := eepromSettings(flags, o)
	if err != nil {
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
	res, err := eeprom.WriteRecovery(o.out, eeprom.Recovery{Image: data, Recovery: rec, Settings: settings, Time: ts, Once: o.upd})
	if err != nil {
		return fmt.Errorf("eeprom: %w", err)
	}
	printEEPROMSummary(stdout, stderr, res, recPath, ts, o.upd)
	return nil
}

// eepromSettings gathers the flags' settings in order: BOOT_ORDER, TFTP_IP,
// TFTP_PREFIX, then the --set ones.
func eepromSettings(flags *pflag.FlagSet, o *eepromOpts) ([]eeprom.Setting, error) {
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
	var settings []eeprom.Setting
	for _, f := range []struct{ flag, key, val string }{
		{"boot-order", "BOOT_ORDER", o.bootOrder},
		{"tftp-ip", "TFTP_IP", o.tftpIP},
		{"tftp-prefix", "TFTP_PREFIX", o.tftpPrefix},
	} {
		if given[f.key] {
			if flags.Changed(f.flag) {
				return nil, fmt.Errorf("%w: eeprom: %s given by both --%s and --set: use one", errUsage, f.key, f.flag)
			}
			continue
		}
		if !flags.Changed(f.flag) && f.key != "BOOT_ORDER" {
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

func printEEPROMSummary(stdout, stderr io.Writer, res *eeprom.Result, recPath string, ts time.Time, once bool) {
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
	bootOrder, ok := eeprom.Lookup(res.NewConfig, "BOOT_ORDER")
	if ok {
		if modes, err := eeprom.BootOrderModes(bootOrder); err == nil {
			fmt.Fprintf(stdout, "BOOT_ORDER=%s: %s.\n", bootOrder, eeprom.DescribeBootOrder(bootOrder))
			net := false
			for _, m := range modes {
				net = net || m == 0x2 || m == 0x7
			}
			if !net {
				fmt.Fprintf(stderr, "ramboot: warning: BOOT_ORDER=%s has no network mode (2): these Pis will not network boot\n", bootOrder)
			}
		}
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
