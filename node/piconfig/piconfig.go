// Package piconfig reads a Raspberry Pi boot partition the way the Pi
// firmware does: config.txt with its conditional sections and includes,
// then the kernel, initramfs and command line it names, so that ramboot
// can kexec the OS installed on a Pi's SD card, eMMC, USB or NVMe disk.
//
// What it follows (Raspberry Pi documentation, "config.txt"):
//
//   - [all] ends every filter; a model filter ([pi4], [pi5], [cm4],
//     [pi400], [pi3], [pi3+], [pi02], [cm5]) replaces the previous model
//     filter; [none] matches nothing; any other filter ([tryboot],
//     [gpio4=1], [EDID=...], [0x12345678], [HDMI:1], [board-type=...])
//     is a condition ramboot cannot see and is taken as false.
//   - include FILE, at most 8 deep and MaxIncludes in all.
//   - kernel=, initramfs FILE [followkernel|ADDR], auto_initramfs=1,
//     os_prefix=, cmdline=, arm_64bit=.
//   - The kernel's default name: kernel_2712.img then kernel8.img on a
//     Pi 5; kernel8.img when 64-bit (arm_64bit defaults to 1 on the Pi 4
//     family and when the kernel= name is a known 64-bit one); a 32-bit
//     kernel cannot be kexec'd from ramboot's arm64 kernel and is an error.
//   - auto_initramfs: the initramfs named after the kernel (kernel8.img:
//     initramfs8; kernel_2712.img: initramfs_2712), if it exists.
//   - cmdline.txt: its first line.
//
// Every file is read with a bound while reading (MaxConfig): the
// partition may be hostile. Names stay inside fsys (give it an os.Root's
// or bootfs's FS, never os.DirFS, to keep symbolic links inside too).
//
// The device tree stays the running one (the firmware's, with its
// overlays applied): kexec hands it to the new kernel.
package piconfig

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
)

// Boot is what the firmware would start.
type Boot struct {
	Kernel  string // path inside the partition
	Initrd  string // "" for none
	Cmdline string
	// Sources names the files read, for messages: config.txt, includes,
	// the cmdline file.
	Sources []string
}

// Model is the board as config.txt's model filters see it: the filters
// that match it, lower case without brackets (pi4, pi400, cm4...). An
// empty Model (not a Pi: QEMU's virt machine, say) matches only [all].
type Model []string

// ModelFromCompatible maps the device tree's root compatible strings
// (/proc/device-tree/compatible, NUL-separated) to a Model.
func ModelFromCompatible(compatible []byte) Model {
	for _, c := range strings.Split(string(compatible), "\x00") {
		switch c {
		case "raspberrypi,5-model-b":
			return Model{"pi5"}
		case "raspberrypi,5-compute-module":
			return Model{"pi5", "cm5"}
		case "raspberrypi,500":
			return Model{"pi5", "pi500"}
		case "raspberrypi,4-model-b":
			return Model{"pi4"}
		case "raspberrypi,400":
			return Model{"pi4", "pi400"}
		case "raspberrypi,4-compute-module":
			return Model{"pi4", "cm4"}
		case "raspberrypi,3-model-b-plus", "raspberrypi,3-model-a-plus":
			return Model{"pi3", "pi3+"}
		case "raspberrypi,3-model-b", "raspberrypi,3-compute-module":
			return Model{"pi3"}
		case "raspberrypi,model-zero-2-w":
			return Model{"pi02", "pi3"}
		}
	}
	return nil
}

// RunningModel reads the running machine's Model.
func RunningModel() Model {
	b, _ := os.ReadFile("/proc/device-tree/compatible")
	return ModelFromCompatible(b)
}

func (m Model) is(f string) bool {
	for _, x := range m {
		if x == f {
			return true
		}
	}
	return false
}

func (m Model) family() string {
	switch {
	case m.is("pi5"):
		return "pi5"
	case m.is("pi4"):
		return "pi4"
	case len(m) > 0:
		return m[0]
	}
	return ""
}

var modelFilters = map[string]bool{
	"pi1": true, "pi2": true, "pi3": true, "pi3+": true, "pi4": true, "pi400": true,
	"pi5": true, "pi500": true, "cm4": true, "cm4s": true, "cm5": true, "pi0": true,
	"pi0w": true, "pi02": true,
}

const (
	// MaxConfig bounds config.txt, each include and cmdline.txt.
	MaxConfig = 256 << 10
	// MaxIncludes bounds the include lines followed in all.
	MaxIncludes = 32
)

// ErrNotPi says the partition has no config.txt: not a Pi boot partition.
var ErrNotPi = errors.New("no config.txt")

// settings are the keys that matter, as the last matching line left them.
type settings struct {
	kernel, initramfs, osPrefix, cmdline string
	autoInitramfs                        bool
	arm64                                string // "", "0", "1"
}

// Read interprets the boot partition at fsys for model m.
func Read(fsys fs.FS, m Model) (Boot, error) {
	var st settings
	var b Boot
	r := reader{fsys: fsys, m: m, st: &st, boot: &b}
	if err := r.file("config.txt", 0); err != nil {
		return b, err
	}
	// The kernel.
	if st.arm64 == "0" {
		return b, errors.New("config.txt: arm_64bit=0 starts a 32-bit kernel, which ramboot's 64-bit kernel cannot kexec: set arm_64bit=1 or install a 64-bit OS")
	}
	kernel := st.kernel
	if kernel == "" {
		switch {
		case m.family() == "pi5" && r.exists(st.osPrefix+"kernel_2712.img"):
			kernel = "kernel_2712.img"
		case m.family() == "pi4" || m.family() == "pi5" || len(m) == 0 || st.arm64 == "1":
			kernel = "kernel8.img"
		default:
			return b, fmt.Errorf("config.txt: on a %s the firmware starts a 32-bit kernel unless arm_64bit=1; ramboot can only kexec a 64-bit one", m.family())
		}
	} else if strings.HasPrefix(kernel, "kernel7") || kernel == "kernel.img" {
		return b, fmt.Errorf("config.txt: kernel=%s is a 32-bit kernel, which ramboot's 64-bit kernel cannot kexec", kernel)
	}
	b.Kernel = st.osPrefix + kernel
	if !r.exists(b.Kernel) {
		return b, fmt.Errorf("config.txt names kernel %s, which is not on the partition", b.Kernel)
	}
	// The initramfs.
	switch {
	case st.initramfs != "":
		b.Initrd = st.osPrefix + st.initramfs
		if !r.exists(b.Initrd) {
			return b, fmt.Errorf("config.txt names initramfs %s, which is not on the partition", b.Initrd)
		}
	case st.autoInitramfs:
		name := strings.TrimSuffix(kernel, ".img")
		if strings.HasPrefix(name, "kernel") {
			if p := st.osPrefix + "initramfs" + strings.TrimPrefix(name, "kernel"); r.exists(p) {
				b.Initrd = p
			}
		}
	}
	// The command line: the first line of the cmdline file.
	cf := st.cmdline
	if cf == "" {
		cf = "cmdline.txt"
	}
	cf = st.osPrefix + cf
	data, err := readFile(fsys, cf)
	switch {
	case err == nil:
		line, _, _ := strings.Cut(string(data), "\n")
		b.Cmdline = strings.TrimSpace(line)
		b.Sources = append(b.Sources, cf)
	case errors.Is(err, fs.ErrNotExist):
		// The firmware boots with an empty command line.
	default:
		return b, fmt.Errorf("%s: %w", cf, err)
	}
	return b, nil
}

type reader struct {
	fsys fs.FS
	m    Model
	st   *settings
	boot *Boot
	// The filter state: the model filter in force ("" none) and whether
	// a non-model filter made the section false.
	model string
	other bool
	// includes followed so far.
	includes int
}

// readFile reads name from fsys, failing once more than MaxConfig bytes
// came (fs.ReadFile would read a hostile file whole before any check).
func readFile(fsys fs.FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%s)", name, fi.Mode().Type())
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxConfig+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxConfig {
		return nil, fmt.Errorf("%s: larger than %d KB", name, MaxConfig>>10)
	}
	return data, nil
}

func (r *reader) exists(name string) bool {
	fi, err := fs.Stat(r.fsys, name)
	return err == nil && !fi.IsDir()
}

func (r *reader) active() bool {
	if r.other {
		return false
	}
	return r.model == "" || r.m.is(r.model)
}

func (r *reader) file(name string, depth int) error {
	if depth > 8 {
		return fmt.Errorf("config.txt: includes nest deeper than 8 at %s", name)
	}
	data, err := readFile(r.fsys, name)
	if err != nil {
		if depth == 0 && errors.Is(err, fs.ErrNotExist) {
			return ErrNotPi
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	r.boot.Sources = append(r.boot.Sources, name)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 4096), 64<<10)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			r.section(strings.ToLower(strings.TrimSpace(line[1 : len(line)-1])))
			continue
		}
		if !r.active() {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "include "); ok {
			if r.includes++; r.includes > MaxIncludes {
				return fmt.Errorf("config.txt: more than %d includes (an include loop?) at %s in %s", MaxIncludes, strings.TrimSpace(rest), name)
			}
			if err := r.file(path.Clean(strings.TrimSpace(rest)), depth+1); err != nil {
				return err
			}
			continue
		}
		if rest, ok := strings.CutPrefix(line, "initramfs "); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				r.st.initramfs = f[0]
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "kernel":
			r.st.kernel = v
		case "os_prefix":
			r.st.osPrefix = v
		case "cmdline":
			r.st.cmdline = v
		case "auto_initramfs":
			r.st.autoInitramfs = v == "1"
		case "arm_64bit", "arm_control":
			if k == "arm_64bit" {
				r.st.arm64 = v
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func (r *reader) section(f string) {
	switch {
	case f == "all":
		r.model, r.other = "", false
	case f == "none":
		r.other = true
	case modelFilters[f]:
		r.model = f
	default:
		r.other = true
	}
}
