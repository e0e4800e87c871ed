// Package modules computes the closure of Linux kernel modules that an
// initramfs needs, straight from a module tree as Debian's linux-image .deb
// ships it (usr/lib/modules/<kver>/, with .ko.xz files and no modules.dep).
//
// Dependencies are read from each module's ELF .modinfo section: depends=
// (hard dependencies, computed by modpost from symbol use) and softdep=
// ("pre: a b post: c"). Names are normalised as the kernel does ('-' becomes
// '_'), and a name that is not a module file is looked up among the modules'
// aliases (e.g. "fs-overlay", "crc32c") and in modules.builtin.
//
// Typical use:
//
//	tree, err := modules.Open("/tmp/root/usr/lib/modules/6.12.117+deb13-arm64")
//	if err != nil { ... }
//	res, err := tree.Closure([]string{"genet", "mdio-bcm-unimac", "nfsv4", "overlay"})
//	if err != nil { ... } // unknown names, missing hard depends, depends cycles
//	for _, m := range res.Modules { // in load order
//		data, err := tree.ReadPlain(m) // decompressed .ko
//		// write data to lib/modules/<kver>/<m.Path>
//	}
//	// res.Builtin: requested names built into the kernel (nothing to load)
//	dep := modules.ModulesDep(res.Modules)   // lib/modules/<kver>/modules.dep
//	order := modules.LoadOrder(res.Modules)  // lib/modules/<kver>/modules.load
//	soft := modules.ModulesSoftdep(res.Modules)
//
// A Tree reads module files lazily: Closure decompresses only the modules it
// visits, unless a name has to be resolved as an alias, in which case every
// module's .modinfo is read once (in parallel) and cached.
package modules
