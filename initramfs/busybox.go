package initramfs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/u-root/gobusybox/src/pkg/bb"
	"github.com/u-root/gobusybox/src/pkg/bb/findpkg"
	"github.com/u-root/gobusybox/src/pkg/golang"
)

// Busybox builds one static Go binary holding many commands with u-root's
// gobusybox, and caches it by its inputs: a rebuild with the same Go
// toolchain, GOARCH, command list and sources is a file copy.
type Busybox struct {
	GOARCH string
	// Commands are Go import paths (u-root's commands) or directories
	// relative to SrcDir (ramboot's own commands, like ./cmd/init).
	Commands []string
	// SrcDir is the ramboot module root; its go.mod pins u-root.
	SrcDir string
	// CacheDir holds built binaries named by their input hash.
	CacheDir string
	// Tags are Go build tags (goshsmall: gosh's plain line reader, which
	// suits a serial console).
	Tags []string
	// Log receives progress lines; nil is silent.
	Log io.Writer
}

type logf struct{ w io.Writer }

func (l logf) Printf(format string, v ...any) {
	if l.w != nil {
		fmt.Fprintf(l.w, format+"\n", v...)
	}
}
func (l logf) Print(v ...any) {
	if l.w != nil {
		fmt.Fprintln(l.w, v...)
	}
}

// Key is the hash of everything that changes the binary: the Go version,
// GOARCH, build tags, the command list, go.mod, go.sum and the non-test Go
// files of every ramboot package the commands import.
func (b *Busybox) Key() (string, error) {
	h := sha256.New()
	gover, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		return "", fmt.Errorf("busybox: the Go toolchain is needed to build the initramfs commands (go env: %w); install Go from https://go.dev/dl", err)
	}
	fmt.Fprintf(h, "go=%s\ngoarch=%s\ntags=%s\n", strings.TrimSpace(string(gover)), b.GOARCH, strings.Join(b.Tags, ","))
	cmds := append([]string(nil), b.Commands...)
	sort.Strings(cmds)
	for _, c := range cmds {
		fmt.Fprintf(h, "cmd=%s\n", c)
	}
	// The local packages the commands import, as go list sees them for
	// the target; their non-test Go files are inputs.
	var local []string
	for _, c := range b.Commands {
		if strings.HasPrefix(c, "./") {
			local = append(local, c)
		}
	}
	files := []string{filepath.Join(b.SrcDir, "go.mod"), filepath.Join(b.SrcDir, "go.sum")}
	if len(local) > 0 {
		args := []string{"list", "-deps", "-f", "{{if not .Standard}}{{.Dir}}{{end}}"}
		if len(b.Tags) > 0 {
			args = append(args, "-tags", strings.Join(b.Tags, ","))
		}
		cmd := exec.Command("go", append(args, local...)...)
		cmd.Dir = b.SrcDir
		cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+b.GOARCH, "CGO_ENABLED=0")
		out, err := cmd.Output()
		if err != nil {
			msg := ""
			if ee, ok := err.(*exec.ExitError); ok {
				msg = string(ee.Stderr)
			}
			return "", fmt.Errorf("busybox: go list %s: %w\n%s", strings.Join(local, " "), err, msg)
		}
		for _, dir := range strings.Fields(string(out)) {
			if rel, err := filepath.Rel(b.SrcDir, dir); err != nil || strings.HasPrefix(rel, "..") {
				continue // a module from the cache: pinned by go.sum
			}
			ents, err := os.ReadDir(dir)
			if err != nil {
				return "", err
			}
			for _, e := range ents {
				if n := e.Name(); strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go") {
					files = append(files, filepath.Join(dir, n))
				}
			}
		}
	}
	sort.Strings(files)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		rel, _ := filepath.Rel(b.SrcDir, f)
		fmt.Fprintf(h, "file=%s %d\n", rel, len(data))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Build returns the path of the busybox binary and its input hash (Key),
// building it if the cache has none for these inputs. hit reports a cache
// hit.
func (b *Busybox) Build(ctx context.Context) (path, key string, hit bool, err error) {
	if _, err := os.Stat(filepath.Join(b.SrcDir, "go.mod")); err != nil {
		return "", "", false, fmt.Errorf("busybox: %s is not the ramboot source tree (no go.mod): run from the source tree or pass --src DIR", b.SrcDir)
	}
	key, err = b.Key()
	if err != nil {
		return "", "", false, err
	}
	dir := filepath.Join(b.CacheDir, "busybox")
	out := filepath.Join(dir, b.GOARCH+"-"+key[:32])
	if _, err := os.Stat(out); err == nil {
		return out, key, true, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", false, fmt.Errorf("busybox cache: %w", err)
	}
	gen, err := os.MkdirTemp(dir, "gen-")
	if err != nil {
		return "", "", false, err
	}
	defer os.RemoveAll(gen)
	tmp := out + ".tmp"
	paths := make([]string, len(b.Commands))
	for i, c := range b.Commands {
		if strings.HasPrefix(c, "./") {
			c = filepath.Join(b.SrcDir, c)
		}
		paths[i] = c
	}
	env := golang.Default(golang.DisableCGO(), golang.WithGOARCH(b.GOARCH), golang.WithWorkingDir(b.SrcDir), golang.WithBuildTag(b.Tags...))
	env.GOOS = "linux"
	if env.GOROOT == "" {
		// A ramboot built with -trimpath does not know its GOROOT; ask go.
		out, err := exec.Command("go", "env", "GOROOT").Output()
		if err != nil {
			return "", "", false, fmt.Errorf("busybox: go env GOROOT: %w", err)
		}
		env.GOROOT = strings.TrimSpace(string(out))
	}
	l := logf{b.Log}
	if err := bb.BuildBusybox(l, &bb.Opts{
		Env:          env,
		LookupEnv:    &findpkg.Env{},
		GenSrcDir:    filepath.Join(gen, "src"),
		CommandPaths: paths,
		BinaryPath:   tmp,
		GoBuildOpts:  &golang.BuildOpts{ExtraArgs: []string{"-buildvcs=false"}},
	}); err != nil {
		os.Remove(tmp)
		return "", "", false, fmt.Errorf("busybox: building %d commands for %s: %w", len(paths), b.GOARCH, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", "", false, err
	}
	return out, key, false, nil
}
