package builder

import "testing"

func TestWithOSPrefix(t *testing.T) {
	in := "# comment [pi4]\n[pi3]\narm_64bit=1\n[pi3+]\ndevice_tree=b.dtb\n[ALL]\n[all]\n"
	want := "# comment [pi4]\n[pi3]\nos_prefix=rpi3/\narm_64bit=1\n[pi3+]\nos_prefix=rpi3/\ndevice_tree=b.dtb\n[ALL]\n[all]\n"
	if got := withOSPrefix(in, "rpi3/"); got != want {
		t.Errorf("withOSPrefix:\n%s\nwant:\n%s", got, want)
	}
}

func TestBuildTreeRefusesBadLists(t *testing.T) {
	for _, names := range [][]string{{"rpi4"}, {"rpi4", "rpi4"}, {"rpi4", "./my.yaml"}} {
		if err := BuildTree(t.Context(), Options{Out: t.TempDir()}, names); err == nil {
			t.Errorf("BuildTree(%q) built", names)
		}
	}
}
