package server

import (
	"net"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ramboot/ramboot/server/dhcp"
)

// TestDeclineMetrics: what DECLINEs did shows at /metrics, freed early
// addresses by reason.
func TestDeclineMetrics(t *testing.T) {
	p, err := dhcp.OpenPool(net.IPv4(192, 0, 2, 100), net.IPv4(192, 0, 2, 107), "") // at most 2 set aside
	if err != nil {
		t.Fatal(err)
	}
	decline := func(mac string) {
		m, _ := net.ParseMAC(mac)
		ip, err := p.Offer(m, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Decline(m, ip); err != nil {
			t.Fatal(err)
		}
	}
	decline("02:00:00:00:00:01")
	decline("02:00:00:00:00:01") // frees its first
	decline("02:00:00:00:00:02")
	decline("02:00:00:00:00:03") // frees the oldest
	reg := prometheus.NewRegistry()
	reg.MustRegister(&declineCollector{p})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			k := mf.GetName()
			for _, l := range m.GetLabel() {
				k += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			got[k] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	want := map[string]float64{
		"ramboot_dhcp_declines_total":                                 4,
		"ramboot_dhcp_declined_freed_early_total{reason=same_client}": 1,
		"ramboot_dhcp_declined_freed_early_total{reason=over_bound}":  1,
		"ramboot_dhcp_declined_addresses":                             2,
	}
	if len(got) != len(want) {
		t.Errorf("series %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}
