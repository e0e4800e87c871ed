package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/ramboot/ramboot/internal/atomicfile"
	"github.com/ramboot/ramboot/power"
	"github.com/ramboot/ramboot/site"
	"github.com/ramboot/ramboot/site/inventory"
)

// nodeOpts are `ramboot node`'s flags: where serve keeps its state.
type nodeOpts struct {
	stateFile, config, root, leaseFile, nodes string

	enroll     inventory.Entry // node enroll's --hostname, --address, ...
	json       bool            // node show --json
	powerCycle bool            // node reinstall --power-cycle

	dirs serviceDirs // the units' directories; zero: shippedUnits()
}

func nodeFlags(stderr io.Writer) (*pflag.FlagSet, *nodeOpts) {
	o := &nodeOpts{}
	fs := pflag.NewFlagSet("node", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.stateFile, "state-file", "", "serve's install state file (default: as serve finds it from --config, --lease-file or --root)")
	fs.StringVarP(&o.config, "config", "c", "", "serve's config file: its state-file, lease-file, root and nodes settings")
	fs.StringVarP(&o.root, "root", "r", "", "serve's --root: the state file is ROOT/../state.json unless --lease-file says otherwise")
	fs.StringVar(&o.leaseFile, "lease-file", "", "serve's --lease-file: the state file is next to it")
	fs.StringVarP(&o.nodes, "nodes", "n", "", "serve's inventory (nodes.yaml): find NAME by hostname, mac or serial; list nodes not installed yet; enroll adds to it")
	fs.StringVar(&o.enroll.Hostname, "hostname", "", "enroll: the node's hostname")
	fs.StringVar(&o.enroll.Address, "address", "", "enroll: its fixed address (full DHCP mode)")
	fs.StringVar(&o.enroll.Option224, "option224", "", "enroll: its option 224 (a template, as in nodes.yaml; default: the defaults')")
	fs.StringVar(&o.enroll.Install, "install", "", "enroll: the disk image to install (URL template), with --sha256")
	fs.StringVar(&o.enroll.InstallSHA256, "sha256", "", "enroll: the install image's SHA-256")
	fs.StringVar(&o.enroll.Boot, "boot", "", "enroll: what it boots once installed (default local)")
	fs.BoolVar(&o.json, "json", false, "show: JSON (the node's entry, install state and facts)")
	fs.BoolVar(&o.powerCycle, "power-cycle", false, "reinstall: power-cycle the node now (its nodes.yaml power:), so the reinstall starts at once")
	return fs, o
}

func nodeUsage(fs *pflag.FlagSet) string {
	return `Usage: ramboot node list [flags]
       ramboot node reinstall NAME... [flags]
       ramboot node discovered [flags]
       ramboot node show NAME [--json] [flags]
       ramboot node power on|off|cycle|status NAME... [flags]
       ramboot node enroll MAC|SERIAL --hostname NAME [--address A] [--option224 X] [--install URL --sha256 HEX] [flags]

The install lifecycle of the nodes whose nodes.yaml entry has install:
(see README, "Install and local boot"). ramboot serve hands such a node
the install until it reports a good install, then its boot: form (default
local). list prints each node's recorded state and install generation;
reinstall starts a new generation: the node re-flashes its disk at its next
network boot (a node is named by its hostname, MAC or Pi serial). Nothing
else does: a node whose disk already carries its generation's install is
left as it was, whatever the server last heard from it. The running server
sees the change at once: no restart or signal.

power switches nodes by their nodes.yaml power: entry (IPMI BMC, PoE
switch port over SNMP, or a command; README, "Power"); reinstall
--power-cycle cycles each node once its reinstall is recorded. Each
action is printed and appended to power.log beside the state file.
show prints a node's nodes.yaml entry, install state and the hardware
facts its init last reported (model, serial, CPU, memory, disks, NICs, a
Pi's bootloader and temperature; facts.json beside the state file).
discovered lists the nodes serve saw asking to boot that nodes.yaml does
not list (MAC, Pi serial and model, address, first and last seen; the
latest 1024, from discovered.json beside the state file); enroll adds one
to nodes.yaml, by its MAC or by the serial it was seen with, keeping the
file's comments and order, and refuses a clash (a MAC, serial, hostname or
address already listed). The running server reloads nodes.yaml within two
seconds: the node boots as its new entry says at its next boot.

Examples:
  ramboot node discovered
  ramboot node enroll 1234abcd --hostname pi-r2-07
  ramboot node list --config /etc/ramboot/serve.yaml
  ramboot node reinstall web-1 --config /etc/ramboot/serve.yaml
  ramboot node reinstall 52:54:00:12:34:61 --state-file /var/lib/ramboot/state.json

With no flags, the service's config, /etc/ramboot/serve.yaml, if there
is one. The state file is found as serve finds it: the config's
state-file, or state.json next to its lease-file; else, for a config of
the shipped systemd units (/etc/ramboot/serve.yaml: /var/lib/ramboot;
/etc/ramboot/NAME.yaml for ramboot@NAME: /var/lib/ramboot/NAME), that
unit's state directory if it exists ($STATE_DIRECTORY if set); else
ROOT/../state.json.

Flags:
` + fs.FlagUsages()
}

// files works out the state file (and nodes.yaml, if any) as serve does.
func (o *nodeOpts) files() (state, nodes string, err error) {
	d := o.dirs
	if d == (serviceDirs{}) {
		d = shippedUnits()
	}
	if o.config == "" && o.stateFile == "" && o.leaseFile == "" && o.root == "" {
		// On the service's host, no flag is needed.
		if c := filepath.Join(d.config, "serve.yaml"); fileExists(c) {
			o.config = c
		}
	}
	if o.config != "" {
		sfs, so := serveFlags(io.Discard)
		if err := sfs.Parse(nil); err != nil {
			return "", "", err
		}
		newFS := func() *pflag.FlagSet { f, _ := serveFlags(io.Discard); return f }
		if _, err := applyConfig(sfs, newFS, o.config); err != nil {
			return "", "", fmt.Errorf("%w: %v", errUsage, err)
		}
		if o.stateFile == "" {
			o.stateFile = so.StateFile
		}
		if o.leaseFile == "" {
			o.leaseFile = so.LeaseFile
		}
		if o.root == "" {
			o.root = so.Root
		}
		if o.nodes == "" {
			o.nodes = so.Nodes
		}
	}
	if o.leaseFile == "" {
		o.leaseFile = d.leaseFile(o.config, os.Getenv("STATE_DIRECTORY")) // as serve does
	}
	state = o.stateFile
	switch {
	case state != "":
	case o.leaseFile != "" || o.root != "":
		state = site.DefaultStateFile(o.root, o.leaseFile)
	default:
		return "", "", fmt.Errorf("%w: node: which state file? pass --state-file FILE, or serve's --config FILE or --root DIR (the state is ROOT/../state.json by default)", errUsage)
	}
	return state, o.nodes, nil
}

func runNode(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, o := nodeFlags(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, nodeUsage(fs)) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: node: %v (see 'ramboot help node')", errUsage, err)
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("%w: node: say list, reinstall NAME, discovered or enroll MAC|SERIAL (see 'ramboot help node')", errUsage)
	}
	verb, names := fs.Arg(0), fs.Args()[1:]
	switch verb {
	case "list", "discovered":
		if len(names) > 0 {
			return fmt.Errorf("%w: node %s: unexpected argument %q", errUsage, verb, names[0])
		}
	case "power":
		if len(names) < 2 {
			return fmt.Errorf("%w: node power: say on, off, cycle or status, then the nodes (hostname, MAC or serial)", errUsage)
		}
		if _, err := power.ParseAction(names[0]); err != nil {
			return fmt.Errorf("%w: node power: %v", errUsage, err)
		}
	case "show":
		if len(names) != 1 {
			return fmt.Errorf("%w: node show: name one node (hostname, MAC or serial)", errUsage)
		}
	case "reinstall":
		if len(names) == 0 {
			return fmt.Errorf("%w: node reinstall: name the node (hostname, MAC or serial)", errUsage)
		}
	case "enroll":
		if len(names) != 1 {
			return fmt.Errorf("%w: node enroll: name one node by its MAC or the Pi serial it was seen with (ramboot node discovered lists them)", errUsage)
		}
		if o.enroll.Hostname == "" {
			return fmt.Errorf("%w: node enroll: --hostname NAME: every enrolled node gets a name", errUsage)
		}
	default:
		return fmt.Errorf("%w: node: unknown action %q: use list, reinstall, power, show, discovered or enroll", errUsage, verb)
	}
	if o.powerCycle && verb != "reinstall" {
		return fmt.Errorf("%w: node %s: --power-cycle is for node reinstall", errUsage, verb)
	}
	if o.json && verb != "show" {
		return fmt.Errorf("%w: node %s: --json is for node show", errUsage, verb)
	}
	if verb != "enroll" && o.enroll != (inventory.Entry{}) {
		return fmt.Errorf("%w: node %s: --hostname, --address, --option224, --install, --sha256 and --boot are for node enroll", errUsage, verb)
	}
	state, nodesFile, err := o.files()
	if err != nil {
		return err
	}
	switch verb {
	case "discovered":
		return nodeDiscovered(stdout, state)
	case "enroll":
		return nodeEnroll(stdout, state, nodesFile, names[0], o.enroll)
	}
	var inv *inventory.Inventory
	if nodesFile != "" {
		if inv, err = inventory.Load(nodesFile); err != nil {
			return err
		}
	}
	if verb == "list" {
		return nodeList(stdout, state, inv)
	}
	if verb == "show" {
		return nodeShow(stdout, state, inv, names[0], o.json)
	}
	if verb == "power" {
		a, _ := power.ParseAction(names[0])
		return nodePower(ctx, stdout, state, inv, a, names[1:])
	}
	for _, name := range names {
		if err := nodeReinstall(stdout, state, inv, name, o.powerCycle); err != nil {
			return err
		}
	}
	if o.powerCycle {
		return nodePower(ctx, stdout, state, inv, power.Cycle, names)
	}
	return nil
}

// installOf is the inventory's install for a MAC ("" for none).
func installOf(inv *inventory.Inventory, mac net.HardwareAddr) inventory.Match {
	m, _, _ := inv.Lookup(mac, "", nil)
	return m
}

// nodeList prints the recorded nodes, and with an inventory its install
// nodes that have no record yet.
func nodeList(w io.Writer, state string, inv *inventory.Inventory) error {
	st, err := site.ReadState(state)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tMAC\tSTATE\tGEN\tSINCE\tNOTE")
	for _, k := range st.Sorted() {
		n := st.Nodes[k]
		name, state, since := n.Name, n.State, "-"
		if name == "" {
			name = "-"
		}
		if state == "" {
			state = "-"
		}
		if !n.Since.IsZero() {
			since = n.Since.UTC().Format(time.RFC3339)
		}
		var notes []string
		if n.ReinstallRequested {
			notes = append(notes, "reinstall asked")
		}
		if inv != nil {
			mac, _ := net.ParseMAC(k)
			m := installOf(inv, mac)
			switch {
			case m.Install == "":
				notes = append(notes, "no install: in nodes.yaml now")
			case n.State == site.StateInstalled && m.InstallSHA256 != "none" && m.InstallSHA256 != n.SHA256:
				notes = append(notes, "nodes.yaml has another image (reinstall to apply it)")
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", name, k, state, n.Gen(), since, strings.Join(notes, "; "))
	}
	if inv != nil {
		var fresh []string
		for _, n := range inv.Nodes {
			mac, err := net.ParseMAC(strings.ReplaceAll(n.MAC, "-", ":"))
			if err != nil || st.Nodes[mac.String()] != nil || installOf(inv, mac).Install == "" {
				continue
			}
			name := n.Hostname
			if name == "" {
				name = "-"
			}
			fresh = append(fresh, fmt.Sprintf("%s\t%s\tnew\t1\t-\tinstalls at its next network boot\n", name, mac))
		}
		sort.Strings(fresh)
		for _, l := range fresh {
			fmt.Fprint(tw, l)
		}
	}
	return tw.Flush()
}

// nodeReinstall asks for a reinstall of the node called name: a new
// install generation, one above the record's (which the server raises to
// the one the node's disk reports). Whatever the record says, the node's
// disk may carry an install of the record's generation (its report was
// lost), and the init leaves such a disk alone: only a new generation
// re-flashes it.
func nodeReinstall(w io.Writer, state string, inv *inventory.Inventory, name string, cycling bool) error {
	key, label, err := resolveNode(state, inv, name)
	if err != nil {
		return err
	}
	var msg string
	err = site.UpdateState(state, func(st *site.State) error {
		n := st.Nodes[key]
		if n != nil && n.ReinstallRequested {
			msg = fmt.Sprintf("%s (%s): a reinstall is asked already (install generation %d): it installs at its next network boot", label, key, n.Gen())
			return errNothing
		}
		was := "installed"
		switch {
		case n == nil:
			was = "no install recorded"
			n = &site.NodeState{}
			if _, err := net.ParseMAC(strings.ReplaceAll(label, "-", ":")); err != nil {
				n.Name = label
			}
			st.Nodes[key] = n
		case n.State != site.StateInstalled:
			was = n.State + ", not installed"
		}
		from := n.Gen()
		gen, err := site.NewGeneration(from)
		if err != nil {
			return err
		}
		n.ReinstallRequested, n.Generation = true, gen
		next := "reboot or power-cycle it (--power-cycle does, through its power: in nodes.yaml)"
		if cycling {
			next = "its power is cycled next"
		}
		msg = fmt.Sprintf("%s (%s): %s; reinstall asked (install generation %d, after %d): it re-flashes its disk at its next network boot: %s", label, key, was, gen, from, next)
		return nil
	})
	if err != nil && !errors.Is(err, errNothing) {
		return err
	}
	fmt.Fprintln(w, msg)
	return nil
}

var errNothing = errors.New("nothing to change")

// resolveNode finds a node's MAC (the state file's key) by hostname, MAC
// or serial: in the inventory if there is one, else among the records.
func resolveNode(state string, inv *inventory.Inventory, name string) (key, label string, err error) {
	mac, macErr := net.ParseMAC(strings.ReplaceAll(name, "-", ":"))
	if macErr == nil && len(mac) != 6 {
		macErr = errors.New("not 6 bytes")
	}
	if inv != nil {
		for _, n := range inv.Nodes {
			nm, err := net.ParseMAC(strings.ReplaceAll(n.MAC, "-", ":"))
			hit := n.Hostname == name || (err == nil && macErr == nil && nm.String() == mac.String()) ||
				(n.Serial != "" && strings.EqualFold(n.Serial, strings.TrimPrefix(name, "0x")))
			if !hit {
				continue
			}
			if err != nil {
				return "", "", fmt.Errorf("node %s: its nodes.yaml entry has no mac, so it has no install", name)
			}
			if installOf(inv, nm).Install == "" {
				return "", "", fmt.Errorf("node %s: its nodes.yaml entry has no install: (nor do the defaults): nothing to reinstall", name)
			}
			label = n.Hostname
			if label == "" {
				label = name
			}
			return nm.String(), label, nil
		}
	}
	st, err := site.ReadState(state)
	if err != nil {
		return "", "", err
	}
	for _, k := range st.Sorted() {
		if st.Nodes[k].Name == name || (macErr == nil && k == mac.String()) {
			label = st.Nodes[k].Name
			if label == "" {
				label = name
			}
			return k, label, nil
		}
	}
	if macErr == nil && inv != nil && installOf(inv, mac).Install != "" {
		return mac.String(), name, nil // a node the defaults' install covers, not recorded yet
	}
	var known []string
	for _, k := range st.Sorted() {
		if n := st.Nodes[k].Name; n != "" {
			known = append(known, n)
		} else {
			known = append(known, k)
		}
	}
	hint := "none recorded yet"
	if len(known) > 0 {
		hint = "recorded: " + strings.Join(known, ", ")
	}
	where := state
	if inv == nil {
		where += " (pass --nodes or --config to find nodes by their nodes.yaml entry)"
	} else {
		where += " or nodes.yaml"
	}
	return "", "", fmt.Errorf("node %q: no such node in %s; %s", name, where, hint)
}

// nodeDiscovered prints the nodes serve saw that nodes.yaml does not list.
func nodeDiscovered(w io.Writer, state string) error {
	path := site.DiscoveredPath(state)
	seen, err := site.ReadDiscovered(path)
	if err != nil {
		return err
	}
	if len(seen) == 0 {
		fmt.Fprintf(w, "no nodes seen that nodes.yaml does not list (%s)\n", path)
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "MAC\tSERIAL\tMODEL\tKIND\tADDRESS\tFIRST SEEN\tLAST SEEN\tASKED")
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	for _, n := range seen {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s (%d)\n", n.MAC, dash(n.Serial), dash(n.Model), dash(n.Kind), dash(n.IP),
			n.First.UTC().Format(time.RFC3339), n.Last.UTC().Format(time.RFC3339), dash(n.Asked), n.Count)
	}
	return tw.Flush()
}

// nodeEnroll adds the node named by MAC or by the serial it was seen with
// to nodes.yaml (written atomically; a clash or a bad entry leaves the
// file as it was).
func nodeEnroll(w io.Writer, state, nodesFile, name string, e inventory.Entry) error {
	if nodesFile == "" {
		return fmt.Errorf("%w: node enroll: which nodes.yaml? pass --nodes FILE or serve's --config FILE", errUsage)
	}
	if mac, err := net.ParseMAC(name); err == nil {
		e.MAC = mac.String()
	} else {
		seen, err := site.ReadDiscovered(site.DiscoveredPath(state))
		if err != nil {
			return err
		}
		for _, n := range seen {
			if n.Serial != "" && strings.EqualFold(n.Serial, name) {
				e.MAC, e.Serial = n.MAC, n.Serial
				break
			}
		}
		if e.MAC == "" {
			return fmt.Errorf("node enroll: %q is neither a MAC nor the serial of a node serve has seen (ramboot node discovered lists them)", name)
		}
	}
	data, err := os.ReadFile(nodesFile)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	mode := os.FileMode(0o644)
	if st, err := os.Stat(nodesFile); err == nil {
		mode = st.Mode().Perm()
	}
	out, err := inventory.Enroll(data, e)
	if err != nil {
		return fmt.Errorf("%s: %w", nodesFile, err)
	}
	if err := atomicfile.Write(nodesFile, out, atomicfile.Options{Mode: mode}); err != nil {
		return fmt.Errorf("%s: %w", nodesFile, err)
	}
	fmt.Fprintf(w, "%s: enrolled %s as %s; serve reloads it within two seconds, and the node boots as its entry says at its next boot\n", nodesFile, e.MAC, e.Hostname)
	return nil
}

// nodeShow prints what is known of one node: its nodes.yaml entry (by
// hostname, MAC or serial), its install record, its latest facts.
func nodeShow(w io.Writer, state string, inv *inventory.Inventory, name string, asJSON bool) error {
	facts, err := site.ReadFacts(site.FactsPath(state))
	if err != nil {
		return err
	}
	var entry *inventory.Node
	mac := ""
	if hw, err := net.ParseMAC(strings.ReplaceAll(name, "-", ":")); err == nil && len(hw) == 6 {
		mac = hw.String()
	}
	if inv != nil {
		var m string
		if entry, m = findEntry(inv, name); m != "" {
			mac = m
		}
	}
	if mac == "" {
		for k, f := range facts { // a Pi known by serial only
			if (entry != nil && entry.Serial != "" && strings.HasSuffix(strings.ToLower(f.Serial), strings.ToLower(entry.Serial))) ||
				strings.HasSuffix(strings.ToLower(f.Serial), strings.ToLower(name)) {
				mac = k
				break
			}
		}
	}
	if mac == "" && entry == nil {
		return fmt.Errorf("node %q: not in nodes.yaml (by hostname, MAC or serial) and no facts from a node of that name: give its MAC", name)
	}
	st, err := site.ReadState(state)
	if err != nil {
		return err
	}
	rec := st.Nodes[mac]
	f, haveFacts := facts[mac]
	if asJSON {
		type entryJSON struct {
			Line      int    `json:"line"`
			Hostname  string `json:"hostname,omitempty"`
			Serial    string `json:"serial,omitempty"`
			Address   string `json:"address,omitempty"`
			Option224 string `json:"option224,omitempty"`
		}
		out := struct {
			MAC     string            `json:"mac"`
			Entry   *entryJSON        `json:"nodes_yaml,omitempty"`
			Install *site.NodeState   `json:"install,omitempty"`
			Facts   *site.FactsRecord `json:"facts,omitempty"`
		}{MAC: mac, Install: rec}
		if entry != nil {
			out.Entry = &entryJSON{entry.Line(), entry.Hostname, entry.Serial, entry.Address, entry.Option224}
		}
		if haveFacts {
			out.Facts = &f
		}
		b, err := json.MarshalIndent(out, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, dashIfEmpty(v)) }
	row("mac", mac)
	if entry != nil {
		row("hostname", entry.Hostname)
		row("serial", entry.Serial)
		row("nodes.yaml", fmt.Sprintf("line %d", entry.Line()))
	} else {
		row("nodes.yaml", "not listed (ramboot node enroll)")
	}
	if rec != nil {
		row("install", fmt.Sprintf("%s since %s (generation %d)", rec.State, rec.Since.UTC().Format(time.RFC3339), rec.Gen()))
	}
	if !haveFacts {
		row("facts", "none reported yet (the init reports them at each boot, once its network is up)")
		return tw.Flush()
	}
	row("facts from", fmt.Sprintf("%s at %s", f.IP, f.At.UTC().Format(time.RFC3339)))
	row("model", strings.TrimSpace(f.Model+" "+f.Revision))
	row("serial (hardware)", f.Serial)
	row("cpu", fmt.Sprintf("%s, %d cores", dashIfEmpty(f.CPU), f.Cores))
	row("memory", fmt.Sprintf("%d MB", f.MemoryBytes>>20))
	for _, d := range f.Disks {
		extra := ""
		if d.Removable {
			extra = ", removable"
		}
		row("disk "+d.Name, fmt.Sprintf("%.1f GB %s %s%s", float64(d.Bytes)/1e9, d.Model, d.Serial, extra))
	}
	if len(f.Disks) == 0 {
		row("disks", "none")
	}
	for _, n := range f.NICs {
		row("nic "+n.Name, fmt.Sprintf("%s %s %d Mb/s", n.MAC, n.Driver, n.SpeedMbps))
	}
	row("bootloader", f.Bootloader)
	if f.TempMilliC != 0 {
		row("temperature", fmt.Sprintf("%.1f °C", float64(f.TempMilliC)/1000))
	}
	return tw.Flush()
}

// nodePower carries out a power action on each named node (by hostname,
// MAC or serial in nodes.yaml), printing one line per node and appending
// it to power.log beside the state file; it goes on past a failure and
// returns an error naming the nodes that failed.
func nodePower(ctx context.Context, w io.Writer, state string, inv *inventory.Inventory, a power.Action, names []string) error {
	if inv == nil {
		return fmt.Errorf("%w: node power: which nodes.yaml? pass --nodes FILE or serve's --config FILE", errUsage)
	}
	var failed []string
	for _, name := range names {
		entry, mac := findEntry(inv, name)
		if entry == nil {
			failed = append(failed, name)
			fmt.Fprintf(w, "%s: not in nodes.yaml (by hostname, MAC or serial)\n", name)
			continue
		}
		label := entry.Hostname
		if label == "" {
			label = name
		}
		hw, _ := net.ParseMAC(mac)
		line, ok := powerOne(ctx, inv.PowerOf(hw, entry.Serial), a, label, mac)
		if !ok {
			failed = append(failed, label)
		}
		fmt.Fprintln(w, line)
		key := mac
		if key == "" {
			key = strings.ToLower(entry.Serial)
		}
		if state != "" {
			if err := site.LogPower(state, key, line); err != nil {
				fmt.Fprintf(w, "(not in %s: %v)\n", site.PowerLogName, err)
			}
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("node power %s: %d of %d failed: %s", a, len(failed), len(names), strings.Join(failed, ", "))
	}
	return nil
}

// powerOne carries out a on one node and says how it went, in one line.
func powerOne(ctx context.Context, p *inventory.Power, a power.Action, label, mac string) (line string, ok bool) {
	d, err := power.New(p, label, mac)
	if err != nil {
		return fmt.Sprintf("%s: power %s: %v", label, a, err), false
	}
	t0 := time.Now()
	st, err := d.Do(ctx, a)
	took := time.Since(t0).Round(100 * time.Millisecond)
	switch {
	case err != nil:
		return fmt.Sprintf("%s: power %s via %s failed after %v: %v", label, a, d, took, err), false
	case st == "":
		return fmt.Sprintf("%s: power %s via %s: done in %v", label, a, d, took), true
	}
	return fmt.Sprintf("%s: power %s via %s: %s (%v)", label, a, d, st, took), true
}

// findEntry is the nodes.yaml entry named by hostname, MAC or serial,
// and its MAC ("" for a Pi listed by serial only).
func findEntry(inv *inventory.Inventory, name string) (*inventory.Node, string) {
	mac := ""
	if hw, err := net.ParseMAC(strings.ReplaceAll(name, "-", ":")); err == nil && len(hw) == 6 {
		mac = hw.String()
	}
	for i, n := range inv.Nodes {
		nm, _ := net.ParseMAC(strings.ReplaceAll(n.MAC, "-", ":"))
		if n.Hostname == name || (mac != "" && nm.String() == mac) || (n.Serial != "" && strings.EqualFold(n.Serial, name)) {
			if nm != nil {
				return &inv.Nodes[i], nm.String()
			}
			return &inv.Nodes[i], ""
		}
	}
	return nil, ""
}
