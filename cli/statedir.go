package cli

import (
	"os"
	"path/filepath"
	"strings"
)

// Where serve keeps its files when no flag says (the full-DHCP lease file,
// and the install state, state.json, next to it), worked out the same way
// by `ramboot serve` under the shipped systemd units and by `ramboot node`
// in an admin's shell, which has no $STATE_DIRECTORY.

// serviceDirs are the shipped units' directories (dist/systemd):
// ramboot.service reads CONFIG/serve.yaml and keeps its state in STATE
// (StateDirectory=ramboot); ramboot@NAME reads CONFIG/NAME.yaml and keeps
// it in STATE/NAME (StateDirectory=ramboot/%i).
type serviceDirs struct {
	config string // ConfigurationDirectory=ramboot: /etc/ramboot
	state  string // StateDirectory=ramboot: /var/lib/ramboot
}

func shippedUnits() serviceDirs {
	return serviceDirs{config: "/etc/ramboot", state: "/var/lib/ramboot"}
}

// stateDir is the directory for serve's files: $STATE_DIRECTORY (env, as
// systemd sets it for the unit) if set; else, for a config file of the
// units' (CONFIG/serve.yaml, CONFIG/NAME.yaml), that unit's state
// directory if it exists; else "" (serve's files go next to the tree).
func (d serviceDirs) stateDir(config, env string) string {
	if sd, _, _ := strings.Cut(env, ":"); sd != "" {
		return sd
	}
	if config == "" {
		return ""
	}
	abs, err := filepath.Abs(config)
	if err != nil || filepath.Dir(abs) != filepath.Clean(d.config) {
		return ""
	}
	name, ok := strings.CutSuffix(filepath.Base(abs), ".yaml")
	if !ok || name == "" {
		return ""
	}
	dir := d.state
	if name != "serve" {
		dir = filepath.Join(d.state, name)
	}
	// Lstat: under DynamicUser= it is a link into /var/lib/private, which
	// only root may enter; reading the state there then fails by name.
	if _, err := os.Lstat(dir); err != nil {
		return ""
	}
	return dir
}

// leaseFile is serve's --lease-file when none is given: leases.json in
// stateDir, or "" (next to the tree, as server.Server has it).
func (d serviceDirs) leaseFile(config, env string) string {
	if sd := d.stateDir(config, env); sd != "" {
		return filepath.Join(sd, "leases.json")
	}
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// defaultFiles sets serve's lease file (and so its state file, next to
// it) when neither a flag nor the config did: d.leaseFile. env is
// $STATE_DIRECTORY.
func (o *serveOpts) defaultFiles(d serviceDirs, env string) {
	if o.LeaseFile == "" {
		o.LeaseFile = d.leaseFile(o.config, env)
	}
}
