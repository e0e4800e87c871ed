package site

import (
	"encoding/json"
	"fmt"
	"runtime"
	"testing"

	"github.com/ramboot/ramboot/internal/report"
)

func sampleFacts(i int) report.Facts {
	f := report.Facts{MAC: fmt.Sprintf("52:54:00:%02x:%02x:%02x", i>>16&0xff, i>>8&0xff, i&0xff),
		Model: "Raspberry Pi 4 Model B Rev 1.4", Revision: "c03114", Serial: fmt.Sprintf("10000000%08x", i),
		CPU: "arm,cortex-a72", Cores: 4, MemoryBytes: 3977551872, Bootloader: "507b2360 2025-05-08", TempMilliC: 48692}
	for d := 0; d < 4; d++ {
		f.Disks = append(f.Disks, report.Disk{Name: fmt.Sprintf("sd%c", 'a'+d), Bytes: 500107862016, Model: "Samsung SSD 870 EVO", Serial: fmt.Sprintf("S6PNNS0T%06d", i)})
	}
	f.NICs = []report.NIC{{Name: "eth0", MAC: f.MAC, Driver: "bcmgenet", SpeedMbps: 1000}, {Name: "wlan0", MAC: f.MAC, Driver: "brcmfmac"}}
	return f
}

// TestFactsBounded: the facts kept are bounded by MaxFacts, the oldest
// dropped first, and a node's latest replaces its earlier.
func TestFactsBounded(t *testing.T) {
	s := &Site{}
	for i := 0; i < MaxFacts+10; i++ {
		s.NoteFacts(sampleFacts(i), "192.0.2.1")
	}
	if n := len(s.AllFacts()); n != MaxFacts {
		t.Errorf("%d nodes' facts kept, want %d", n, MaxFacts)
	}
	f := sampleFacts(MaxFacts + 9)
	f.MemoryBytes = 1
	s.NoteFacts(f, "192.0.2.9")
	if got, ok := s.Facts(f.MAC); !ok || got.MemoryBytes != 1 || got.IP != "192.0.2.9" {
		t.Errorf("the latest facts: %+v, %v", got, ok)
	}
}

// BenchmarkFacts1000 reports what 1,000 nodes' facts cost the server
// (4 disks, 2 NICs each): the report's size on the wire and the heap the
// site keeps per node.
func BenchmarkFacts1000(b *testing.B) {
	body, _ := json.Marshal(sampleFacts(1))
	b.ReportMetric(float64(len(body)), "report-bytes")
	for it := 0; it < b.N; it++ {
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		s := &Site{}
		for i := 0; i < 1000; i++ {
			s.NoteFacts(sampleFacts(i), "192.0.2.1")
		}
		runtime.GC()
		runtime.ReadMemStats(&m1)
		b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/1000, "heap-bytes/node")
		runtime.KeepAlive(s)
	}
}
