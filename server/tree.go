package server

import (
	"os"
	"path/filepath"

	"github.com/ramboot/ramboot/tree"
)

// treeBoards reads the built tree's boards (tree.Open): the root's, or
// each board directory's of a mixed tree. A tree that does not open has
// none; the error is logged.
func (s *Server) treeBoards() []tree.Board {
	t, err := tree.Open(s.Root)
	if err != nil {
		s.log().Error("tree", "root", s.Root, "err", err)
		return nil
	}
	return t.Boards
}

// boardFor picks the board an iPXE client boots: the first of its
// architecture, in the tree's order.
func (s *Server) boardFor(arch string) (tree.Board, bool) {
	for _, b := range s.treeBoards() {
		if arch == "" || b.Arch == arch {
			return b, true
		}
	}
	return tree.Board{}, false
}

// hasFile reports whether the tree root holds name (the iPXE binaries).
func (s *Server) hasFile(name string) bool {
	st, err := os.Stat(filepath.Join(s.Root, name))
	return err == nil && st.Mode().IsRegular()
}
