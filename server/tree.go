package server

import (
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"sort"
)

// treeBoard is one board's operating-system files in the served tree: at
// the root for a one-board build, in <board>/ for a mixed one.
type treeBoard struct {
	Name   string // board name
	Dir    string // "" or "pc", relative to the tree
	Arch   string // Debian architecture: arm64, amd64
	Kernel string // kernel file name in Dir
}

// path names a file of the board relative to the tree.
func (b treeBoard) path(name string) string { return path.Join(b.Dir, name) }

// treeBoards reads the build manifests: the root's, and each
// <dir>/manifest.json of a mixed tree.
func (s *Server) treeBoards() []treeBoard {
	var out []treeBoard
	read := func(dir string) {
		data, err := os.ReadFile(filepath.Join(s.Root, dir, "manifest.json"))
		if err != nil {
			return
		}
		var m struct {
			Board      string `json:"board"`
			Arch       string `json:"arch"`
			KernelFile string `json:"kernel_file"`
		}
		if json.Unmarshal(data, &m) != nil || m.Board == "" {
			return
		}
		b := treeBoard{Name: m.Board, Dir: dir, Arch: m.Arch, Kernel: m.KernelFile}
		if b.Kernel == "" { // a tree built before manifests said so
			b.Kernel, b.Arch = "Image", "arm64"
			if _, err := os.Stat(filepath.Join(s.Root, dir, "vmlinuz")); err == nil {
				b.Kernel, b.Arch = "vmlinuz", "amd64"
			}
		}
		out = append(out, b)
	}
	read("")
	subs, _ := filepath.Glob(filepath.Join(s.Root, "*", "manifest.json"))
	sort.Strings(subs)
	for _, m := range subs {
		read(filepath.Base(filepath.Dir(m)))
	}
	return out
}

// boardFor picks the board an iPXE client boots: the one of its
// architecture, a PC board first for x86.
func (s *Server) boardFor(arch string) (treeBoard, bool) {
	bs := s.treeBoards()
	for _, b := range bs {
		if arch == "" || b.Arch == arch {
			return b, true
		}
	}
	return treeBoard{}, false
}

// hasFile reports whether the tree root holds name (the iPXE binaries).
func (s *Server) hasFile(name string) bool {
	st, err := os.Stat(filepath.Join(s.Root, name))
	return err == nil && st.Mode().IsRegular()
}
