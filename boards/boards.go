// Package boards holds ramboot's board profiles as data.
//
// A board is a YAML file (rpi4.yaml, virt.yaml, ...) naming the Debian
// kernel package and version, the device trees and firmware files to copy
// out of Debian packages, the kernel modules the init needs, and templates
// for the Pi firmware's config.txt and the kernel command line.
//
//	b, err := boards.Lookup("rpi4")
//	if err != nil { ... }
//	cfg, err := b.Render(b.ConfigTxt, boards.Vars{Board: b.Name, Version: "v0.1"})
package boards

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"
	"text/template"

	"go.yaml.in/yaml/v3"
)

//go:embed *.yaml
var profiles embed.FS

// Board is one board profile.
type Board struct {
	Name        string     `yaml:"name"`
	Description string     `yaml:"description"`
	Arch        string     `yaml:"arch"` // Debian architecture: arm64, amd64
	Kernel      Kernel     `yaml:"kernel"`
	Firmware    []Firmware `yaml:"firmware"`
	Modules     []string   `yaml:"modules"`
	Fetched     []string   `yaml:"fetched"`
	ConfigTxt   string     `yaml:"config_txt"`
	CmdlineTxt  string     `yaml:"cmdline_txt"`
	QEMU        QEMU       `yaml:"qemu"`
	// HTTPBoot says the board's bootloader can fetch a signed boot.img
	// over HTTP (the Pi 4, CM4 and Pi 5 EEPROM bootloaders): `ramboot
	// build --http-boot` makes one for it.
	HTTPBoot bool `yaml:"http_boot"`

	// Source is where the profile came from (embedded name or file path).
	Source string `yaml:"-"`
}

// Kernel names the Debian kernel package.
type Kernel struct {
	Suite     string `yaml:"suite"`
	Component string `yaml:"component"`
	Package   string `yaml:"package"`
	Version   string `yaml:"version"`
	// Compress is "gzip" or "" (none) for the Image written to the tree.
	Compress string `yaml:"compress"`
	// Image is the kernel's name in the tree: "Image" (the default, what
	// config.txt names) or "vmlinuz" for a PC.
	Image string `yaml:"image"`
	DTBs  []File `yaml:"dtbs"`
}

// ImageName is the kernel's file name in the tree.
func (k Kernel) ImageName() string {
	if k.Image == "" {
		return "Image"
	}
	return k.Image
}

// Firmware is a Debian package and the files taken from it.
type Firmware struct {
	Package   string `yaml:"package"`
	Suite     string `yaml:"suite"`
	Component string `yaml:"component"`
	Version   string `yaml:"version"`
	Files     []File `yaml:"files"`
}

// File maps a path inside a package to a name in the output tree.
// From may contain {kver}, the kernel's release string.
type File struct {
	From    string `yaml:"from"`
	To      string `yaml:"to"`
	Fetched bool   `yaml:"fetched"`
}

// QEMU says how tests boot the board in QEMU.
type QEMU struct {
	Machine string `yaml:"machine"`
	Console string `yaml:"console"`
}

// Vars are the values a template may use.
type Vars struct {
	Board   string
	Version string // ramboot version
	Kernel  string // kernel release
}

// GOARCH is the Go architecture for the board's Debian architecture.
func (b *Board) GOARCH() string {
	switch b.Arch {
	case "arm64":
		return "arm64"
	case "amd64":
		return "amd64"
	case "armhf", "armel":
		return "arm"
	}
	return ""
}

// ErrUnknownBoard is returned by Lookup for a name with no profile.
var ErrUnknownBoard = errors.New("unknown board")

// Names lists the built-in boards.
func Names() []string {
	ents, _ := fs.ReadDir(profiles, ".")
	var names []string
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".yaml"); ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// HTTPBootNames lists the built-in boards whose profile says http_boot.
func HTTPBootNames() []string {
	var names []string
	for _, n := range Names() {
		if b, err := Lookup(n); err == nil && b.HTTPBoot {
			names = append(names, n)
		}
	}
	return names
}

// Lookup returns a built-in board by name, or loads a profile file when
// name ends in .yaml or contains a slash.
func Lookup(name string) (*Board, error) {
	if strings.HasSuffix(name, ".yaml") || strings.Contains(name, "/") {
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("board profile: %w", err)
		}
		return Parse(name, data)
	}
	data, err := profiles.ReadFile(name + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("%w %q: choose one of %s, or pass a profile file (--board ./myboard.yaml)",
			ErrUnknownBoard, name, strings.Join(Names(), ", "))
	}
	return Parse("boards/"+name+".yaml", data)
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

// Parse decodes and validates a profile. Unknown keys are errors, so a
// typo never silently drops a setting.
func Parse(source string, data []byte) (*Board, error) {
	var b Board
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	b.Source = source
	if err := b.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	return &b, nil
}

func (b *Board) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !nameRE.MatchString(b.Name) {
		bad("name %q: use lower-case letters, digits and dashes", b.Name)
	}
	if b.GOARCH() == "" {
		bad("arch %q: use a Debian architecture (arm64, amd64)", b.Arch)
	}
	if b.Kernel.Package == "" || b.Kernel.Suite == "" {
		bad("kernel: package and suite are required (for example package: linux-image-6.12.117+deb13-arm64, suite: trixie)")
	}
	switch b.Kernel.Compress {
	case "", "none", "gzip":
	default:
		bad("kernel.compress %q: use gzip or none", b.Kernel.Compress)
	}
	if n := b.Kernel.Image; n != "" && (strings.ContainsAny(n, "/ ") || n == "." || n == "..") {
		bad("kernel.image %q: use a plain file name such as Image or vmlinuz", n)
	}
	outs := map[string]bool{}
	checkFile := func(where string, f File) {
		if f.From == "" || f.To == "" {
			bad("%s: each file needs from and to", where)
			return
		}
		if path.IsAbs(f.To) || strings.Contains(f.To, "..") || path.Clean(f.To) != f.To {
			bad("%s: to %q must be a plain relative path inside the tree", where, f.To)
		}
		if outs[f.To] {
			bad("%s: %q is written twice", where, f.To)
		}
		outs[f.To] = true
	}
	for _, f := range b.Kernel.DTBs {
		checkFile("kernel.dtbs", f)
	}
	for i, fw := range b.Firmware {
		if fw.Package == "" {
			bad("firmware[%d]: package is required", i)
		}
		for _, f := range fw.Files {
			checkFile("firmware "+fw.Package, f)
		}
	}
	for _, m := range b.Modules {
		if m == "" || strings.ContainsAny(m, " /") {
			bad("modules: %q is not a module name", m)
		}
	}
	for _, t := range []struct{ name, text string }{{"config_txt", b.ConfigTxt}, {"cmdline_txt", b.CmdlineTxt}} {
		if _, err := template.New(t.name).Option("missingkey=error").Parse(t.text); err != nil {
			bad("%s: %v", t.name, err)
		}
	}
	return errors.Join(errs...)
}

// Render fills a template (ConfigTxt or CmdlineTxt) with v.
func (b *Board) Render(text string, v Vars) (string, error) {
	t, err := template.New(b.Name).Option("missingkey=error").Parse(text)
	if err != nil {
		return "", fmt.Errorf("board %s: %w", b.Name, err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, v); err != nil {
		return "", fmt.Errorf("board %s: %w", b.Name, err)
	}
	return buf.String(), nil
}

// Expand replaces {kver} in a package path.
func Expand(p, kver string) string { return strings.ReplaceAll(p, "{kver}", kver) }

// Raw returns a built-in profile's bytes.
func Raw(name string) ([]byte, error) { return profiles.ReadFile(name + ".yaml") }
