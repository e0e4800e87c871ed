package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ramboot/ramboot/server/dhcp"
)

// declineCollector reads what the full DHCP pool's DECLINEs did, at
// scrape time.
type declineCollector struct{ p *dhcp.Pool }

var (
	declinesDesc = prometheus.NewDesc("ramboot_dhcp_declines_total",
		"Full DHCP: DHCPDECLINEs honoured (an address set aside for the decline hold). A DECLINE from a client that neither holds nor was offered the address is counted in ramboot_dhcp_ignored_total.", nil, nil)
	declinedFreedDesc = prometheus.NewDesc("ramboot_dhcp_declined_freed_early_total",
		"Full DHCP: declined addresses given back before their hold ended, to keep the bounds: reason=\"same_client\" (the client declined another: one at a time per MAC), \"over_bound\" (the oldest, for a new one beyond the pool's bound).", []string{"reason"}, nil)
	declinedHeldDesc = prometheus.NewDesc("ramboot_dhcp_declined_addresses",
		"Full DHCP: addresses set aside after DECLINEs now.", nil, nil)
)

func (c *declineCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- declinesDesc
	ch <- declinedFreedDesc
	ch <- declinedHeldDesc
}

func (c *declineCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.p.DeclineStats()
	ch <- prometheus.MustNewConstMetric(declinesDesc, prometheus.CounterValue, float64(st.SetAside))
	ch <- prometheus.MustNewConstMetric(declinedFreedDesc, prometheus.CounterValue, float64(st.FreedOwn), "same_client")
	ch <- prometheus.MustNewConstMetric(declinedFreedDesc, prometheus.CounterValue, float64(st.FreedOldest), "over_bound")
	ch <- prometheus.MustNewConstMetric(declinedHeldDesc, prometheus.GaugeValue, float64(st.Held))
}
