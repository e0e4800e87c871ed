package install

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ramboot/ramboot/e2e/cache"
	"github.com/ramboot/ramboot/e2e/lab"
)

// hostileDisk builds a GPT disk whose every partition holds a boot
// configuration that reaches for more than its partition or more than
// PID 1's memory, and returns its path and what the init must say about
// each partition. Built as the install test's disks are: mkfs -d and
// mtools on images, sfdisk and dd, nothing mounted.
func hostileDisk(t testing.TB) (string, map[string]string) {
	t.Helper()
	work := t.TempDir()
	sh := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	write := func(p, content string) {
		t.Helper()
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sparse := func(p string, size int64) {
		t.Helper()
		write(p, "")
		if err := os.Truncate(p, size); err != nil {
			t.Fatal(err)
		}
	}
	const partMB = 16
	var imgs []string
	want := map[string]string{}

	// 1, FAT: a Pi's config.txt whose includes fan out, eight a level
	// (8^8 reads within the depth limit).
	pi := filepath.Join(work, "pi")
	names := []string{"config.txt", "a.txt", "b.txt", "c.txt"}
	var paths []string
	for i, n := range names {
		next := ""
		if i+1 < len(names) {
			next = strings.Repeat("include "+names[i+1]+"\n", 8)
		}
		write(filepath.Join(pi, n), "arm_64bit=1\n"+next)
		paths = append(paths, filepath.Join(pi, n))
	}
	img := filepath.Join(work, "1.img")
	sh("mkfs.vfat", "-C", "-n", "PIBOOT", img, fmt.Sprint(partMB<<10))
	sh("mcopy", append(append([]string{"-i", img}, paths...), "::/")...)
	imgs = append(imgs, img)
	want["/dev/vda1"] = `config\.txt: more than 32 includes`

	ext4 := func(n int, files func(dir string)) {
		dir := filepath.Join(work, fmt.Sprint(n))
		os.MkdirAll(dir, 0o755)
		files(dir)
		img := filepath.Join(work, fmt.Sprint(n)+".img")
		sh("mkfs.ext4", "-q", "-E", "root_owner=0:0", "-d", dir, img, fmt.Sprint(partMB)+"M")
		imgs = append(imgs, img)
	}
	// 2: GRUB's kernel path climbs out of the mount point to /dev/zero.
	ext4(2, func(d string) {
		write(filepath.Join(d, "boot/grub/grub.cfg"), "set default=0\nmenuentry 'escape' {\n\tlinux ../../../../../../../../dev/zero console=ttyAMA0\n}\n")
	})
	want["/dev/vda2"] = `grub entry "escape": /dev/zero: outside the partition`
	// 3: a BLS entry's kernel is a symbolic link out of the partition.
	ext4(3, func(d string) {
		write(filepath.Join(d, "loader/entries/linked.conf"), "title linked\nlinux /vmlinuz\noptions console=ttyAMA0\n")
		if err := os.Symlink("../../../../../../../../dev/zero", filepath.Join(d, "vmlinuz")); err != nil {
			t.Fatal(err)
		}
	})
	want["/dev/vda3"] = `bls entry linked: /vmlinuz: outside the partition`
	// 4: a 1 GB extlinux.conf (sparse: mkfs.ext4 -d keeps the holes).
	ext4(4, func(d string) { sparse(filepath.Join(d, "extlinux/extlinux.conf"), 1<<30) })
	want["/dev/vda4"] = `syslinux: extlinux/extlinux\.conf: too large: more than 256 KB`
	// 5: a 4 GB kernel, and a grub.cfg that would have read it twice.
	ext4(5, func(d string) {
		write(filepath.Join(d, "boot/grub/grub.cfg"), "menuentry 'big' {\n\tlinux /vmlinuz\n\tinitrd /vmlinuz\n}\n")
		sparse(filepath.Join(d, "vmlinuz"), 4<<30)
	})
	want["/dev/vda5"] = `grub entry "big": vmlinuz: too large: 4096 MB, more than \d+ MB`
	// 6: grub.cfg's configfile is itself.
	ext4(6, func(d string) { write(filepath.Join(d, "boot/grub/grub.cfg"), "configfile /boot/grub/grub.cfg\n") })
	want["/dev/vda6"] = `grub: boot/grub/grub\.cfg: too many configuration files: more than 32`

	disk := filepath.Join(work, "hostile.raw")
	const start, sectors = 2048, partMB << 11
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, int64(start+len(imgs)*sectors+2048)*512); err != nil {
		t.Fatal(err)
	}
	table := "label: gpt\n"
	for i := range imgs {
		table += fmt.Sprintf("start=%d, size=%d, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n", start+i*sectors, sectors)
	}
	sf := exec.Command("sfdisk", "--quiet", disk)
	sf.Stdin = strings.NewReader(table)
	if out, err := sf.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	for i, img := range imgs {
		sh("dd", "if="+img, "of="+disk, "bs=512", "seek="+fmt.Sprint(start+i*sectors), "conv=notrunc,sparse", "status=none")
	}
	return disk, want
}

// TestLocalBootHostileDisk: "local" on a disk whose boot configurations
// name /dev/zero through "..", link their kernel out of the partition,
// are a gigabyte long, fan out in includes, name a 4 GB kernel or load
// themselves: the init refuses each, says why on the console, and lands in
// the provisioning shell; PID 1 neither panics nor runs out of memory.
func TestLocalBootHostileDisk(t *testing.T) {
	lab.Skip(t)
	src, _ := cache.Image(t, "virt")
	disk, want := hostileDisk(t)
	l := lab.New(t)
	l.Dnsmasq(t, "--dhcp-range=192.0.2.100,192.0.2.150,12h")
	l.Serve(t, src, "--dhcp", "off")
	t0 := time.Now()
	vm := bootWithDisk(t, l, src, disk, "ramboot.224=local")
	m := vm.Expect(`local boot failed: (nothing bootable on the node's disks \(/dev/vda /dev/vda1 /dev/vda2 /dev/vda3 /dev/vda4 /dev/vda5 /dev/vda6\)[^\r\n]*)\r?\n`, 240*time.Second)
	t.Logf("refused in %v: %s", time.Since(t0).Round(time.Second), m[1])
	for dev, reason := range want {
		if !regexp.MustCompile(regexp.QuoteMeta(dev) + `: ` + reason).MatchString(m[1]) {
			t.Errorf("the console does not say %s: %s", dev, reason)
		}
	}
	vm.ShellRoundTrip()
	vm.NoPanic()
	if strings.Contains(vm.Output(), "Out of memory") {
		t.Error("the console shows the OOM killer")
	}
}
