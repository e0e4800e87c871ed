// Package report is what ramboot's init tells `ramboot serve` about its own
// boot, and the one place the stage names are written down: the init
// (cmd/init) sends them, the server (server) checks and records them.
// It imports nothing but the standard library's basics, so the init stays
// small.
//
// The init POSTs one JSON object per stage to Path on the server that gave
// it option 224:
//
//	POST /report HTTP/1.1
//	Content-Type: application/json
//
//	{"mac":"52:54:00:12:34:56","stage":"download","bytes":52428800,"total":314572800}
//
// The server answers 204 No Content, or 403 when the request's source
// address does not belong to the MAC it names (see server.Server's report
// handler), 400 for a malformed report, 413 for one over MaxBody and 429
// when reports come faster than it takes them.
package report

import (
	"errors"
	"fmt"
	"net"
	"unicode/utf8"
)

// Path is the server's endpoint for reports.
const Path = "/report"

// CmdlineParam is the kernel command line parameter that names the URL
// reports go to (ramboot.report=http://192.0.2.1:8080/report), or "off"
// for none. Without it the init reports to http://SERVER:DefaultPort/report,
// SERVER being the DHCP server that sent option 224. `ramboot serve`'s
// iPXE scripts set it to the address the node reached the server on.
const CmdlineParam = "ramboot.report"

// DefaultPort is `ramboot serve`'s default HTTP port.
const DefaultPort = 8080

// Bounds of a report.
const (
	// MaxBody is the most bytes of a report's body the server reads.
	MaxBody = 2048
	// MaxDetail is the most bytes of a detail kept (the init cuts longer
	// ones itself).
	MaxDetail = 200
)

// The stages a node reports, in boot order. A report with any other stage
// is refused: the set, and so what a monitoring system sees, is bounded.
const (
	// NetworkUp: the node has its lease. Detail: interface, MAC, address.
	NetworkUp = "network-up"
	// Action: option 224 is parsed and about to be acted on. Detail: the
	// action and where option 224 came from.
	Action = "action"
	// Download: a root image is downloading; Bytes of Total so far.
	Download = "download"
	// Downloaded: the root image is in RAM and its digest checked.
	Downloaded = "downloaded"
	// Flash: a disk image is being written; Bytes of Total so far.
	Flash = "flash"
	// SwitchRoot: past the point of no return, into the new root.
	SwitchRoot = "switch_root"
	// Kexec: past the point of no return, into the next kernel.
	Kexec = "kexec"
	// Shell: the provisioning shell is up, as option 224 asked.
	Shell = "shell"
	// Failed: the action failed; Detail is the reason. The provisioning
	// shell follows.
	Failed = "failed"

	// The install lifecycle's (site/state.go): an install started,
	// finished (Detail: the disk and the image's digest) or failed
	// (Detail: the reason).
	Install       = "install"
	InstallDone   = "install done"
	InstallFailed = "install failed"
)

// Stages lists every stage, in boot order.
var Stages = []string{NetworkUp, Action, Download, Downloaded, Flash, Install, InstallDone, InstallFailed, SwitchRoot, Kexec, Shell, Failed}

// Known reports whether stage is one of Stages.
func Known(stage string) bool {
	for _, s := range Stages {
		if s == stage {
			return true
		}
	}
	return false
}

// Report is one stage of one node.
type Report struct {
	MAC    string `json:"mac"`
	Stage  string `json:"stage"`
	Detail string `json:"detail,omitempty"`
	Bytes  int64  `json:"bytes,omitempty"`
	Total  int64  `json:"total,omitempty"`
	// BootImg (on network-up) is the SHA-256, in 64 lowercase hex digits,
	// of the boot.img a Pi's bootloader loaded over HTTP and verified: the
	// device tree's /chosen/bootloader/boot_img_sha256 (bootloaders from
	// 2025-01-22, with signed boot on). The server compares it with the
	// boot.sig of the boot.img it serves the node.
	BootImg string `json:"boot_img,omitempty"`
}

// Check validates r and returns its MAC in the form the status board keys
// nodes by ("52:54:00:12:34:56").
func (r *Report) Check() (string, error) {
	mac, err := net.ParseMAC(r.MAC)
	if err != nil || len(mac) != 6 {
		return "", fmt.Errorf("mac %q: want an Ethernet MAC like 52:54:00:12:34:56", Clip(r.MAC, 40))
	}
	if !Known(r.Stage) {
		return "", fmt.Errorf("stage %q: want one of %v", Clip(r.Stage, 40), Stages)
	}
	if r.Bytes < 0 || r.Total < 0 {
		return "", errors.New("bytes and total must not be negative")
	}
	if r.BootImg != "" && !IsSHA256(r.BootImg) {
		return "", fmt.Errorf("boot_img %q: want a SHA-256 in 64 lowercase hex digits", Clip(r.BootImg, 80))
	}
	return mac.String(), nil
}

// IsSHA256 reports whether s is a SHA-256 in 64 lowercase hex digits.
func IsSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Clip cuts s to at most max bytes, on a UTF-8 boundary, marking the cut.
func Clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	const mark = "..."
	if max <= len(mark) {
		return mark[:max]
	}
	cut := max - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}
