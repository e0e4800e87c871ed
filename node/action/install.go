package action

import (
	"bufio"
	"context"
	"fmt"
	"github.com/ramboot/ramboot/internal/atomicfile"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/u-root/u-root/pkg/mount"
	"github.com/u-root/u-root/pkg/mount/block"
	"golang.org/x/sys/unix"

	"github.com/ramboot/ramboot/bootspec"
	"github.com/ramboot/ramboot/internal/report"
	"github.com/ramboot/ramboot/node/growpart"
)

// The install action (option 224 "install:URL#sha256=..."): write a disk
// image to the node's own disk, apply the post-install edits, then reboot
// or boot it. The image is written by the flash command as a child
// process: its decompressors and HTTP client parse network input outside
// PID 1, and it refuses a mounted disk or one smaller than the image.
// Only a complete, synced install with its edits applied is reported
// "install done"; anything else is "install failed" and the node stays in
// the shell, where the server's next answer is the install again.
//
// Installs are idempotent (installrecord.go): the last write of an
// install is a record of it on the disk (image, digest, install
// generation); a disk whose record already covers the install asked for
// is not written again, and the node reports so and boots it. The
// outcome is delivered until the server acknowledges it (Env.Deliver;
// node/initd's report.go), bounded: a lost one costs nothing, the next boot reports it.

// The lifecycle's stages, as the node reports them to the server.
const (
	stageInstall       = report.Install
	stageInstallDone   = report.InstallDone
	stageInstallFailed = report.InstallFailed
)

// lifecycle reports an install stage to the server (and the console).
// The outcome goes out before anything else happens, delivered until the
// server acknowledges it (bounded): "install done" decides what the
// server answers this node next. It reports whether the server
// acknowledged an outcome.
func (b *Boot) lifecycle(stage, detail string) bool {
	b.Env.Stage("%s: %s", stage, detail)
	if stage == stageInstall {
		b.Env.Report(stage, detail)
		return false
	}
	return b.Env.Deliver(stage, detail)
}

func (b *Boot) install(ctx context.Context, spec bootspec.InstallSpec) (err error) {
	defer func() {
		if err != nil {
			b.lifecycle(stageInstallFailed, err.Error())
		}
	}()
	disk, err := installDisk(ctx, spec.Disk)
	if err != nil {
		return err
	}
	// Before anything is written: a disk that holds this install already
	// (its record, read with the partitions mounted read-only) is kept.
	found, rerr := diskRecord(disk)
	switch {
	case found != nil:
		ok, why := found.covers(spec)
		if ok {
			return b.keepInstalled(ctx, spec, disk, found)
		}
		b.Env.Stage("install: %s holds %s, not this install: %s", disk, found, why)
	case rerr != nil:
		b.Env.Stage("install: no install record read on %s (%v)", disk, rerr)
	}
	b.lifecycle(stageInstall, fmt.Sprintf("started %s -> %s", redact(spec.URL), disk))
	if err := b.flash(ctx, spec, disk); err != nil {
		return err
	}
	where, err := b.postInstall(ctx, spec, disk)
	if err != nil {
		return fmt.Errorf("%s is written, but the post-install edits failed: %w", disk, err)
	}
	unix.Sync()
	rec := newRecord(spec, disk, time.Now())
	detail := fmt.Sprintf("%s sha256=%s gen=%d", disk, rec.SHA256, rec.Gen)
	if where == "" {
		detail += " (no install record on the disk)"
	}
	b.lifecycle(stageInstallDone, detail)
	b.Env.Stage("install: done on %s", disk)
	if spec.Then == "local" {
		return b.localBoot(ctx, bootspec.LocalSpec{Target: disk})
	}
	return b.rebootInstalled()
}

// keepInstalled goes on with a disk that holds the install already: it
// reports "install done" saying so (the server learns what a lost report
// did not tell it), then does what then= says. With then=reboot and no
// acknowledgement from the server, it boots the disk instead: the server
// would hand the same install form again at the reboot, and the node
// would reboot for as long as the server does not hear it.
func (b *Boot) keepInstalled(ctx context.Context, spec bootspec.InstallSpec, disk string, r *foundRecord) error {
	b.Env.Stage("install: %s holds %s: the install asks for generation %d, so the disk is kept", disk, r, spec.Gen)
	acked := b.lifecycle(stageInstallDone, fmt.Sprintf("%s sha256=%s gen=%d already installed at generation %d on %s (%s:/%s): the disk is not written",
		disk, r.SHA256, r.Gen, r.Gen, r.Time.Format(time.RFC3339), r.part, r.path))
	if spec.Then == "reboot" && acked {
		return b.rebootInstalled()
	}
	if spec.Then == "reboot" {
		b.Env.Stage("install: the server did not acknowledge: booting the installed system here rather than rebooting into the same install form")
	}
	return b.localBoot(ctx, bootspec.LocalSpec{Target: disk})
}

// rebootInstalled reboots into the installed system, past the point of no
// return.
func (b *Boot) rebootInstalled() error { return b.Env.Reboot() }

// flash runs the flash command and relays its progress.
func (b *Boot) flash(ctx context.Context, spec bootspec.InstallSpec, disk string) error {
	args := []string{"--yes", "--disk-image"}
	if !spec.NoDigest {
		args = append(args, "--sha256", spec.SHA256)
	}
	u := *spec.URL
	u.Fragment = ""
	args = append(args, u.String(), disk)
	cmd := exec.CommandContext(ctx, b.flashCmd(), args...)
	cmd.Env = []string{"PATH=/bbin:/bin", "HOME=/"}
	pr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("flash: %w", err)
	}
	// PID 1's reaper collects every exit (cmd.Wait would find none):
	// the status comes from its table (Boot.Exited).
	exited := b.exited(cmd.Process)
	var last []string
	sc := bufio.NewScanner(pr)
	sc.Split(scanLinesOrCR)
	lastReport := time.Time{}
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if len(last) == 4 {
			last = last[1:]
		}
		last = append(last, line)
		if time.Since(lastReport) >= 2*time.Second {
			b.lifecycle(stageInstall, line)
			lastReport = time.Now()
		}
	}
	pr.Close()
	var status int
	select {
	case status = <-exited:
	case <-ctx.Done():
		cmd.Process.Kill()
		<-exited
		return fmt.Errorf("flash stopped: %w", ctx.Err())
	}
	if status != 0 {
		return fmt.Errorf("flash %s: exit status %d: %s", disk, status, strings.Join(last, " / "))
	}
	if len(last) > 0 {
		b.lifecycle(stageInstall, last[len(last)-1])
	}
	return nil
}

// scanLinesOrCR splits on \n or \r: progress lines redraw with \r.
func scanLinesOrCR(data []byte, atEOF bool) (int, []byte, error) {
	for i, b := range data {
		if b == '\n' || b == '\r' {
			return i + 1, data[:i], nil
		}
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// postInstall grows the last partition, then edits the written system:
// host name and root's keys on its Linux root, the NoCloud seed on its
// boot partition; last, it writes the install record (on an ext4 Linux
// root, else on the FAT boot partition). It returns where the record is
// ("" if there was no place for it).
func (b *Boot) postInstall(ctx context.Context, spec bootspec.InstallSpec, disk string) (string, error) {
	if spec.Grow {
		switch r, err := growDisk(disk); {
		case err != nil:
			b.Env.Stage("install: not grown: %v", err)
		case r.Unchanged != "":
			b.Env.Stage("install: not grown: %s", r.Unchanged)
		default:
			b.Env.Stage("install: %s partition %d grown to sector %d (was %d)", r.Table, r.Partition, r.NewEnd, r.OldEnd)
			if err := rereadPartitions(disk); err != nil {
				return "", err
			}
		}
	}
	// Partitions appear once the kernel has re-read the table.
	parts, err := diskPartitions(ctx, disk)
	if err != nil {
		return "", err
	}
	var pool mount.Pool
	defer pool.UnmountAll(0)
	var root, bootfs, rootDev, bootDev, rootType string
	for _, p := range parts {
		if root != "" && bootfs != "" {
			break
		}
		dev, err := block.Device(p)
		if err != nil {
			continue
		}
		mp, err := pool.Mount(dev, 0)
		if err != nil {
			continue
		}
		switch {
		case root == "" && isDir(filepath.Join(mp.Path, "etc")) && isDir(filepath.Join(mp.Path, "usr")):
			root, rootDev, rootType = mp.Path, p, mp.FSType
		case bootfs == "" && mp.FSType == "vfat":
			bootfs, bootDev = mp.Path, p
		}
	}
	f := newFetcher()
	if spec.Hostname != "" || spec.Keys != nil {
		if root == "" {
			return "", fmt.Errorf("no Linux root file system (with /etc and /usr) on %s's partitions for hostname= or keys=", disk)
		}
		if spec.Hostname != "" {
			if err := setHostname(root, spec.Hostname); err != nil {
				return "", err
			}
			b.Env.Stage("install: host name %s", spec.Hostname)
		}
		if spec.Keys != nil {
			keys, err := fetchChecked(ctx, f, spec.Keys.String(), spec.KeysSHA256)
			if err != nil {
				return "", fmt.Errorf("keys=%s: %w", spec.Keys, err)
			}
			if err := writeKeys(root, keys); err != nil {
				return "", err
			}
			b.Env.Stage("install: root's authorized_keys (%d bytes)", len(keys))
		}
	}
	if spec.Seed != nil {
		dir := bootfs
		if dir == "" {
			dir = root
		}
		if dir == "" {
			return "", fmt.Errorf("seed=: no boot partition (FAT) or Linux root on %s for the cloud-init seed", disk)
		}
		base := strings.TrimSuffix(spec.Seed.String(), "/")
		for i, name := range []string{"user-data", "meta-data"} {
			b, err := fetchChecked(ctx, f, base+"/"+name, spec.SeedSHA256[i])
			if err != nil {
				return "", fmt.Errorf("seed %s: %w", name, err)
			}
			if err := writeSynced(filepath.Join(dir, name), b, 0o644); err != nil {
				return "", err
			}
		}
		b.Env.Stage("install: cloud-init seed on %s", dir)
	}
	// The install record, the install's last write: a disk holds one
	// only when everything before it is written and synced.
	unix.Sync()
	dir, rel, dev := "", "", ""
	switch {
	case root != "" && strings.HasPrefix(rootType, "ext"):
		dir, rel, dev = root, recordOnRoot, rootDev
	case bootfs != "":
		dir, rel, dev = bootfs, recordOnBoot, bootDev
	}
	where := ""
	if dir == "" {
		b.Env.Stage("install: no install record: no ext4 Linux root or FAT boot partition on %s (a lost install done would install this disk again)", disk)
	} else {
		if err := writeRecord(dir, rel, newRecord(spec, disk, time.Now())); err != nil {
			return "", fmt.Errorf("the install record %s:/%s: %w", dev, rel, err)
		}
		where = dev + ":/" + rel
		b.Env.Stage("install: install record (generation %d) on %s", spec.Gen, where)
	}
	unix.Sync()
	return where, pool.UnmountAll(0)
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

func growDisk(disk string) (growpart.Result, error) {
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		return growpart.Result{}, err
	}
	defer f.Close()
	size, err := f.Seek(0, 2)
	if err != nil {
		return growpart.Result{}, err
	}
	r, err := growpart.Grow(f, size)
	if err != nil {
		return r, err
	}
	return r, f.Sync()
}

// rereadPartitions asks the kernel to read disk's partition table again.
func rereadPartitions(disk string) error {
	f, err := os.Open(disk)
	if err != nil {
		return err
	}
	defer f.Close()
	var lastErr error
	for i := 0; i < 10; i++ {
		if lastErr = unix.IoctlSetInt(int(f.Fd()), unix.BLKRRPART, 0); lastErr == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("%s: re-reading the partition table: %w", disk, lastErr)
}

// diskPartitions lists disk's partitions, in order, once they appear.
func diskPartitions(ctx context.Context, disk string) ([]string, error) {
	name := filepath.Base(disk)
	for i := 0; ; i++ {
		if m := sysPartitions(name); len(m) > 0 {
			num := map[string]int{}
			var out []string
			for _, p := range m {
				b, _ := os.ReadFile(p)
				dev := "/dev/" + filepath.Base(filepath.Dir(p))
				num[dev], _ = strconv.Atoi(strings.TrimSpace(string(b)))
				out = append(out, dev)
			}
			sort.Slice(out, func(i, j int) bool { return num[out[i]] < num[out[j]] })
			return out, nil
		}
		if i == 20 {
			return nil, fmt.Errorf("%s: no partitions after writing the image: is it a disk image (with a partition table)?", disk)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func setHostname(root, name string) error {
	if err := writeSynced(filepath.Join(root, "etc/hostname"), []byte(name+"\n"), 0o644); err != nil {
		return err
	}
	hosts := filepath.Join(root, "etc/hosts")
	old, _ := os.ReadFile(hosts)
	var out []string
	found := false
	for _, l := range strings.Split(strings.TrimRight(string(old), "\n"), "\n") {
		if strings.HasPrefix(l, "127.0.1.1") {
			l = "127.0.1.1\t" + name
			found = true
		}
		if l != "" || len(out) > 0 {
			out = append(out, l)
		}
	}
	if !found {
		out = append(out, "127.0.1.1\t"+name)
	}
	if len(old) == 0 {
		out = append([]string{"127.0.0.1\tlocalhost"}, out...)
	}
	return writeSynced(hosts, []byte(strings.Join(out, "\n")+"\n"), 0o644)
}

func writeKeys(root string, keys []byte) error {
	dir := filepath.Join(root, "root/.ssh")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	return writeSynced(filepath.Join(dir, "authorized_keys"), keys, 0o600)
}

// writeSynced replaces a file through a temporary one, synced with its
// directory (atomicfile).
func writeSynced(p string, b []byte, mode os.FileMode) error {
	return atomicfile.Write(p, b, atomicfile.Options{Mode: mode})
}
