package cli

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/ramboot/ramboot/site"
)

// unitSettings reads a shipped unit's key=value lines (a key may repeat).
func unitSettings(t *testing.T, name string) map[string][]string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "dist", "systemd", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, "[") {
			continue
		}
		k, v, _ := strings.Cut(l, "=")
		u[k] = append(u[k], v)
	}
	return u
}

// serveStateFile is the state file serve uses, as runServe and the server
// work it out: the config, then the defaults, then next to the lease file.
func serveStateFile(t *testing.T, args []string, d serviceDirs, env string) string {
	t.Helper()
	fs, o := serveFlags(io.Discard)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	newFS := func() *pflag.FlagSet { f, _ := serveFlags(io.Discard); return f }
	if _, err := applyConfig(fs, newFS, o.config); err != nil {
		t.Fatal(err)
	}
	o.defaultFiles(d, env)
	if o.StateFile != "" {
		return o.StateFile
	}
	return site.DefaultStateFile(o.Root, o.LeaseFile)
}

// TestServiceAndNodeShareState: with the shipped units' own settings
// (ExecStart's --config, StateDirectory=, which systemd hands the service
// as $STATE_DIRECTORY), `ramboot node --config` from an admin's shell (no
// $STATE_DIRECTORY), and with no flag at all for ramboot.service, finds
// the state file the service uses: under the unit's state directory, not
// next to the tree. The directories are moved under a temporary root.
func TestServiceAndNodeShareState(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", "") // the admin's shell
	for _, tc := range []struct{ unit, instance string }{
		{"ramboot.service", ""},
		{"ramboot@.service", "rack1"},
	} {
		t.Run(tc.unit, func(t *testing.T) {
			u := unitSettings(t, tc.unit)
			if len(u["ExecStart"]) != 1 || len(u["StateDirectory"]) != 1 {
				t.Fatalf("%s: want one ExecStart= and one StateDirectory=: %v", tc.unit, u)
			}
			if len(u["Environment"]) > 0 {
				t.Fatalf("%s sets Environment=%v: check it here", tc.unit, u["Environment"])
			}
			exec := strings.Fields(strings.ReplaceAll(u["ExecStart"][0], "%i", tc.instance))
			var config string
			for i, a := range exec {
				if a == "--config" && i+1 < len(exec) {
					config = exec[i+1]
				}
			}
			if config == "" {
				t.Fatalf("%s: ExecStart=%s has no --config", tc.unit, u["ExecStart"][0])
			}
			stateDir := filepath.Join("/var/lib", strings.ReplaceAll(u["StateDirectory"][0], "%i", tc.instance))

			tmp := t.TempDir()
			sh := shippedUnits()
			d := serviceDirs{config: tmp + sh.config, state: tmp + sh.state}
			tree := filepath.Join(tmp, "srv", "tree")
			for _, dir := range []string{tree, tmp + stateDir, filepath.Dir(tmp + config)} {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(tmp+config, []byte("root: "+tree+"\ninterface: eth1\n"), 0o644); err != nil {
				t.Fatal(err)
			}

			// The service: systemd sets $STATE_DIRECTORY to the unit's state directory.
			svc := serveStateFile(t, []string{"--config", tmp + config}, d, tmp+stateDir)
			if want := filepath.Join(tmp+stateDir, "state.json"); svc != want {
				t.Fatalf("the service keeps its state in %s, want %s", svc, want)
			}
			// ramboot serve run by hand with the unit's config: the same.
			if got := serveStateFile(t, []string{"--config", tmp + config}, d, ""); got != svc {
				t.Errorf("serve by hand: %s, the service %s", got, svc)
			}
			// ramboot node from the admin's shell.
			no := &nodeOpts{config: tmp + config, dirs: d}
			got, _, err := no.files()
			if err != nil {
				t.Fatal(err)
			}
			if got != svc {
				t.Errorf("node --config %s finds %s, the service uses %s", config, got, svc)
			}
			if tc.instance == "" {
				no := &nodeOpts{dirs: d}
				if got, _, err := no.files(); err != nil || got != svc {
					t.Errorf("node with no flags: %s %v, the service uses %s", got, err, svc)
				}
			}

			// Elsewhere (a config outside the units' directory, or no
			// state directory), both keep the old default, next to the tree.
			other := filepath.Join(tmp, "other.yaml")
			os.WriteFile(other, []byte("root: "+tree+"\n"), 0o644)
			next := filepath.Join(tmp, "srv", "state.json")
			if got := serveStateFile(t, []string{"--config", other}, d, ""); got != next {
				t.Errorf("serve with %s: %s, want %s", other, got, next)
			}
			if got, _, _ := (&nodeOpts{config: other, dirs: d}).files(); got != next {
				t.Errorf("node with %s: %s, want %s", other, got, next)
			}
			if err := os.Remove(tmp + stateDir); err != nil {
				t.Fatal(err)
			}
			if got := serveStateFile(t, []string{"--config", tmp + config}, d, ""); got != next {
				t.Errorf("serve by hand, no state directory: %s, want %s", got, next)
			}
			if got, _, _ := (&nodeOpts{config: tmp + config, dirs: d}).files(); got != next {
				t.Errorf("node, no state directory: %s, want %s", got, next)
			}
			// A state-file in the config wins for both.
			own := filepath.Join(tmp, "own.json")
			os.WriteFile(tmp+config, []byte("root: "+tree+"\nstate-file: "+own+"\n"), 0o644)
			if got := serveStateFile(t, []string{"--config", tmp + config}, d, tmp+stateDir); got != own {
				t.Errorf("service with state-file: %s, want %s", got, own)
			}
			if got, _, _ := (&nodeOpts{config: tmp + config, dirs: d}).files(); got != own {
				t.Errorf("node with state-file: %s, want %s", got, own)
			}
		})
	}
}
