//go:build linux

package kexec

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/u-root/u-root/pkg/boot"
	ukexec "github.com/u-root/u-root/pkg/boot/kexec"
	"golang.org/x/sys/unix"

	"github.com/ramboot/ramboot/kernel/kimage"
)

// Where Load writes the kernel and initrd for the kexec system calls.
const (
	kernelFile = "/tmp/ramboot-kernel"
	initrdFile = "/tmp/ramboot-initrd"
)

// Kernel gunzips a compressed kernel and checks that it is an arm64
// Image on arm64, an x86 bzImage on amd64 (arch is a GOARCH), before
// kexec sees it.
func Kernel(k []byte, arch string) ([]byte, error) {
	if kimage.Kind(k) == kimage.Gzip {
		zr, err := gzip.NewReader(bytes.NewReader(k))
		if err != nil {
			return nil, fmt.Errorf("kernel: gzip: %w", err)
		}
		if k, err = io.ReadAll(io.LimitReader(zr, 512<<20)); err != nil {
			return nil, fmt.Errorf("kernel: gunzip: %w (truncated download?)", err)
		}
	}
	kind := kimage.Kind(k)
	switch arch {
	case "arm64":
		if kind != kimage.ARM64 {
			if kind == kimage.AMD64 {
				return nil, errors.New("kernel: this is an x86 bzImage; this machine is arm64: point option 224 at an arm64 kernel")
			}
			return nil, errors.New("kernel: not an arm64 Image (no \"ARM\\x64\" magic): wrong file or wrong architecture")
		}
	case "amd64":
		if kind != kimage.AMD64 {
			return nil, errors.New("kernel: not an x86 bzImage: wrong file or wrong architecture")
		}
	}
	return k, nil
}

// Load checks img's kernel against this machine (Kernel, Blocked) and
// loads it with its initrd and command line: kexec_file_load, else
// kexec_load. logf (nil: silent) gets a line for the load and one for
// the fallback. Nothing is booted yet: Reboot does that.
func Load(img *Image, logf func(string, ...any)) error {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	k, err := Kernel(img.Kernel, runtime.GOARCH)
	if err != nil {
		return err
	}
	if err := Blocked(); err != nil {
		return err
	}
	if err := os.WriteFile(kernelFile, k, 0o600); err != nil {
		return err
	}
	rf := ""
	if rd := img.Initrd(); len(rd) > 0 {
		rf = initrdFile
		if err := os.WriteFile(rf, rd, 0o600); err != nil {
			return err
		}
	}
	// Load closes the files it is given, so each attempt opens them anew.
	image := func(syscallLoad bool) *boot.LinuxImage {
		li := &boot.LinuxImage{Name: img.Source, Kernel: mustOpen(kernelFile), Cmdline: img.Cmdline, LoadSyscall: syscallLoad}
		if rf != "" {
			li.Initrd = mustOpen(rf)
		}
		return li
	}
	logf("kexec: kernel %d bytes, initrd %d bytes, cmdline %q", len(k), len(img.Initrd()), img.Cmdline)
	err = image(false).Load()
	if err != nil {
		// kexec_file_load is missing from Debian's arm64 kernel: fall back
		// to kexec_load.
		logf("kexec: kexec_file_load: %v; trying kexec_load", err)
		err = image(true).Load()
	}
	if err != nil {
		return Explain(err)
	}
	return nil
}

// Reboot boots the loaded kernel. It returns only on failure.
func Reboot() error {
	if err := ukexec.Reboot(); err != nil {
		return Explain(err)
	}
	return errors.New("kexec reboot returned")
}

// Blocked says in advance what arm64 Linux will answer: it refuses
// kexec (EBUSY, "CPUs are stuck in the kernel") when more than one CPU is
// possible and the CPUs were started from a spin table, without PSCI to
// take them offline.
func Blocked() error {
	if runtime.GOARCH != "arm64" {
		return nil
	}
	possible, err := os.ReadFile("/sys/devices/system/cpu/possible")
	if err != nil || strings.TrimSpace(string(possible)) == "0" {
		return nil
	}
	methods, _ := filepath.Glob("/proc/device-tree/cpus/cpu@*/enable-method")
	for _, m := range methods {
		if b, err := os.ReadFile(m); err == nil && strings.HasPrefix(string(b), "spin-table") {
			return Explain(fmt.Errorf("kexec: CPUs %s were started from a spin table: %w", strings.TrimSpace(string(possible)), unix.EBUSY))
		}
	}
	return nil
}

// Explain says what a kexec failure means for the operator.
func Explain(err error) error {
	if errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("%w: the kernel cannot take the other CPUs offline (\"CPUs are stuck in the kernel\"): "+
			"this machine booted without PSCI. On a Pi 4 use the tree's config.txt (armstub=bl31.bin, enable_gic=1) "+
			"or add nr_cpus=1 to cmdline.txt", err)
	}
	// Some loaders put whole device trees into their errors: keep it readable.
	if msg := err.Error(); len(msg) > 400 {
		return fmt.Errorf("%s ... (%d more bytes)", msg[:400], len(msg)-400)
	}
	return err
}

func mustOpen(p string) *os.File {
	f, err := os.Open(p)
	if err != nil {
		return nil
	}
	return f
}
