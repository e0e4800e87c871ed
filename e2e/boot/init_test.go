package boot

import (
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ramboot/ramboot/e2e/cache"
	"github.com/ramboot/ramboot/e2e/lab"
	"github.com/ramboot/ramboot/e2e/qemu"
)

// These tests boot the virt image with QEMU's user-mode network: QEMU's
// own built-in DHCP server answers inside the QEMU process (no DHCP on any
// real interface), and the guest reaches this test's HTTP server on
// 127.0.0.1 as 10.0.2.2.

// bootServer serves the virt tree and a few test files on 127.0.0.1.
func bootServer(t testing.TB, dir string) (port int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	plain := lab.Gunzip(t, filepath.Join(dir, "Image"))
	x86 := make([]byte, 4096)
	copy(x86[0x202:], "HdrS")
	mux := http.NewServeMux()
	mux.Handle("/tree/", http.StripPrefix("/tree/", http.FileServer(http.Dir(dir))))
	mux.HandleFunc("/Image.plain", func(w http.ResponseWriter, r *http.Request) { w.Write(plain) })
	mux.HandleFunc("/chain.ipxe", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "#!ipxe\n# second stage: the same kernel and initramfs, marked\n"+
			"set marker second-${mac:hexhyp}\n"+
			"kernel Image.plain console=ttyAMA0 ramboot.224=shell ramboot.marker=${marker}\n"+
			"initrd tree/rootfs.cpio.gz\nboot\n")
	})
	mux.HandleFunc("/garbage.ipxe", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "#!ipxe\nfrobnicate the kernel\n")
	})
	mux.HandleFunc("/x86.ipxe", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "#!ipxe\nkernel x86.bin\nboot\n")
	})
	mux.HandleFunc("/x86.bin", func(w http.ResponseWriter, r *http.Request) { w.Write(x86) })
	mux.HandleFunc("/truncated.ipxe", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "#!ipxe\nkernel truncated.bin\nboot\n")
	})
	mux.HandleFunc("/truncated.bin", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000000")
		w.Write(plain[:1000])
		// The handler ends early: the client sees a short body.
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

func bootVirt(t testing.TB, dir, extra string) *qemu.VM {
	t.Helper()
	return qemu.Boot(t, qemu.Options{Board: "virt", Netdev: "user,id=n0,restrict=off", MAC: lab.GuestMAC,
		Kernel: filepath.Join(dir, "Image"), Initrd: filepath.Join(dir, "rootfs.cpio.gz"), Append: extra})
}

func TestInit224(t *testing.T) {
	dir, _ := cache.Image(t, "virt")
	port := bootServer(t, dir)
	host := fmt.Sprintf("http://10.0.2.2:%d", port)
	for _, tc := range []struct {
		name  string
		value string
		want  []string // in order on the console
	}{
		{"shell", "shell", []string{`224: option 224 says shell: provisioning shell`}},
		{"unknown scheme", "gopher://10.0.2.2/x", []string{`224: option 224 from kernel command line \(ramboot.224\): .*gopher`}},
		{"404", host + "/nope.ipxe", []string{`chain .*/nope.ipxe failed: .*404`}},
		{"refused", "http://10.0.2.2:1/boot.ipxe", []string{`chain http://10.0.2.2:1/boot.ipxe failed: .*refused`}},
		{"garbage script", host + "/garbage.ipxe", []string{`chain .* failed: line 2: frobnicate`}},
		{"wrong arch", host + "/x86.ipxe", []string{`failed: kernel: this is an x86 bzImage; this machine is arm64`}},
		{"truncated", host + "/truncated.ipxe", []string{`failed: .*(truncated|unexpected EOF)`}},
		{"kexec chain", host + "/chain.ipxe", []string{
			`kexec: loaded; booting`,
			`cmdline: .*ramboot.marker=second-52-54-00-12-34-56`,
			`224: option 224 says shell`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vm := bootVirt(t, dir, "ramboot.224="+tc.value)
			for _, w := range tc.want {
				vm.Expect(w, 120*time.Second)
			}
			// Every outcome ends in a shell that answers.
			vm.ShellRoundTrip()
			if out := vm.Output(); strings.Contains(out, "Kernel panic") || strings.Contains(out, "\npanic: ") || strings.Contains(out, "BUG: ") {
				t.Errorf("the console shows a panic")
			}
		})
	}
}
