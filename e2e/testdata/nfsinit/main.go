// Command nfsinit is the /sbin/init of the NFS roots the e2e lab serves.
// ramboot's init switch_roots into it; it reports on the console what it
// found and then idles (PID 1 must not exit):
//
//	NFSROOT-OK <arguments, else the host name>
//	ROOT <type of the / mount> <its options>
//	RW-OK /ramboot-probe     (or: RO <error>)
//
// The e2e tests build it for arm64 with CGO_ENABLED=0 at test time.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

func main() {
	var out io.Writer = os.Stdout
	// switch_root moved /dev into the new root: the console is there.
	if c, err := os.OpenFile("/dev/console", os.O_WRONLY, 0); err == nil {
		out = c
	}
	who := strings.Join(os.Args[1:], " ")
	if who == "" {
		who, _ = os.Hostname()
	}
	fmt.Fprintf(out, "NFSROOT-OK %s\n", who)
	fmt.Fprintf(out, "ROOT %s\n", rootMount())

	const probe = "/ramboot-probe"
	want := fmt.Sprintf("written by nfsinit at %s\n", time.Now().UTC().Format(time.RFC3339Nano))
	err := os.WriteFile(probe, []byte(want), 0o644)
	if err == nil {
		var got []byte
		got, err = os.ReadFile(probe)
		if err == nil && string(got) != want {
			err = fmt.Errorf("read back %q, wrote %q", got, want)
		}
	}
	if err != nil {
		fmt.Fprintf(out, "RO %v\n", err)
	} else {
		fmt.Fprintf(out, "RW-OK %s\n", probe)
	}
	for {
		time.Sleep(time.Hour)
	}
}

// rootMount is "<fstype> <options>" of the last / entry in /proc/mounts.
func rootMount() string {
	f, err := os.Open("/proc/mounts")
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	defer f.Close()
	root := "unknown (no / in /proc/mounts)"
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) >= 4 && fs[1] == "/" {
			root = fs[2] + " " + fs[3]
		}
	}
	return root
}
