//go:build linux

package action

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/ramboot/ramboot/bootspec"
	"github.com/ramboot/ramboot/internal/report"
)

// Run does what option 224 (value, read from source) says. It returns
// only on failure (or for the shell), with the reason in words; the
// caller then starts the provisioning shell.
func (b *Boot) Run(ctx context.Context, value, source string) (outcome string) {
	spec, err := bootspec.Parse(value)
	if err != nil {
		return fmt.Sprintf("option 224 from %s: %v", source, err)
	}
	b.Env.Report(report.Action, actionText(spec, source))
	switch spec.Kind {
	case bootspec.Shell:
		if strings.TrimSpace(value) == "" {
			return "no option 224: provisioning shell"
		}
		return "option 224 says shell: provisioning shell"
	case bootspec.Chain:
		b.Env.Stage("224: chain %s (from %s)", spec.URL, source)
		if err := b.chain(ctx, spec); err != nil {
			return fmt.Sprintf("chain %s failed: %v", redact(spec.URL), err)
		}
		return "chain returned without booting"
	case bootspec.NFS:
		b.Env.Stage("224: NFS root %s (from %s)", spec, source)
		if err := b.nfsRoot(spec.NFS); err != nil {
			return fmt.Sprintf("NFS root %s failed: %v", spec.NFS.Source(), err)
		}
		return "switch_root returned"
	case bootspec.Local:
		b.Env.Stage("224: %s (from %s)", spec, source)
		if err := b.localBoot(ctx, spec.Local); err != nil {
			return fmt.Sprintf("local boot failed: %v", err)
		}
		return "kexec returned"
	case bootspec.Install:
		b.Env.Stage("224: install %s onto %s (from %s)", redact(spec.Install.URL), spec.Install.Disk, source)
		if err := b.install(ctx, spec.Install); err != nil {
			return fmt.Sprintf("install failed: %v", err)
		}
		return "install finished without a reboot"
	}
	return fmt.Sprintf("option 224 %q: nothing to do", value)
}

// redact is u without its fragment (the digest is long and said elsewhere).
func redact(u *url.URL) string {
	c := *u
	c.Fragment = ""
	return c.String()
}

// printable shows up to n bytes of b with non-printing bytes escaped.
func printable(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return string(b)
}

// actionText is an Action report's detail: what option 224 says, without
// a URL's digest.
func actionText(spec bootspec.Spec, source string) string {
	what := spec.Kind.String()
	switch {
	case spec.URL != nil:
		what += " " + redact(spec.URL)
	case spec.Kind == bootspec.NFS:
		what += " " + spec.NFS.Source()
	}
	return what + " (from " + source + ")"
}
