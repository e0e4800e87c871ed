package builder

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/ramboot/ramboot/boards"
	"github.com/ramboot/ramboot/tree"
)

// configOrder is the order boards' sections go into a mixed tree's
// config.txt. The Pi firmware applies every section whose filter matches,
// later lines winning, and a CM4 matches [pi4] as well as [cm4]: the more
// specific board comes after the one it refines.
var configOrder = []string{"rpi3", "rpi4", "cm4", "rpi5"}

// BuildTree builds several boards into one tree that a mixed rack boots
// from (BOARD=rpi3,rpi4,pc): each board's kernel, device trees,
// initramfs, cmdline.txt and manifest in <board>/, every board's firmware
// (bootcode.bin, start4.elf, undionly.kpxe, ...) at the root, and one
// config.txt with each Pi model's section pointing at its directory
// (os_prefix). A firmware file two boards both need must be the same
// bytes in both. With o.HTTPBoot, each board whose profile says
// http_boot gets <board>/boot.img and <board>/boot.sig, holding the
// firmware it needs and its own config.txt without os_prefix (inside
// boot.img its files are at the root); the other boards get none.
func BuildTree(ctx context.Context, o Options, names []string) error {
	if len(names) < 2 {
		return fmt.Errorf("BuildTree: %d boards; a mixed tree has two or more", len(names))
	}
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			return fmt.Errorf("board %s named twice in %q", n, strings.Join(names, ","))
		}
		seen[n] = true
		if strings.ContainsAny(n, `/\.`) {
			return fmt.Errorf("board %q: a mixed tree takes board names (%s), not profile files", n, strings.Join(boards.Names(), ", "))
		}
	}
	order := slices.Clone(names)
	rank := func(n string) int {
		if i := slices.Index(configOrder, n); i >= 0 {
			return i
		}
		return len(configOrder)
	}
	slices.SortStableFunc(order, func(a, b string) int { return rank(a) - rank(b) })
	httpBoot := map[string]bool{}
	if o.HTTPBoot {
		if err := checkSignKey(o.SignKey); err != nil {
			return err
		}
		for _, n := range order {
			bd, err := boards.Lookup(n)
			if err != nil {
				return err
			}
			httpBoot[n] = bd.HTTPBoot
		}
		if !slices.Contains(slices.Collect(maps.Values(httpBoot)), true) {
			return fmt.Errorf("--http-boot: none of %s can boot over HTTP: it is for the EEPROM bootloaders of %s",
				strings.Join(order, ", "), strings.Join(boards.HTTPBootNames(), ", "))
		}
	}

	start := time.Now()
	rootOwner := map[string]string{} // root file -> board that wrote it
	rootSum := map[string]string{}
	var configs []string
	var readsConfig []string // boards whose firmware fetches the tree's config.txt
	tm := tree.MixedManifest{Boards: order, Ramboot: o.Version, Go: runtime.Version(), TFTPPayload: map[string]int64{}}
	for _, n := range order {
		bo := o
		bo.Board, bo.Subdir = n, n
		bo.HTTPBoot = httpBoot[n]
		b := &Build{Options: bo}
		if err := b.Run(ctx); err != nil {
			return fmt.Errorf("board %s: %w", n, err)
		}
		for _, f := range b.Manifest.Files {
			if strings.Contains(f.Name, "/") {
				continue
			}
			if prev, ok := rootSum[f.Name]; ok && prev != f.SHA256 {
				return fmt.Errorf("boards %s and %s both need %s at the tree's root, with different contents: "+
					"pin the same firmware package version in both profiles", rootOwner[f.Name], n, f.Name)
			}
			if _, ok := rootSum[f.Name]; !ok {
				tm.Files = append(tm.Files, f)
			}
			rootSum[f.Name], rootOwner[f.Name] = f.SHA256, n
		}
		if b.ConfigTxt != "" {
			configs = append(configs, strings.TrimRight(b.ConfigTxt, "\n")+"\n")
		}
		tm.TFTPPayload[n] = b.Manifest.TFTPPayload
		if slices.Contains(b.Board.Fetched, "config.txt") {
			readsConfig = append(readsConfig, n)
		}
	}
	if len(configs) > 0 {
		cfg := fmt.Sprintf("# ramboot %s: a mixed tree for %s; each model's section loads its OS from its directory.\n",
			o.Version, strings.Join(order, ", ")) + strings.Join(configs, "\n")
		if err := tree.WriteFile(filepath.Join(o.Out, "config.txt"), []byte(cfg)); err != nil {
			return err
		}
		tm.Files = append(tm.Files, tree.FileInfo{Name: "config.txt", Size: int64(len(cfg)), SHA256: sha([]byte(cfg))})
		for _, n := range readsConfig {
			tm.TFTPPayload[n] += int64(len(cfg))
		}
	}
	slices.SortFunc(tm.Files, func(a, b tree.FileInfo) int { return strings.Compare(a.Name, b.Name) })
	m, err := tree.Marshal(tm)
	if err != nil {
		return err
	}
	if err := tree.WriteFile(filepath.Join(o.Out, tree.ManifestName), m); err != nil {
		return err
	}
	if o.Log != nil {
		fmt.Fprintf(o.Log, "%6.1fs  tree: %s holds %s (%d files at the root)\n", time.Since(start).Seconds(), o.Out, strings.Join(order, ", "), len(tm.Files))
		if o.HTTPBoot {
			var with, without []string
			for _, n := range order {
				if httpBoot[n] {
					with = append(with, n+"/"+tree.BootImgName)
				} else {
					without = append(without, n)
				}
			}
			fmt.Fprintf(o.Log, "%6.1fs  http boot: %s", time.Since(start).Seconds(), strings.Join(with, ", "))
			if len(without) > 0 {
				fmt.Fprintf(o.Log, "; none for %s (no HTTP boot: TFTP only)", strings.Join(without, ", "))
			}
			fmt.Fprintln(o.Log)
		}
	}
	return nil
}
