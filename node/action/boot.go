//go:build linux

// Package action holds option 224's boot actions: chain (a kernel, an
// iPXE script or a root image run from RAM), NFS root, install to disk
// and local boot. Each is a small unit that does its work (downloads,
// mounts through Sys, the flash child) and reaches PID 1 only through Env: the
// console, the reports, and the three points of no return (kexec,
// switch_root, reboot), each behind the commit gate (Gate). An action
// returns only on failure, with the reason; whatever it set up is taken
// down again first, and nothing is written to a disk an install did not
// name.
//
// node/initd runs it, PID 1's Env behind it:
//
//	b := &action.Boot{Env: env, Agent: "ramboot-init/1.0 (mac=...)", Vars: vars, Out: os.Stdout}
//	outcome := action.Bounded(ctx, 15*time.Minute, &gate, func(ctx context.Context) string {
//		return b.Run(ctx, "http://192.0.2.1:8080/boot.ipxe", "DHCP option 224")
//	})
//	// still here: outcome says why; the provisioning shell follows
package action

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/u-root/u-root/pkg/curl"
	"github.com/u-root/u-root/pkg/mount/loop"
	"golang.org/x/sys/unix"
	"pack.ag/tftp"

	"github.com/ramboot/ramboot/node/kexec"
)

// Env is what an action needs from PID 1.
type Env interface {
	// Stage prints one line on the console.
	Stage(format string, args ...any)
	// Report reports a stage to the server: best effort, never waits.
	Report(stage, detail string)
	// Progress reports n of total bytes of a download (total <= 0:
	// unknown), best effort.
	Progress(stage string, n, total int64)
	// Deliver delivers an install's outcome (install done, install
	// failed) until the server acknowledges it, bounded, and says
	// whether it did.
	Deliver(stage, detail string) bool

	// The points of no return. Each passes the commit gate (Gate.Commit)
	// after its last check and before anything that cannot be undone:
	// once the boot deadline gave up on the action (the shell runs), it
	// fails instead. Each returns only on failure.

	// Kexec loads img (checking its kernel against this machine) and
	// boots it.
	Kexec(img *kexec.Image) error
	// SwitchRoot checks that newRoot's init can run here, then makes
	// newRoot the root and execs init as PID 1. It returns when the check
	// or the commit failed; the action then takes its mounts down.
	SwitchRoot(newRoot, init string) error
	// Reboot reboots into the system an install wrote.
	Reboot() error
}

// Boot runs option 224's actions on this node. Env is required; the
// rest have zero-value defaults.
type Boot struct {
	Env Env
	// Agent is the HTTP User-Agent of downloads (the server's status
	// page finds the node by the MAC in it).
	Agent string
	// Vars are an iPXE script's variables (mac, ip, hostname, kernel,
	// board, ...).
	Vars map[string]string
	// Out gets an iPXE script's output (echo); nil discards it.
	Out io.Writer
	// Modules is closed once every kernel module is loaded (loop,
	// squashfs, overlay for a RAM root); nil: they are.
	Modules <-chan struct{}
	// Exited returns a channel that gets a child's exit status, for
	// PID 1, whose reaper collects every child; nil: the action waits
	// for its child itself.
	Exited func(pid int) <-chan int
	// Flash is the flash command an install runs; "" is /bbin/flash.
	Flash string
	// Sys mounts and resolves what a RAM or NFS root boots from; nil is
	// the kernel (realSys).
	Sys Sys
	// Root is the directory the RAM and NFS roots' paths are under (their
	// image, overlay and new root: /run/ramboot/..., /newroot); "" is /.
	Root string

	clientsOnce sync.Once
	http        *http.Client
	tftp        curl.FileScheme
}

// clients are the HTTP and TFTP clients of the downloads, made once.
func (b *Boot) clients() (*http.Client, curl.FileScheme) {
	b.clientsOnce.Do(func() {
		b.http = &http.Client{Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
			ResponseHeaderTimeout: 20 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
		}}
		// TFTP asks the server for the size (tsize) with u-root's client
		// settings (blksize 1450, windowsize 64).
		b.tftp = curl.NewTFTPClient(tftp.ClientMode(tftp.ModeOctet), tftp.ClientBlocksize(1450), tftp.ClientWindowsize(64), tftp.ClientTransferSize(true))
	})
	return b.http, b.tftp
}

// Sys is the kernel calls with which the RAM and NFS roots mount what
// they boot from. Tests fake it, so that those actions' failure paths
// run without root and leave the machine as it was.
type Sys interface {
	Mount(source, target, fstype string, flags uintptr, data string) error
	Unmount(target string, flags int) error
	// AttachLoop puts file on a free loop device, read-only, and returns
	// the device.
	AttachLoop(file string) (dev string, err error)
	DetachLoop(dev string) error
	LookupIP(host string) ([]net.IP, error)
}

// realSys is Sys on the kernel.
type realSys struct{}

func (realSys) Mount(source, target, fstype string, flags uintptr, data string) error {
	return unix.Mount(source, target, fstype, flags, data)
}

func (realSys) Unmount(target string, flags int) error { return unix.Unmount(target, flags) }

func (realSys) AttachLoop(file string) (string, error) { return attachLoop(file) }

func (realSys) DetachLoop(dev string) error { return loop.ClearFile(dev) }

func (realSys) LookupIP(host string) ([]net.IP, error) { return net.LookupIP(host) }

func (b *Boot) sys() Sys {
	if b.Sys == nil {
		return realSys{}
	}
	return b.Sys
}

// path is p (absolute) under b.Root.
func (b *Boot) path(p string) string {
	if b.Root == "" {
		return p
	}
	return filepath.Join(b.Root, p)
}

func (b *Boot) waitModules() {
	if b.Modules != nil {
		<-b.Modules
	}
}

func (b *Boot) flashCmd() string {
	if b.Flash == "" {
		return "/bbin/flash"
	}
	return b.Flash
}

// exited returns a channel that gets the exit status of p.
func (b *Boot) exited(p *os.Process) <-chan int {
	if b.Exited != nil {
		return b.Exited(p.Pid)
	}
	ch := make(chan int, 1)
	go func() {
		st, err := p.Wait()
		if err != nil {
			ch <- -1
			return
		}
		ch <- st.ExitCode()
	}()
	return ch
}

// Gate is the point of no return: an action commits (switch_root,
// kexec, reboot) only if the deadline has not given up on it first, and
// the deadline gives up only on an action that has not committed. Its
// zero value is open.
type Gate struct {
	mu        sync.Mutex
	committed bool
	abandoned bool
}

// ErrAbandoned is Commit's error once the deadline gave up on the action.
var ErrAbandoned = errors.New("the boot deadline passed: the provisioning shell has taken over")

// Commit passes the point of no return, unless the deadline gave up on
// the action: then the shell is already running and the action must stop.
func (g *Gate) Commit() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.abandoned {
		return ErrAbandoned
	}
	g.committed = true
	return nil
}

// Abandon gives up on the action, unless it has committed already.
func (g *Gate) Abandon() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.committed {
		return false
	}
	g.abandoned = true
	return true
}

// Bounded runs act under one overall deadline d. When it passes, the
// shell follows at once, and an action still running can no longer
// commit on g (a download or script that hangs keeps nothing from the
// shell); an action past its point of no return is waited for. A panic
// in act is its outcome, never PID 1's end.
func Bounded(ctx context.Context, d time.Duration, g *Gate, act func(context.Context) string) string {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	done := make(chan string, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Sprintf("BUG in the boot action: %v", r)
			}
		}()
		done <- act(ctx)
	}()
	select {
	case out := <-done:
		return out
	case <-ctx.Done():
		if !g.Abandon() {
			// Past the point of no return: the new system is starting.
			return <-done
		}
		return fmt.Sprintf("the boot action did not finish within %v (ramboot.deadline=): provisioning shell", d)
	}
}
