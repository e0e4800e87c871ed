package serve

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ramboot/ramboot/e2e/cache"
	"github.com/ramboot/ramboot/internal/testenv"
)

// TestDebianPackage: `make deb` builds the same bytes twice; lintian
// (pedantic) has no error or warning to give; the package has no
// maintainer scripts (installing it starts and enables nothing);
// `dpkg -i` installs it (into a scratch root, not this machine) with the
// binary, the two units and the example config where the README says;
// systemd-analyze verify accepts the installed units there, their
// ExecStart the installed binary; `dpkg -r` keeps the edited config and
// `dpkg -P` removes it.
func TestDebianPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the package: not in -short")
	}
	for _, p := range []string{"dpkg-deb", "lintian", "systemd-analyze", "make"} {
		if _, err := exec.LookPath(p); err != nil {
			testenv.Skip(t, p+" not found: run e2e/deps.sh (packages dpkg, lintian, systemd, make)")
		}
	}
	src := cache.SrcDir()
	build := func(out string) string {
		t.Helper()
		cmd := exec.Command("make", "--no-print-directory", "-C", src, "deb", "DEB_OUT="+out)
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make deb: %v\n%s", err, b)
		}
		debs, _ := filepath.Glob(filepath.Join(out, "ramboot_*.deb"))
		if len(debs) != 1 {
			t.Fatalf("make deb wrote %q, want one ramboot_*.deb\n%s", debs, b)
		}
		return debs[0]
	}
	deb := build(t.TempDir())
	again := build(t.TempDir())
	b1, _ := os.ReadFile(deb)
	b2, _ := os.ReadFile(again)
	if !bytes.Equal(b1, b2) {
		t.Errorf("make deb twice: %d and %d bytes, not the same (SOURCE_DATE_EPOCH, owners, gzip -n)", len(b1), len(b2))
	}
	t.Logf("%s: %.1f MB", filepath.Base(deb), float64(len(b1))/1e6)

	out, err := exec.Command("lintian", "--pedantic", "--info", "--fail-on", "error,warning", deb).CombinedOutput()
	t.Logf("lintian --pedantic --info:\n%s", out)
	if err != nil {
		t.Errorf("lintian: %v", err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "E:") || strings.HasPrefix(l, "W:") {
			t.Errorf("lintian: %s", l)
		}
	}

	ctl := t.TempDir()
	if out, err := exec.Command("dpkg-deb", "--control", deb, ctl).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb --control: %v\n%s", err, out)
	}
	ents, _ := os.ReadDir(ctl)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"conffiles", "control", "md5sums"}) {
		t.Errorf("control members %q, want conffiles, control, md5sums: no maintainer script (nothing may start or be enabled on install)", names)
	}

	// dpkg -i into a scratch root with its own database.
	root := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	dpkg := func(args ...string) {
		t.Helper()
		out, err := exec.Command("dpkg", append([]string{"--root=" + root, "--log=/dev/null"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	dpkg("-i", deb)
	for _, p := range []string{"usr/bin/ramboot", "lib/systemd/system/ramboot.service", "lib/systemd/system/ramboot@.service",
		"etc/ramboot/serve.yaml", "usr/share/doc/ramboot/examples/serve.yaml", "usr/share/man/man1/ramboot.1.gz", "usr/share/doc/ramboot/copyright"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("installed: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/ramboot.service")); err == nil {
		t.Errorf("installing enabled ramboot.service: it must wait for the operator's config")
	}
	ver, err := exec.Command(filepath.Join(root, "usr/bin/ramboot"), "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(ver), "ramboot ") {
		t.Errorf("the installed ramboot version: %v %q", err, ver)
	}
	unit, _ := os.ReadFile(filepath.Join(root, "lib/systemd/system/ramboot.service"))
	if !strings.Contains(string(unit), "\nExecStart=/usr/bin/ramboot serve --config /etc/ramboot/serve.yaml\n") || strings.Contains(string(unit), "/usr/local/") {
		t.Errorf("the installed ramboot.service does not start /usr/bin/ramboot with /etc/ramboot/serve.yaml:\n%s", unit)
	}

	// systemd-analyze verify in that root: it looks for the targets the
	// units name and for ExecStart's binary there, so the root gets this
	// machine's own unit files beside the package's.
	sysdir := filepath.Join(root, "lib/systemd/system")
	hostUnits, _ := filepath.Glob("/lib/systemd/system/*")
	for _, h := range hostUnits {
		dst := filepath.Join(sysdir, filepath.Base(h))
		if _, err := os.Lstat(dst); err == nil {
			continue
		}
		if out, err := exec.Command("cp", "-a", h, dst).CombinedOutput(); err != nil {
			t.Fatalf("cp %s: %v\n%s", h, err, out)
		}
	}
	if err := os.Symlink("ramboot@.service", filepath.Join(sysdir, "ramboot@rack1.service")); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"ramboot.service", "ramboot@rack1.service"} {
		out, err := exec.Command("systemd-analyze", "verify", "--man=no", "--root="+root, u).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "" {
			t.Errorf("systemd-analyze verify --root %s: %v\n%s", u, err, out)
		}
	}
	if err := os.Remove(filepath.Join(sysdir, "ramboot@rack1.service")); err != nil {
		t.Fatal(err)
	}

	// The operator's edit survives dpkg -r; dpkg -P removes the file.
	conf := filepath.Join(root, "etc/ramboot/serve.yaml")
	if err := os.WriteFile(conf, []byte("interface: eth7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dpkg("-r", "ramboot")
	if _, err := os.Stat(filepath.Join(root, "usr/bin/ramboot")); err == nil {
		t.Errorf("dpkg -r left /usr/bin/ramboot")
	}
	if b, err := os.ReadFile(conf); err != nil || string(b) != "interface: eth7\n" {
		t.Errorf("dpkg -r: the edited /etc/ramboot/serve.yaml is %q, %v: a conffile stays until purge", b, err)
	}
	dpkg("-P", "ramboot")
	if _, err := os.Stat(conf); err == nil {
		t.Errorf("dpkg -P left /etc/ramboot/serve.yaml")
	}
}
