// Package tree is the built netboot tree on disk: its manifest.json files
// (a board's Manifest; a mixed tree's MixedManifest at the root, naming
// the boards in their directories), reading a tree back as its boards,
// and the atomic write every file of it goes through.
//
// The builder writes a tree with WriteFile and a Manifest; the server,
// `serve --check` and `ramboot pxelinux` read it with Open or
// ReadManifest:
//
//	t, err := tree.Open("out/rpi4")
//	if err != nil { ... }
//	for _, b := range t.Boards {
//		fmt.Println(b.Name, b.Arch, b.Path(b.Kernel)) // rpi4 arm64 Image; pc amd64 pc/vmlinuz
//	}
package tree

import (
	"encoding/json"
	"fmt"
	"github.com/ramboot/ramboot/internal/atomicfile"
	"os"
	"path"
	"path/filepath"
)

// ManifestName is the manifest's file name, at the root and in each board
// directory of a mixed tree.
const ManifestName = "manifest.json"

// Manifest describes a built tree: every file's size and SHA-256 and
// every input that went into it.
type Manifest struct {
	Board        string        `json:"board"`
	Arch         string        `json:"arch"`
	KernelFile   string        `json:"kernel_file"`
	Ramboot      string        `json:"ramboot_version"`
	Go           string        `json:"go_version"`
	Kernel       KernelInfo    `json:"kernel"`
	Packages     []PackageInfo `json:"packages"`
	Modules      []string      `json:"modules"`
	Overlays     []OverlayInfo `json:"overlays"`
	SourceDate   int64         `json:"source_date_epoch"`
	BusyboxKey   string        `json:"busybox_key"`
	Commands     []string      `json:"commands"`
	Files        []FileInfo    `json:"files"`
	TFTPPayload  int64         `json:"tftp_payload_bytes"`
	TFTPFetched  []string      `json:"tftp_fetched"`
	BoardProfile string        `json:"board_profile_sha256"`
	// BootImg is the board's HTTP-boot boot.img and boot.sig (`ramboot
	// build --http-boot`); nil when the build made none. They are not in
	// Files, which are the TFTP tree's.
	BootImg *BootImgInfo   `json:"boot_img,omitempty"`
	Extra   map[string]any `json:"extra,omitempty"`
}

// KernelInfo names the kernel used.
type KernelInfo struct {
	Release string `json:"release"`
	Package string `json:"package,omitempty"`
	Version string `json:"version,omitempty"`
	Source  string `json:"source"`
	Image   string `json:"image_sha256"`
}

// PackageInfo is one Debian package used.
type PackageInfo struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Suite   string `json:"suite,omitempty"`
	SHA256  string `json:"sha256"`
	Source  string `json:"source"` // "archive" or the local path's base name
}

// OverlayInfo is one overlay laid into the initramfs.
type OverlayInfo struct {
	Dir    string `json:"dir"`
	SHA256 string `json:"sha256"`
}

// FileInfo is one file of the output tree. Name is relative to the tree's
// root, in a board's directory too ("rpi4/Image").
type FileInfo struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// BootImgName and BootSigName are the HTTP-boot files' names, beside the
// board's other files: at a one-board tree's root, in <board>/ in a mixed
// tree (Board.Path(BootImgName)).
const (
	BootImgName = "boot.img"
	BootSigName = "boot.sig"
)

// MaxBootImg is the largest boot.img the Pi 4/5 bootloader takes: its
// ramdisk limit (128 MB from bootloader 2022-03-10; read as MiB, the
// larger, since no source says which).
const MaxBootImg = 128 << 20

// BootImgInfo describes a board's boot.img, the FAT image a Pi 4/5
// bootloader fetches over HTTP, and its signature file boot.sig beside it.
type BootImgInfo struct {
	Name   string `json:"name"` // relative to the tree's root: "boot.img", "rpi4/boot.img"
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Sig is boot.sig ("rpi4/boot.sig"): the image's sha256, ts: and the
	// rsa2048: signature, as rpi-eeprom-digest -k writes it.
	Sig FileInfo `json:"sig"`
	// TS is boot.sig's ts: line (the build's SOURCE_DATE_EPOCH).
	TS int64 `json:"ts"`
	// KeySHA256 is the SHA-256 of the signing key's public half in the
	// EEPROM's pubkey.bin form (n and e, little endian, 264 bytes): the
	// key that must be in the Pi's EEPROM.
	KeySHA256 string `json:"key_sha256"`
	// Files are the files inside the image, by their names there (all at
	// its root: "config.txt", "Image").
	Files []FileInfo `json:"files"`
}

// MixedManifest is a mixed tree's root manifest.json: which boards it
// holds (each in the directory of its name, with its own Manifest) and
// the files at its root.
type MixedManifest struct {
	Boards      []string         `json:"boards"`
	Ramboot     string           `json:"ramboot_version"`
	Go          string           `json:"go_version"`
	Files       []FileInfo       `json:"files"`
	TFTPPayload map[string]int64 `json:"tftp_payload_bytes"` // per board
}

// Marshal is a manifest's bytes as the builder writes them: indented
// JSON and a newline.
func Marshal(m any) ([]byte, error) {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// ReadManifest reads the board manifest dir/manifest.json of the tree at
// root (dir "" for a one-board tree). A file it cannot read is the
// *fs.PathError of the read (errors.Is(err, fs.ErrNotExist) for a
// missing one); a file it cannot parse is an error naming the file.
func ReadManifest(root, dir string) (Manifest, error) {
	var m Manifest
	return m, readJSON(filepath.Join(root, dir, ManifestName), &m)
}

// ReadRoot reads the manifest.json at a tree's root: a one-board tree's
// Manifest (its Board set), or a mixed tree's MixedManifest (mixed not
// nil). A manifest naming neither a board nor boards is returned as read,
// with no error: Open refuses it. Errors are as ReadManifest's.
func ReadRoot(root string) (m Manifest, mixed *MixedManifest, err error) {
	p := filepath.Join(root, ManifestName)
	var probe struct {
		Board  string   `json:"board"`
		Boards []string `json:"boards"`
	}
	if err := readJSON(p, &probe); err != nil {
		return m, nil, err
	}
	if probe.Board == "" && len(probe.Boards) > 0 {
		mixed = &MixedManifest{}
		return m, mixed, readJSON(p, mixed)
	}
	return m, nil, readJSON(p, &m)
}

func readJSON(p string, v any) error {
	data, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

// Tree is a built tree read back.
type Tree struct {
	Root   string
	Mixed  *MixedManifest // a mixed tree's root manifest; nil for one board
	Boards []Board        // the root's board, or a mixed tree's in its manifest's order
}

// Board is one board's operating-system files in a tree: at the root for
// a one-board build, in <board>/ for a mixed one.
type Board struct {
	Name     string // board name
	Dir      string // "" or "pc", relative to the tree
	Arch     string // Debian architecture: arm64, amd64
	Kernel   string // kernel file name in Dir
	Manifest Manifest
}

// Path names a file of the board relative to the tree ("pc/vmlinuz").
func (b Board) Path(name string) string { return path.Join(b.Dir, name) }

// Open reads the tree at root: its manifest.json and, for a mixed tree,
// each board directory's. A missing or damaged manifest, a root manifest
// naming no board, or a board directory whose manifest is for another
// board is an error naming the file.
func Open(root string) (*Tree, error) {
	m, mixed, err := ReadRoot(root)
	if err != nil {
		return nil, err
	}
	t := &Tree{Root: root, Mixed: mixed}
	switch {
	case mixed != nil:
		for _, n := range mixed.Boards {
			bm, err := ReadManifest(root, n)
			if err != nil {
				return nil, err
			}
			if bm.Board != n {
				return nil, fmt.Errorf("%s: for board %q, the tree's manifest says %q: rebuild the tree",
					filepath.Join(root, n, ManifestName), bm.Board, n)
			}
			t.Boards = append(t.Boards, board(root, n, bm))
		}
	case m.Board != "":
		t.Boards = []Board{board(root, "", m)}
	default:
		return nil, fmt.Errorf("%s: names no board: not a tree that make image wrote", filepath.Join(root, ManifestName))
	}
	return t, nil
}

func board(root, dir string, m Manifest) Board {
	b := Board{Name: m.Board, Dir: dir, Arch: m.Arch, Kernel: m.KernelFile, Manifest: m}
	if b.Kernel == "" { // a tree built before manifests said so
		b.Kernel, b.Arch = "Image", "arm64"
		if _, err := os.Stat(filepath.Join(root, dir, "vmlinuz")); err == nil {
			b.Kernel, b.Arch = "vmlinuz", "amd64"
		}
	}
	return b
}

// WriteFile writes data to p (mode 0644) atomically and durably: a
// temporary file beside it, its data synced, renamed over p, and the
// directory synced, so a reader (the server, a node fetching over TFTP)
// sees the old file or the new one, never a part, and a crash leaves one
// of them on disk.
func WriteFile(p string, data []byte) error {
	if err := atomicfile.Write(p, data, atomicfile.Options{}); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	return nil
}
