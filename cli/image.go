package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/ramboot/ramboot/tree/images"
)

type imageOpts struct {
	out, name, channel, nodes string
	keep                      int
}

func imageFlags(stderr io.Writer) (*pflag.FlagSet, *imageOpts) {
	o := &imageOpts{}
	fs := pflag.NewFlagSet("image", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVarP(&o.out, "out", "o", "", "the tree holding images/ (as given to ramboot rootfs --out; default out/BOARD with --board)")
	fs.StringVar(&o.name, "name", "debian", "the image's name: images/NAME@ID.squashfs")
	fs.StringVar(&o.channel, "channel", "", "the channel: images/NAME-CHANNEL.squashfs (\"\": the default, images/NAME.squashfs)")
	fs.IntVar(&o.keep, "keep", 3, "prune: the newest generations kept besides those a channel or nodes.yaml names")
	fs.StringVarP(&o.nodes, "nodes", "n", "", "prune: nodes.yaml; a generation its option 224 templates pin (NAME@ID) is kept")
	return fs, o
}

func imageUsage(fs *pflag.FlagSet) string {
	return `Usage: ramboot image list [flags]
       ramboot image promote ID [flags]
       ramboot image rollback [flags]
       ramboot image prune [--keep N] [--nodes nodes.yaml] [flags]

Each 'ramboot rootfs' writes a generation, images/NAME@ID.squashfs (ID: the
first 12 hex digits of its SHA-256), and points a channel at it: the
default images/NAME.squashfs, or images/NAME-CHANNEL.squashfs with
--channel. Option 224 names a channel (a node boots whatever it points at
now) or pins a generation (images/debian@ID.squashfs). A channel moves by
two symbolic links, the digest's first, so a node never takes a wrong
image: it is in force at each node's next boot, with no rebuild.

list shows the generations, newest first, with their channels; promote ID
points the channel at a generation (a prefix of 6 or more digits will
do); rollback points it back at the one it had before (images/NAME.history);
prune removes generations beyond the newest --keep that no channel points
at and no nodes.yaml option 224 pins.

Examples:
  sudo ramboot rootfs --board rpi4 --channel canary   # a new build, on the canary only
  ramboot image list --out out/rpi4
  ramboot image promote 3f0c8a2b6f3c --out out/rpi4   # every node at its next boot
  ramboot image rollback --out out/rpi4               # back to the previous one
  ramboot image prune --keep 3 --nodes nodes.yaml --out out/rpi4

Flags:
` + fs.FlagUsages()
}

func runImage(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs, o := imageFlags(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, imageUsage(fs)) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: image: %v (see 'ramboot help image')", errUsage, err)
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("%w: image: say list, promote ID, rollback or prune (see 'ramboot help image')", errUsage)
	}
	if o.out == "" {
		return fmt.Errorf("%w: image: --out DIR: the tree whose images/ to manage (as given to ramboot rootfs)", errUsage)
	}
	if !images.ValidChannel(o.channel) {
		return fmt.Errorf("%w: image: --channel %q: want lower-case letters, digits and _", errUsage, o.channel)
	}
	verb, rest := fs.Arg(0), fs.Args()[1:]
	want := 0
	if verb == "promote" {
		want = 1
	}
	if len(rest) != want {
		return fmt.Errorf("%w: image %s: %d arguments, want %d", errUsage, verb, len(rest), want)
	}
	s := images.Store{Dir: filepath.Join(o.out, "images")}
	ch := o.channel
	label := images.ChannelFile(o.name, ch)
	switch verb {
	case "list":
		gens, err := s.List(o.name)
		if err != nil {
			return err
		}
		if len(gens) == 0 {
			fmt.Fprintf(stdout, "%s: no generations of %s (ramboot rootfs builds one)\n", s.Dir, o.name)
			return nil
		}
		tw := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "GENERATION\tBUILT\tSIZE\tCHANNELS")
		for _, g := range gens {
			var cs []string
			for _, c := range g.Channels {
				cs = append(cs, images.ChannelFile(o.name, c))
			}
			fmt.Fprintf(tw, "%s\t%s\t%.1f MB\t%s\n", g.File(), g.Built.Format(time.RFC3339), float64(g.Size)/1e6, dashIfEmpty(strings.Join(cs, ", ")))
		}
		return tw.Flush()
	case "promote":
		g, err := s.Promote(o.name, ch, rest[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s -> %s: in force at each node's next boot\n", label, g.File())
	case "rollback":
		from, to, err := s.Rollback(o.name, ch)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s -> %s (was %s): in force at each node's next boot\n", label, to.File(), from.File())
	case "prune":
		if o.keep < 0 {
			return fmt.Errorf("%w: image prune: --keep %d", errUsage, o.keep)
		}
		pinned := map[string]bool{}
		if o.nodes != "" {
			data, err := os.ReadFile(o.nodes)
			if err != nil {
				return err
			}
			for _, m := range regexp.MustCompile(regexp.QuoteMeta(o.name)+`@([0-9a-f]{6,64})`).FindAllStringSubmatch(string(data), -1) {
				pinned[m[1]] = true
			}
			gens, err := s.List(o.name)
			if err != nil {
				return err
			}
			for _, g := range gens { // a pin by a prefix keeps its generation too
				for p := range pinned {
					if strings.HasPrefix(g.ID, p) {
						pinned[g.ID] = true
					}
				}
			}
		}
		removed, err := s.Prune(o.name, o.keep, pinned)
		for _, g := range removed {
			fmt.Fprintf(stdout, "removed %s (built %s)\n", g.File(), g.Built.Format(time.RFC3339))
		}
		if err != nil {
			return err
		}
		if len(removed) == 0 {
			fmt.Fprintln(stdout, "nothing to remove")
		}
	default:
		return fmt.Errorf("%w: image: unknown action %q: use list, promote, rollback or prune", errUsage, verb)
	}
	return nil
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
