package cli

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// serveSet is serve's flag set, parsed from args, and its options.
func serveSet(t *testing.T, args ...string) (*pflag.FlagSet, *serveOpts) {
	t.Helper()
	fs, o := serveFlags(io.Discard)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return fs, o
}

func newServeFS() *pflag.FlagSet { fs, _ := serveFlags(io.Discard); return fs }

func TestConfigSetsFlagsCommandLineWins(t *testing.T) {
	cfg := writeFile(t, "serve.yaml", `# a service's settings
root: /srv/ramboot/rpi4
interface: eth1
dhcp: full
range: 192.0.2.100-192.0.2.199
lease-time: 2h
tftp-max-transfers: 128
verbose: yes
log-format: json
`)
	fs, o := serveSet(t, "--interface", "eth2", "--tftp-max-transfers=64")
	n, err := applyConfig(fs, newServeFS, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if n != 6 {
		t.Errorf("applied %d settings, want 6 (two are overridden by the command line)", n)
	}
	got := []any{o.Root, o.Interface, o.dhcpMode, o.Range, o.LeaseTime, o.TFTPMaxTransfers, o.verbose, o.logFormat}
	want := []any{"/srv/ramboot/rpi4", "eth2", "full", "192.0.2.100-192.0.2.199", 2 * time.Hour, 64, true, "json"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("settings (-want +got):\n%s", diff)
	}
	// A flag not in the file keeps its default.
	if o.HTTPMaxConns == 0 {
		t.Errorf("http-max-conns lost its default")
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string // all in the error
	}{
		{"underscore", "lease_file: /var/lib/x\n", []string{"serve.yaml:1", `unknown key "lease_file"`, "did you mean lease-file?"}},
		{"typo", "root: /srv\ninterfce: eth1\n", []string{"serve.yaml:2", `unknown key "interfce"`, "did you mean interface?"}},
		{"shorthand", "r: /srv\n", []string{`unknown key "r"`, "did you mean root?"}},
		{"part of a name", "max-transfers: 3\n", []string{`unknown key "max-transfers"`, "did you mean tftp-max-transfers?"}},
		{"int", "root: /srv\ntftp-max-transfers: lots\n", []string{"serve.yaml:2", "tftp-max-transfers", "want an integer", `"lots"`}},
		{"duration", "lease-time: 5\n", []string{"serve.yaml:1", "lease-time", "want a duration such as 30s"}},
		{"bool", "verbose: maybe\n", []string{"serve.yaml:1", "verbose", "want true or false"}},
		{"list for a string", "interface:\n  - eth1\n  - eth2\n", []string{"serve.yaml:1", "interface", "want a string, got a list"}},
		{"mapping", "root:\n  dir: /srv\n", []string{"serve.yaml:1", "root", "want a string, got a mapping"}},
		{"null", "nodes:\n", []string{"serve.yaml:1", "nodes", "no value"}},
		{"twice", "root: /a\nroot: /b\n", []string{"serve.yaml:2", "root is already set on line 1"}},
		{"cli only", "check: true\n", []string{"serve.yaml:1", "check is a command-line action"}},
		{"config in config", "config: other.yaml\n", []string{"config is a command-line action"}},
		{"not a mapping", "- root\n", []string{"serve.yaml:1", "want a mapping"}},
		{"bad yaml", "root: [\n", []string{"serve.yaml"}},
		// Every problem is reported, not the first.
		{"all of them", "roo: /srv\nhttp-max-conns: x\nverbos: true\n", []string{"serve.yaml:1", "serve.yaml:2", "serve.yaml:3", "did you mean root?", "did you mean verbose?"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeFile(t, "serve.yaml", tc.yaml)
			fs, _ := serveSet(t)
			_, err := applyConfig(fs, newServeFS, cfg)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestConfigOverriddenValueStillChecked: a bad value in the file is an
// error even when the command line overrides it (the file is wrong for the
// next start without that flag).
func TestConfigOverriddenValueStillChecked(t *testing.T) {
	cfg := writeFile(t, "serve.yaml", "tftp-max-transfers: many\n")
	fs, o := serveSet(t, "--tftp-max-transfers", "5")
	if _, err := applyConfig(fs, newServeFS, cfg); err == nil || !strings.Contains(err.Error(), "want an integer") {
		t.Fatalf("err = %v", err)
	}
	if o.TFTPMaxTransfers != 5 {
		t.Errorf("the command line's value was changed to %d", o.TFTPMaxTransfers)
	}
}

// TestConfigGeneric: a flag added to the set is a key with no other edit,
// list flags take YAML lists (replacing the default, as on the command
// line), and empty files set nothing.
func TestConfigGeneric(t *testing.T) {
	mk := func() (*pflag.FlagSet, *string, *[]string, *float64) {
		fs, _ := serveFlags(io.Discard)
		s := fs.String("added-later", "def", "a flag another change adds")
		l := fs.StringSlice("peers", []string{"default"}, "a list")
		f := fs.Float64("ratio", 1, "a number")
		return fs, s, l, f
	}
	newFS := func() *pflag.FlagSet { fs, _, _, _ := mk(); return fs }
	cfg := writeFile(t, "serve.yaml", "added-later: value\npeers: [a, b, c]\nratio: 0.5\n")
	fs, s, l, f := mk()
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := applyConfig(fs, newFS, cfg); err != nil {
		t.Fatal(err)
	}
	if *s != "value" || !cmp.Equal(*l, []string{"a", "b", "c"}) || *f != 0.5 {
		t.Errorf("got %q %q %v", *s, *l, *f)
	}
	bad := writeFile(t, "serve.yaml", "ratio: half\n")
	fs, _, _, _ = mk()
	if _, err := applyConfig(fs, newFS, bad); err == nil || !strings.Contains(err.Error(), "ratio: want a number") {
		t.Errorf("err = %v", err)
	}
	for _, empty := range []string{"", "# nothing yet\n", "---\n"} {
		fs, _ := serveSet(t)
		if n, err := applyConfig(fs, newServeFS, writeFile(t, "serve.yaml", empty)); err != nil || n != 0 {
			t.Errorf("%q: %d settings, %v", empty, n, err)
		}
	}
	fs, _ = serveSet(t)
	if _, err := applyConfig(fs, newServeFS, filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "--config") {
		t.Errorf("missing file: %v", err)
	}
}

// TestConfigEveryServeFlagIsAKey: every serve flag but the command-line
// actions can be set from the file, with its default as the value.
func TestConfigEveryServeFlagIsAKey(t *testing.T) {
	var b strings.Builder
	newServeFS().VisitAll(func(f *pflag.Flag) {
		if _, ok := f.Annotations[cliOnly]; ok {
			return
		}
		v := f.DefValue
		if v == "" {
			v = `""`
		}
		if f.Name == "dhcp" {
			v = "off"
		}
		b.WriteString(f.Name + ": " + v + "\n")
	})
	fs, _ := serveSet(t)
	n, err := applyConfig(fs, newServeFS, writeFile(t, "serve.yaml", b.String()))
	if err != nil {
		t.Fatalf("%v\nfile:\n%s", err, b.String())
	}
	if want := strings.Count(b.String(), "\n"); n != want {
		t.Errorf("applied %d of %d keys", n, want)
	}
}

// TestShippedConfig: dist/serve.yaml, the example the service's docs
// install, is a valid config, and so is every setting commented out in it.
func TestShippedConfig(t *testing.T) {
	data, err := os.ReadFile("../dist/serve.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fs, o := serveSet(t)
	if _, err := applyConfig(fs, newServeFS, "../dist/serve.yaml"); err != nil {
		t.Fatal(err)
	}
	if o.Root == "" || o.Interface == "" || o.dhcpMode != "proxy" {
		t.Errorf("dist/serve.yaml: root %q interface %q dhcp %q", o.Root, o.Interface, o.dhcpMode)
	}
	var all []string
	setting := regexp.MustCompile(`^(?:# )?([a-z0-9-]+: \S+)$`)
	for _, l := range strings.Split(string(data), "\n") {
		if m := setting.FindStringSubmatch(l); m != nil {
			all = append(all, m[1])
		}
	}
	if len(all) < 10 {
		t.Fatalf("found %d settings in dist/serve.yaml", len(all))
	}
	fs, _ = serveSet(t)
	if _, err := applyConfig(fs, newServeFS, writeFile(t, "all.yaml", strings.Join(all, "\n"))); err != nil {
		t.Errorf("a commented-out setting of dist/serve.yaml is wrong: %v", err)
	}
}
