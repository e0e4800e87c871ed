package piconfig

import (
	"testing"
	"testing/fstest"
)

// FuzzRead: any config.txt (with an include of itself and of a second
// file the fuzzer also writes) gives a Boot or an error, never a panic, a
// hang or a name outside the partition.
func FuzzRead(f *testing.F) {
	for _, s := range []string{
		"arm_64bit=1\nauto_initramfs=1\n[cm4]\notg_mode=1\n[all]\n",
		"[pi4]\nkernel=vmlinuz\ninitramfs initrd.img followkernel\n[all]\ncmdline=cl.txt\n",
		"include extra.txt\nos_prefix=slot-b/\n",
		"include config.txt\n",
		"[pi5]\n[tryboot]\nkernel=x\n[none]\n[all]\nkernel=kernel7l.img\n",
		"os_prefix=../\nkernel=../../dev/zero\n",
		"initramfs\ninclude\nkernel=\n[\n]\n=\n",
	} {
		f.Add(s, "include config.txt\nkernel=vmlinuz\n")
	}
	f.Fuzz(func(t *testing.T, config, extra string) {
		fsys := fstest.MapFS{
			"config.txt":         file(config),
			"extra.txt":          file(extra),
			"cl.txt":             file(extra),
			"kernel8.img":        file("k"),
			"vmlinuz":            file("k"),
			"initrd.img":         file("i"),
			"slot-b/kernel8.img": file("k"),
		}
		b, err := Read(fsys, Model{"pi4"})
		if err != nil {
			return
		}
		for _, n := range []string{b.Kernel, b.Initrd} {
			if n == "" {
				continue
			}
			if _, ok := fsys[n]; !ok {
				t.Errorf("Read named %q, not a file of the partition", n)
			}
		}
		if len(b.Sources) > MaxIncludes+2 {
			t.Errorf("Read read %d files, more than %d includes allow", len(b.Sources), MaxIncludes)
		}
	})
}
