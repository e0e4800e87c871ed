package modules

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeTree is a small module tree exercising every kind of edge.
var fakeTree = []fakeModule{
	// a needs b and c, both need d: a diamond, with each compression.
	{"kernel/net/a.ko.xz", []string{"name=a", "depends=b,c", vermagic}},
	{"kernel/net/b.ko.zst", []string{"name=b", "depends=d"}},
	{"kernel/net/c.ko.gz", []string{"name=c", "depends=d"}},
	{"kernel/lib/d.ko", []string{"name=d", "depends="}},
	// A dashed name, softdep pre on a dashed name, and an fs alias.
	{"kernel/drivers/e-dash.ko.xz", []string{"name=e_dash", "depends=", "softdep=pre: f-pre", "alias=fs-efs"}},
	{"kernel/drivers/f-pre.ko.xz", []string{"name=f_pre", "depends=d"}},
	// A softdep on an alias (like ext4's "pre: crc32c").
	{"kernel/fs/g.ko.xz", []string{"name=g", "depends=", "softdep=pre: crc32c"}},
	{"kernel/crypto/crc32c_generic.ko.xz", []string{"name=crc32c_generic", "depends=", "alias=crc32c", "alias=crypto-crc32c"}},
	{"kernel/crypto/crc32c-arm64.ko.xz", []string{"name=crc32c_arm64", "depends=", "alias=crypto-crc32c"}},
	// Only a glob alias.
	{"kernel/drivers/h.ko.xz", []string{"name=h", "depends=", "alias=of:N*T*Cvendor,thing-v[0-9]C*"}},
	// A softdep cycle, with a hard depends on the side.
	{"kernel/s/s1.ko", []string{"name=s1", "depends=d", "softdep=pre: s2"}},
	{"kernel/s/s2.ko", []string{"name=s2", "depends=", "softdep=pre: s1"}},
	// A hard cycle.
	{"kernel/x/x1.ko", []string{"name=x1", "depends=x2"}},
	{"kernel/x/x2.ko", []string{"name=x2", "depends=x3"}},
	{"kernel/x/x3.ko", []string{"name=x3", "depends=x1"}},
	// A hard dependency that is missing.
	{"kernel/m/m.ko", []string{"name=m", "depends=nothere"}},
	// Softdeps on a built-in module, on nothing, and post only.
	{"kernel/j/j.ko", []string{"name=j", "depends=", "softdep=pre: ext4 nowhere"}},
	{"kernel/l/l.ko", []string{"name=l", "depends=", "softdep=post: d"}},
	// Softdep that is also a hard dependency, and on itself via alias.
	{"kernel/k/k.ko", []string{"name=k", "depends=d", "softdep=pre: d fs-kfs", "alias=fs-kfs"}},
}

var fakeExtra = map[string]string{
	"modules.builtin":         "kernel/fs/ext4/ext4.ko\nkernel/drivers/virtio/virtio_pci.ko\n",
	"modules.builtin.modinfo": "ext4.alias=fs-ext4\x00ext4.license=GPL\x00virtio_pci.alias=pci:v00001AF4d*sv*sd*bc*sc*i*\x00",
	"modules.order":           "kernel/net/a.ko\n",
	"kernel/README":           "not a module",
}

func openFake(t *testing.T) *Tree {
	t.Helper()
	tree, err := Open(writeTree(t, fakeTree, fakeExtra))
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

func names(mods []Module) []string {
	var out []string
	for _, m := range mods {
		out = append(out, m.Name)
	}
	return out
}

func TestClosure(t *testing.T) {
	tree := openFake(t)
	tests := []struct {
		name        string
		in          []string
		wantOrder   []string
		wantBuiltin []string
		wantIgnored []string
		wantErr     string
	}{
		{name: "nothing", in: nil},
		{name: "leaf", in: []string{"d"}, wantOrder: []string{"d"}},
		{name: "diamond, ties by name", in: []string{"a"}, wantOrder: []string{"d", "b", "c", "a"}},
		{name: "duplicates and dependencies requested too", in: []string{"a", "d", "a", "c"}, wantOrder: []string{"d", "b", "c", "a"}},
		{name: "dash and underscore are the same", in: []string{"e-dash"}, wantOrder: []string{"d", "f_pre", "e_dash"}},
		{name: "underscore form", in: []string{"e_dash"}, wantOrder: []string{"d", "f_pre", "e_dash"}},
		{name: "softdep pre comes first even when its name sorts later", in: []string{"e_dash", "d"}, wantOrder: []string{"d", "f_pre", "e_dash"}},
		{name: "softdep through an alias", in: []string{"g"}, wantOrder: []string{"crc32c_generic", "g"}},
		{name: "requested alias, exact", in: []string{"fs-efs"}, wantOrder: []string{"d", "f_pre", "e_dash"}},
		{name: "alias matching several modules loads them all", in: []string{"crypto-crc32c"}, wantOrder: []string{"crc32c_arm64", "crc32c_generic"}},
		{name: "glob alias", in: []string{"of:NfooTbarCvendor,thing-v2C"}, wantOrder: []string{"h"}},
		{name: "softdep cycle is broken", in: []string{"s2"}, wantOrder: []string{"d", "s1", "s2"}},
		{name: "softdep cycle, other entry", in: []string{"s1"}, wantOrder: []string{"d", "s1", "s2"}},
		{name: "builtin, by name and by alias", in: []string{"ext4", "virtio-pci", "fs-ext4", "d"}, wantOrder: []string{"d"}, wantBuiltin: []string{"ext4", "fs_ext4", "virtio_pci"}},
		{name: "builtin glob alias", in: []string{"pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00"}, wantBuiltin: []string{"pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00"}},
		{name: "softdeps on builtin and missing modules", in: []string{"j"}, wantOrder: []string{"j"}, wantBuiltin: []string{"ext4"}, wantIgnored: []string{"j: nowhere"}},
		{name: "softdep post is not loaded", in: []string{"l"}, wantOrder: []string{"l"}},
		{name: "softdep also hard, and on itself", in: []string{"k"}, wantOrder: []string{"d", "k"}},
		{name: "hard cycle", in: []string{"a", "x2"}, wantErr: "cycle: x1 -> x2 -> x3 -> x1"},
		{name: "missing hard dependency", in: []string{"m"}, wantErr: `module m (kernel/m/m.ko) depends on "nothere", which is not in the tree`},
		{name: "unknown", in: []string{"a", "gnet"}, wantErr: `unknown kernel module in `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := tree.Closure(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Closure(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantOrder, names(res.Modules)); diff != "" {
				t.Errorf("load order mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantBuiltin, res.Builtin); diff != "" {
				t.Errorf("Builtin mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantIgnored, res.IgnoredSoftdeps); diff != "" {
				t.Errorf("IgnoredSoftdeps mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestClosureModules(t *testing.T) {
	tree := openFake(t)
	res, err := tree.Closure([]string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Module{
		{Name: "d", Path: "kernel/lib/d.ko"},
		{Name: "b", Path: "kernel/net/b.ko", Depends: []string{"d"}},
		{Name: "c", Path: "kernel/net/c.ko", Depends: []string{"d"}},
		{Name: "a", Path: "kernel/net/a.ko", Depends: []string{"b", "c"}, Vermagic: vermagic[len("vermagic="):]},
	}
	if diff := cmp.Diff(want, res.Modules); diff != "" {
		t.Errorf("Closure mismatch (-want +got):\n%s", diff)
	}
	for _, m := range res.Modules {
		data, err := tree.ReadPlain(m)
		if err != nil {
			t.Fatal(err)
		}
		info, err := ReadModInfo(data)
		if err != nil || info.Name != m.Name {
			t.Errorf("ReadPlain(%s) gives module %q, %v", m.Path, info.Name, err)
		}
	}
	if _, err := tree.ReadPlain(Module{Name: "zz", Path: "kernel/zz.ko"}); err == nil {
		t.Error("ReadPlain of a module not in the tree succeeded")
	}
}

func TestUnknownError(t *testing.T) {
	tree := openFake(t)
	_, err := tree.Closure([]string{"edash", "a", "crc32", "zzzzzz", "edash"})
	var ue *UnknownError
	if !errors.As(err, &ue) {
		t.Fatalf("Closure error = %v, want an *UnknownError", err)
	}
	if diff := cmp.Diff([]string{"edash", "crc32", "zzzzzz"}, ue.Names); diff != "" {
		t.Errorf("Names mismatch (-want +got):\n%s", diff)
	}
	wantSugg := map[string][]string{
		"edash": {"e_dash"},
		"crc32": {"crc32c_arm64", "crc32c_generic"},
	}
	if diff := cmp.Diff(wantSugg, ue.Suggestions); diff != "" {
		t.Errorf("Suggestions mismatch (-want +got):\n%s", diff)
	}
	msg := err.Error()
	for _, want := range []string{
		`"edash": did you mean e_dash?`,
		`"crc32": did you mean crc32c_arm64, crc32c_generic?`,
		`"zzzzzz": no similar module name`,
		"check the board's modules list",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error message does not contain %q:\n%s", want, msg)
		}
	}
}

func TestSuggest(t *testing.T) {
	all := []string{"genet", "bcmgenet", "virtio_net", "virtio_blk", "nfsv4", "nfsv3", "nfs", "overlay", "e1000"}
	tests := []struct {
		in   string
		want []string
	}{
		{"gent", []string{"genet"}},
		{"genet", []string{"genet", "bcmgenet"}},
		{"virtio", []string{"virtio_blk", "virtio_net"}},
		{"nfs4", []string{"nfs", "nfsv4", "nfsv3"}},
		{"overlayfs", []string{"overlay"}},
		{"qwerty", nil},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, suggest(tt.in, all)); diff != "" {
			t.Errorf("suggest(%q) mismatch (-want +got):\n%s", tt.in, diff)
		}
	}
}

// TestLazy checks that Closure reads only the modules it needs: a broken
// module elsewhere in the tree does not matter until an alias lookup has to
// read every module.
func TestLazy(t *testing.T) {
	root := writeTree(t, fakeTree, fakeExtra)
	if err := os.WriteFile(filepath.Join(root, "kernel", "broken.ko.xz"), []byte("not xz"), 0o644); err != nil {
		t.Fatal(err)
	}
	tree, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.Closure([]string{"a", "e-dash", "ext4"}); err != nil {
		t.Fatalf("Closure without alias lookups: %v", err)
	}
	loaded := 0
	for _, e := range tree.byPlain {
		if e.mod.Name != "" || e.err != nil {
			loaded++
		}
	}
	if loaded != 6 {
		t.Errorf("%d modules were read, want 6 (a, b, c, d, e_dash, f_pre)", loaded)
	}
	_, err = tree.Closure([]string{"fs-efs"})
	if err == nil || !strings.Contains(err.Error(), "kernel/broken.ko.xz") {
		t.Errorf("alias lookup error = %v, want one naming kernel/broken.ko.xz", err)
	}
}

func TestConcurrentClosure(t *testing.T) {
	tree := openFake(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			in := []string{"a", "g", "e-dash"}[i%3]
			if _, err := tree.Closure([]string{in, "crypto-crc32c"}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("Open(missing dir) succeeded")
	}
	empty := t.TempDir()
	os.MkdirAll(filepath.Join(empty, "usr", "lib"), 0o755)
	if _, err := Open(empty); err == nil || !strings.Contains(err.Error(), "usr/lib/modules/<kver>") {
		t.Errorf("Open(empty dir) error = %v, want a hint about the layout", err)
	}
	both := writeTree(t, []fakeModule{
		{"kernel/a.ko", []string{"name=a"}},
		{"kernel/a.ko.xz", []string{"name=a"}},
	}, nil)
	if _, err := Open(both); err == nil || !strings.Contains(err.Error(), "has both") {
		t.Errorf("Open(a.ko and a.ko.xz) error = %v", err)
	}
}

func TestAmbiguousAndMisnamed(t *testing.T) {
	root := writeTree(t, []fakeModule{
		{"kernel/one/dup.ko", []string{"name=dup"}},
		{"kernel/two/dup.ko.xz", []string{"name=dup"}},
		{"kernel/uses-dup.ko", []string{"name=uses_dup", "depends=dup"}},
		{"kernel/liar.ko", []string{"name=truth"}},
		{"kernel/unnamed.ko", []string{"depends="}},
	}, nil)
	tree, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ in, wantErr string }{
		{"dup", "ambiguous: kernel/one/dup.ko, kernel/two/dup.ko.xz"},
		{"uses-dup", "ambiguous"},
		{"liar", `.modinfo says the module is named "truth", not "liar"`},
	} {
		if _, err := tree.Closure([]string{tt.in}); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("Closure(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
		}
	}
	res, err := tree.Closure([]string{"unnamed"})
	if err != nil || len(res.Modules) != 1 || res.Modules[0].Name != "unnamed" {
		t.Errorf("Closure(unnamed) = %+v, %v; want the name from the file name", res, err)
	}
}

func TestModulesFiles(t *testing.T) {
	tree := openFake(t)
	res, err := tree.Closure([]string{"a", "e-dash", "k", "l", "g"})
	if err != nil {
		t.Fatal(err)
	}
	wantDep := `kernel/crypto/crc32c_generic.ko:
kernel/drivers/e-dash.ko:
kernel/drivers/f-pre.ko: kernel/lib/d.ko
kernel/fs/g.ko:
kernel/k/k.ko: kernel/lib/d.ko
kernel/l/l.ko:
kernel/lib/d.ko:
kernel/net/a.ko: kernel/net/c.ko kernel/net/b.ko kernel/lib/d.ko
kernel/net/b.ko: kernel/lib/d.ko
kernel/net/c.ko: kernel/lib/d.ko
`
	if diff := cmp.Diff(wantDep, string(ModulesDep(res.Modules))); diff != "" {
		t.Errorf("ModulesDep mismatch (-want +got):\n%s", diff)
	}
	// The order of the input does not matter.
	rev := append([]Module(nil), res.Modules...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	if !bytes.Equal(ModulesDep(rev), ModulesDep(res.Modules)) {
		t.Error("ModulesDep depends on the order of its input")
	}

	wantLoad := `kernel/crypto/crc32c_generic.ko
kernel/lib/d.ko
kernel/net/b.ko
kernel/net/c.ko
kernel/net/a.ko
kernel/drivers/f-pre.ko
kernel/drivers/e-dash.ko
kernel/fs/g.ko
kernel/k/k.ko
kernel/l/l.ko
`
	if diff := cmp.Diff(wantLoad, string(LoadOrder(res.Modules))); diff != "" {
		t.Errorf("LoadOrder mismatch (-want +got):\n%s", diff)
	}

	wantSoft := `# Soft dependencies extracted from modules themselves.
softdep e_dash pre: f_pre
softdep g pre: crc32c
softdep k pre: d fs_kfs
softdep l post: d
`
	if diff := cmp.Diff(wantSoft, string(ModulesSoftdep(res.Modules))); diff != "" {
		t.Errorf("ModulesSoftdep mismatch (-want +got):\n%s", diff)
	}
}

// TestModulesDepDeep checks the depmod order of a longer chain: each
// module's list starts with its direct users' side and ends with the
// deepest dependency, so that modprobe, loading from the end, is right.
func TestModulesDepDeep(t *testing.T) {
	mods := []Module{
		{Name: "top", Path: "t.ko", Depends: []string{"mid", "side"}},
		{Name: "mid", Path: "m.ko", Depends: []string{"low"}},
		{Name: "side", Path: "s.ko"},
		{Name: "low", Path: "l.ko", Depends: []string{"base"}},
		{Name: "base", Path: "b.ko"},
		{Name: "cyc1", Path: "c1.ko", Depends: []string{"cyc2", "absent"}},
		{Name: "cyc2", Path: "c2.ko", Depends: []string{"cyc1"}},
	}
	want := `b.ko:
c1.ko: c2.ko
c2.ko: c1.ko
l.ko: b.ko
m.ko: l.ko b.ko
s.ko:
t.ko: side.ko mid.ko low.ko base.ko
`
	want = strings.NewReplacer("side.ko", "s.ko", "mid.ko", "m.ko", "low.ko", "l.ko", "base.ko", "b.ko").Replace(want)
	if diff := cmp.Diff(want, string(ModulesDep(mods))); diff != "" {
		t.Errorf("ModulesDep mismatch (-want +got):\n%s", diff)
	}
}

func TestReadModInfoOfEveryCompression(t *testing.T) {
	tree := openFake(t)
	for _, n := range []string{"a", "b", "c", "d"} {
		res, err := tree.Closure([]string{n})
		if err != nil {
			t.Fatal(err)
		}
		if last := res.Modules[len(res.Modules)-1]; last.Name != n {
			t.Errorf("Closure(%s) ends with %s", n, last.Name)
		}
	}
}

// TestAliasCache: a scan writes the cache; the next tree with it resolves
// an alias without reading the modules it does not need (one of them now
// unreadable at the same size, which a scan would report); a tree whose
// files changed does not believe the cache and scans again.
func TestAliasCache(t *testing.T) {
	root := writeTree(t, fakeTree, fakeExtra)
	cache := filepath.Join(t.TempDir(), "aliases", "tree.json")
	tree, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	tree.SetAliasCache(cache)
	first, err := tree.Closure([]string{"g"}) // softdep pre: crc32c, an alias
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cache); err != nil {
		t.Fatalf("no cache after a scan: %v", err)
	}
	// h is not needed: garble it, keeping its size.
	h := filepath.Join(root, "kernel", "drivers", "h.ko.xz")
	st, _ := os.Stat(h)
	if err := os.WriteFile(h, bytes.Repeat([]byte{'x'}, int(st.Size())), 0o644); err != nil {
		t.Fatal(err)
	}
	tree, _ = Open(root)
	tree.SetAliasCache(cache)
	again, err := tree.Closure([]string{"g"})
	if err != nil {
		t.Fatalf("with the cache: %v", err)
	}
	if !cmp.Equal(names(first.Modules), names(again.Modules)) {
		t.Errorf("with the cache %v, without %v", names(again.Modules), names(first.Modules))
	}
	for _, e := range tree.byPlain {
		if e.file == "kernel/drivers/h.ko.xz" && (e.mod.Name != "" || e.err != nil) {
			t.Errorf("h was read although the cache has its aliases")
		}
	}
	// A different size: the cache is not this tree's; the scan finds h broken.
	if err := os.WriteFile(h, []byte("not xz"), 0o644); err != nil {
		t.Fatal(err)
	}
	tree, _ = Open(root)
	tree.SetAliasCache(cache)
	if _, err := tree.Closure([]string{"g"}); err == nil || !strings.Contains(err.Error(), "h.ko.xz") {
		t.Errorf("a changed tree with an old cache: %v, want the scan's error naming h.ko.xz", err)
	}
}
