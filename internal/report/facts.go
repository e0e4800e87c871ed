package report

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"unicode/utf8"
)

// FactsPath is the server's endpoint for a node's hardware facts: the
// init POSTs one Facts (JSON) per boot, once its network is up. The
// server takes them as it takes reports (from the node's own address
// only), at most MaxFactsBody bytes.
const FactsPath = "/facts"

// Bounds of a node's facts.
const (
	MaxFactsBody  = 16 << 10
	MaxFactsItems = 64  // disks, NICs
	MaxFactsText  = 128 // bytes of any one string
)

// Facts is what a node's init sees of its own hardware.
type Facts struct {
	MAC         string `json:"mac"`
	Model       string `json:"model,omitempty"`    // device tree model, or DMI vendor and product
	Revision    string `json:"revision,omitempty"` // a Pi's board revision code, or DMI product version
	Serial      string `json:"serial,omitempty"`   // device tree serial-number, or DMI product serial
	CPU         string `json:"cpu,omitempty"`
	Cores       int    `json:"cores,omitempty"`
	MemoryBytes int64  `json:"memory_bytes,omitempty"` // MemTotal
	Disks       []Disk `json:"disks"`
	NICs        []NIC  `json:"nics"`
	// Bootloader is a Pi bootloader's version and build time, as its
	// device tree shows them (/chosen/bootloader), "" elsewhere.
	Bootloader string `json:"bootloader,omitempty"`
	// TempMilliC is the first thermal zone's temperature, 0 if none.
	TempMilliC int `json:"temp_millic,omitempty"`
}

// Disk is one block device (not loop, RAM or device-mapper devices).
type Disk struct {
	Name      string `json:"name"` // vda, mmcblk0, nvme0n1
	Bytes     int64  `json:"bytes"`
	Model     string `json:"model,omitempty"`
	Serial    string `json:"serial,omitempty"`
	Removable bool   `json:"removable,omitempty"`
}

// NIC is one network interface (not lo).
type NIC struct {
	Name      string `json:"name"`
	MAC       string `json:"mac,omitempty"`
	Driver    string `json:"driver,omitempty"`
	SpeedMbps int    `json:"speed_mbps,omitempty"` // 0: no link or unknown
}

// Check validates f and returns its MAC as the status board keys nodes.
func (f *Facts) Check() (string, error) {
	mac, err := net.ParseMAC(f.MAC)
	if err != nil || len(mac) != 6 {
		return "", fmt.Errorf("mac %q: want an Ethernet MAC like 52:54:00:12:34:56", Clip(f.MAC, 40))
	}
	if len(f.Disks) > MaxFactsItems || len(f.NICs) > MaxFactsItems {
		return "", fmt.Errorf("%d disks and %d NICs: at most %d of each", len(f.Disks), len(f.NICs), MaxFactsItems)
	}
	if f.Cores < 0 || f.MemoryBytes < 0 || f.Cores > 1<<16 {
		return "", errors.New("cores and memory_bytes must be sensible and not negative")
	}
	texts := []string{f.Model, f.Revision, f.Serial, f.CPU, f.Bootloader}
	for _, d := range f.Disks {
		if d.Bytes < 0 {
			return "", fmt.Errorf("disk %q: negative size", Clip(d.Name, 40))
		}
		texts = append(texts, d.Name, d.Model, d.Serial)
	}
	for _, n := range f.NICs {
		if n.SpeedMbps < 0 {
			return "", fmt.Errorf("NIC %q: negative speed", Clip(n.Name, 40))
		}
		texts = append(texts, n.Name, n.MAC, n.Driver)
	}
	for _, s := range texts {
		if len(s) > MaxFactsText || !utf8.ValidString(s) {
			return "", fmt.Errorf("%q: every text is valid UTF-8 of at most %d bytes", Clip(s, 40), MaxFactsText)
		}
	}
	return mac.String(), nil
}

// Summary is f in one line: model; cores (CPU); memory; disks; NICs;
// bootloader; temperature.
func (f Facts) Summary() string {
	var disks []string
	for _, d := range f.Disks {
		disks = append(disks, fmt.Sprintf("%s %.1f GB", d.Name, float64(d.Bytes)/1e9))
	}
	var nics []string
	for _, n := range f.NICs {
		s := n.Name
		if n.Driver != "" {
			s += " " + n.Driver
		}
		if n.SpeedMbps > 0 {
			s += fmt.Sprintf(" %d Mb/s", n.SpeedMbps)
		}
		nics = append(nics, s)
	}
	s := fmt.Sprintf("%s; %d cores (%s); %d MB; disks: %s; NICs: %s", orDash(f.Model), f.Cores, orDash(f.CPU),
		f.MemoryBytes>>20, orDash(strings.Join(disks, ", ")), orDash(strings.Join(nics, ", ")))
	if f.Bootloader != "" {
		s += "; bootloader " + f.Bootloader
	}
	if f.TempMilliC != 0 {
		s += fmt.Sprintf("; %.1f °C", float64(f.TempMilliC)/1000)
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
