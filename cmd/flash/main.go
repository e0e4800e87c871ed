//go:build linux

// Command flash streams a disk image (raw, gzip, xz or zstd; from an
// http(s) URL or a local file) onto a block device, without holding the
// image in RAM. It is one of the commands of ramboot's initramfs busybox:
// run it on a RAM-booted Pi to provision its eMMC, SD card or USB disk.
//
// Run `flash --help` for the usage.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/term"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usageText = `Usage: flash [--sha256 SUM] [--yes] [--no-sync] IMAGE DEVICE

Write a disk image onto a block device (eMMC, SD card, USB or NVMe disk).
The image is streamed: it is never held in RAM, so it may be larger than RAM.

IMAGE   an http:// or https:// URL, or a local file. Raw, or gzip, xz or
        zstd compressed: the format is detected from the content, not the name.
DEVICE  the whole device, e.g. /dev/mmcblk0 (not /dev/mmcblk0p1) or /dev/sda.
        The block devices are listed in /proc/partitions.

Options:
      --sha256 SUM   check the image as downloaded (still compressed, as
                     distributions publish it) against SUM: 64 hex digits, or
                     the URL or path of a SHA256SUMS file naming the image
  -y, --yes          do not ask for confirmation (asked only when stdin is a
                     terminal)
      --no-sync      after writing, do not flush the device's buffer cache
                     nor re-read its partition table (the data is still fsynced)
      --disk-image   refuse an image that does not start with a partition
                     table (MBR or GPT), before anything is written
  -h, --help         show this help

flash refuses a DEVICE that is mounted or used as swap, and an image larger
than the DEVICE. Exit status: 0 written, 1 failed, 2 usage error.

Examples:
  flash http://10.0.0.1/images/rpi4.img.zst /dev/mmcblk0
  flash --sha256 https://example.org/images/SHA256SUMS \
        https://example.org/images/os-arm64.img.xz /dev/sda
  flash --sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 \
        /tmp/os.img.gz /dev/mmcblk0
`

// env is what run takes from the process; tests replace parts of it.
type env struct {
	stdin      io.Reader
	stdinTTY   bool
	stderrTTY  bool
	procMounts string        // /proc/self/mounts
	procSwaps  string        // /proc/swaps
	sysBlock   string        // /sys/class/block
	sysDev     string        // /sys/dev/block
	stall      time.Duration // abort a download that sends nothing for this long
}

func run(args []string, stdout, stderr io.Writer) int {
	e := &env{
		stdin:      os.Stdin,
		stdinTTY:   term.IsTerminal(int(os.Stdin.Fd())),
		stderrTTY:  isTerminal(stderr),
		procMounts: "/proc/self/mounts",
		procSwaps:  "/proc/swaps",
		sysBlock:   "/sys/class/block",
		sysDev:     "/sys/dev/block",
		stall:      60 * time.Second,
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first Ctrl-C, restore the default so that a second one
	// kills flash even if it is stuck (e.g. in fsync on a dying card).
	go func() { <-ctx.Done(); stop() }()
	return e.run(ctx, args, stdout, stderr)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

type options struct {
	sha256 string
	yes    bool
	noSync bool
	disk   bool // --disk-image: the image must start with a partition table
	image  string
	device string
}

// parseArgs returns the options, or an error for a usage problem
// (pflag.ErrHelp for --help).
func parseArgs(args []string) (*options, error) {
	o := &options{}
	fs := pflag.NewFlagSet("flash", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.SortFlags = false
	fs.StringVar(&o.sha256, "sha256", "", "")
	fs.BoolVarP(&o.yes, "yes", "y", false, "")
	fs.BoolVar(&o.noSync, "no-sync", false, "")
	fs.BoolVar(&o.disk, "disk-image", false, "")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	switch rest := fs.Args(); len(rest) {
	case 0:
		return nil, errors.New("missing IMAGE and DEVICE")
	case 1:
		return nil, fmt.Errorf("missing DEVICE after %s", rest[0])
	case 2:
		o.image, o.device = rest[0], rest[1]
	default:
		return nil, fmt.Errorf("too many arguments: %s (expected IMAGE DEVICE)", strings.Join(rest, " "))
	}
	if fs.Changed("sha256") && strings.TrimSpace(o.sha256) == "" {
		return nil, errors.New("--sha256 needs a value: 64 hex digits or a SHA256SUMS file")
	}
	return o, nil
}

func (e *env) run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseArgs(args)
	if errors.Is(err, pflag.ErrHelp) {
		fmt.Fprint(stdout, usageText)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "flash: %v\n\n%s", err, usageText)
		return 2
	}
	summary, err := e.flash(ctx, o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "flash: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, "flash: "+summary)
	return 0
}

// confirm asks on stderr and reads the answer from stdin.
func (e *env) confirm(stderr io.Writer, question string) bool {
	fmt.Fprintf(stderr, "%s [y/N] ", question)
	line, _ := bufio.NewReader(e.stdin).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true
	}
	return false
}
