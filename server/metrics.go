package server

// Prometheus metrics at /metrics. Each Server has its own registry (tests
// run several servers in one process). Every label takes values from a
// fixed set, whatever clients send: client kinds and event types are
// mapped onto the lists below, and the per-node series exist only for
// the inventory's nodes, computed from the status board at each scrape.

import (
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ramboot/ramboot/internal/report"
	"github.com/ramboot/ramboot/server/dhcp"
	"github.com/ramboot/ramboot/server/tftp"
	"github.com/ramboot/ramboot/site/inventory"
)

// MetricsPath is where the HTTP server serves the metrics.
const MetricsPath = "/metrics"

// Values of the "kind" label of ramboot_dhcp_replies_total.
var clientKinds = []string{"pi3", "pi4", "pi5", "pi", "ramboot-init", "ipxe", "pc-bios", "pc-uefi", "arm64-uefi", "uefi-http", "other"}

// Values of the "type" label of ramboot_dhcp_replies_total.
var dhcpReplyTypes = []string{"offer", "ack", "nak"}

// Values of the "result" label of the transfer counters.
var transferResults = []string{"started", "completed", "probe", "failed"}

// Values of the "kind" label of ramboot_errors_total.
const (
	errDHCPMalformed = "dhcp_malformed"
	errDHCPNak       = "dhcp_nak"
	errDHCPNoAddress = "dhcp_no_address"
	errDHCPError     = "dhcp_error"
	errTFTPMalformed = "tftp_malformed"
	errTFTPBusy      = "tftp_busy"
	errTFTPNotFound  = "tftp_not_found"
	errTFTPError     = "tftp_error"
	errHTTPNotFound  = "http_not_found"
	errHTTPError     = "http_error"
	errHTTPAborted   = "http_aborted"
	errReportBad     = "report_malformed"
	errReportRefused = "report_refused"
	errReportRate    = "report_rate_limited"
	errReportLost    = "report_not_recorded" // an install outcome the state file did not take (503)
)

var errorKinds = []string{errDHCPMalformed, errDHCPNak, errDHCPNoAddress, errDHCPError,
	errTFTPMalformed, errTFTPBusy, errTFTPNotFound, errTFTPError,
	errHTTPNotFound, errHTTPError, errHTTPAborted,
	errReportBad, errReportRefused, errReportRate, errReportLost}

// metricsState holds a Server's metrics, made on first use.
type metricsState struct {
	once sync.Once
	m    *serverMetrics
}

type serverMetrics struct {
	reg           *prometheus.Registry
	handler       http.Handler
	dhcpReplies   *prometheus.CounterVec // kind, type
	dhcpIgnored   *prometheus.CounterVec // kind
	tftpTransfers *prometheus.CounterVec // result
	tftpBytes     prometheus.Counter
	httpTransfers *prometheus.CounterVec // result
	httpBytes     prometheus.Counter
	errors        *prometheus.CounterVec // kind
	reports       *prometheus.CounterVec // stage
}

func (s *Server) metrics() *serverMetrics {
	s.met.once.Do(func() { s.met.m = newServerMetrics(s) })
	return s.met.m
}

// Registry is the Server's Prometheus registry, for callers that add
// their own collectors.
func (s *Server) Registry() *prometheus.Registry { return s.metrics().reg }

func newServerMetrics(s *Server) *serverMetrics {
	reg := prometheus.NewRegistry()
	m := &serverMetrics{
		reg: reg,
		dhcpReplies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ramboot_dhcp_replies_total",
			Help: "DHCP replies sent, by client kind and message type (offer, ack, nak).",
		}, []string{"kind", "type"}),
		dhcpIgnored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ramboot_dhcp_ignored_total",
			Help: "DHCP requests left unanswered (not a boot client, another server's, nothing to boot), by client kind.",
		}, []string{"kind"}),
		tftpTransfers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ramboot_tftp_transfers_total",
			Help: "TFTP read requests: started (the file is being opened), completed, probe (the Pi's size probe, ended before any data), failed.",
		}, []string{"result"}),
		tftpBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ramboot_tftp_bytes_total",
			Help: "Bytes sent over TFTP and acknowledged by the clients.",
		}),
		httpTransfers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ramboot_http_transfers_total",
			Help: "HTTP GETs of the tree and of iPXE scripts: started, completed, failed (an error status or a client gone early).",
		}, []string{"result"}),
		httpBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ramboot_http_bytes_total",
			Help: "Body bytes sent over HTTP for the tree and iPXE scripts.",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ramboot_errors_total",
			Help: "Errors and refusals, by kind.",
		}, []string{"kind"}),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ramboot_reports_total",
			Help: "Reports accepted from nodes (POST " + report.Path + "), by stage.",
		}, []string{"stage"}),
	}
	// Every series from the start, at zero: rate() works from the first
	// event, and a scrape shows what can be counted.
	for _, k := range clientKinds {
		for _, t := range dhcpReplyTypes {
			m.dhcpReplies.WithLabelValues(k, t)
		}
		m.dhcpIgnored.WithLabelValues(k)
	}
	for _, r := range transferResults {
		m.tftpTransfers.WithLabelValues(r)
		if r != "probe" {
			m.httpTransfers.WithLabelValues(r)
		}
	}
	for _, k := range errorKinds {
		m.errors.WithLabelValues(k)
	}
	for _, st := range report.Stages {
		m.reports.WithLabelValues(st)
	}
	reg.MustRegister(m.dhcpReplies, m.dhcpIgnored, m.tftpTransfers, m.tftpBytes, m.httpTransfers, m.httpBytes, m.errors, m.reports,
		&nodeCollector{s: s},
		// The Go runtime's metrics (memory, GC, goroutines), but not the
		// process collector: reading /proc/self at each scrape (its
		// limits, fds, netstat) costs four times the rest together
		// (BenchmarkScrape); node_exporter and systemd have those.
		collectors.NewGoCollector())
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		// Scrapes are cheap but not free: a few at once, each bounded.
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	})
	return m
}

// clientKind is the "kind" label of a DHCP client, one of clientKinds.
func clientKind(c dhcp.Client) string {
	switch c.Kind {
	case dhcp.PiBootROM:
		switch c.Model {
		case "RPi3":
			return "pi3"
		case "RPi4":
			return "pi4"
		case "RPi5":
			return "pi5"
		}
		return "pi"
	case dhcp.RambootInit:
		return "ramboot-init"
	case dhcp.IPXE:
		return "ipxe"
	case dhcp.PCFirmware:
		switch c.Arch {
		case dhcp.ArchBIOS:
			return "pc-bios"
		case dhcp.ArchEFIARM64:
			return "arm64-uefi"
		}
		return "pc-uefi"
	case dhcp.HTTPBoot:
		return "uefi-http"
	}
	return "other"
}

// countDHCP counts one event of the DHCP server.
func (m *serverMetrics) countDHCP(e dhcp.Event) {
	kind := clientKind(e.Client)
	switch e.Type {
	case "offer", "ack":
		m.dhcpReplies.WithLabelValues(kind, e.Type).Inc()
	case "nak":
		m.dhcpReplies.WithLabelValues(kind, e.Type).Inc()
		m.errors.WithLabelValues(errDHCPNak).Inc()
	case "ignored":
		m.dhcpIgnored.WithLabelValues(kind).Inc()
	case "bad-packet":
		m.errors.WithLabelValues(errDHCPMalformed).Inc()
	case "no-address":
		m.errors.WithLabelValues(errDHCPNoAddress).Inc()
	case "error", "send-error":
		m.errors.WithLabelValues(errDHCPError).Inc()
	}
}

// countTFTP counts one finished TFTP request (or bad packet).
func (m *serverMetrics) countTFTP(e tftp.Event) {
	m.tftpBytes.Add(float64(max(e.Bytes, 0)))
	switch e.Kind {
	case tftp.KindServed:
		m.tftpTransfers.WithLabelValues("completed").Inc()
	case tftp.KindEarlyTerminate:
		m.tftpTransfers.WithLabelValues("probe").Inc()
	case tftp.KindNotFound:
		m.tftpTransfers.WithLabelValues("failed").Inc()
		m.errors.WithLabelValues(errTFTPNotFound).Inc()
	case tftp.KindRefused:
		// Counted, every one of them, by tftp.Server.OnRefuse.
	default:
		if e.Path == "" {
			m.errors.WithLabelValues(errTFTPMalformed).Inc()
			return
		}
		m.tftpTransfers.WithLabelValues("failed").Inc()
		m.errors.WithLabelValues(errTFTPError).Inc()
	}
}

// countHTTP wraps the HTTP handler: each GET of a file of the tree or an
// iPXE script is a transfer (not the status page, the metrics, reports).
func (s *Server) countHTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case MetricsPath, "/status", "/status.json", report.Path:
			next.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet {
			next.ServeHTTP(w, r)
			return
		}
		m := s.metrics()
		m.httpTransfers.WithLabelValues("started").Inc()
		cw := &countingWriter{ResponseWriter: w}
		next.ServeHTTP(cw, r)
		m.httpBytes.Add(float64(cw.n))
		code := cw.code
		if code == 0 {
			code = http.StatusOK
		}
		want, err := strconv.ParseInt(w.Header().Get("Content-Length"), 10, 64)
		switch {
		case code == http.StatusNotFound:
			m.httpTransfers.WithLabelValues("failed").Inc()
			m.errors.WithLabelValues(errHTTPNotFound).Inc()
		case code >= 400:
			m.httpTransfers.WithLabelValues("failed").Inc()
			m.errors.WithLabelValues(errHTTPError).Inc()
		case cw.err != nil || (err == nil && code != http.StatusNotModified && cw.n < want):
			m.httpTransfers.WithLabelValues("failed").Inc()
			m.errors.WithLabelValues(errHTTPAborted).Inc()
		default:
			m.httpTransfers.WithLabelValues("completed").Inc()
		}
	})
}

// nodeCollector makes the per-node series at scrape time, for the
// inventory's nodes only: the label values are the inventory's, one series
// per node and source, whatever else the board holds.
type nodeCollector struct{ s *Server }

var (
	nodeLastSeenDesc = prometheus.NewDesc("ramboot_node_last_seen_timestamp_seconds",
		"When the server last saw or heard from an inventory node (Unix time).", []string{"node", "mac"}, nil)
	nodeStageDesc = prometheus.NewDesc("ramboot_node_stage",
		"An inventory node's last stage (always 1): as the server saw it (source=\"server\") and as the node reported it (source=\"node\").",
		[]string{"node", "mac", "stage", "source"}, nil)
	inventoryNodesDesc = prometheus.NewDesc("ramboot_inventory_nodes", "Nodes in the inventory in force.", nil, nil)
	nodeMemoryDesc     = prometheus.NewDesc("ramboot_node_memory_bytes",
		"An inventory node's memory (MemTotal), as its init last reported its facts.", []string{"node", "mac"}, nil)
	nodeDisksDesc = prometheus.NewDesc("ramboot_node_disks",
		"An inventory node's disks, as its init last reported its facts.", []string{"node", "mac"}, nil)
)

func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- nodeLastSeenDesc
	ch <- nodeStageDesc
	ch <- inventoryNodesDesc
	ch <- nodeMemoryDesc
	ch <- nodeDisksDesc
}

func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	inv := c.s.booter().Inventory()
	if inv == nil {
		ch <- prometheus.MustNewConstMetric(inventoryNodesDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(inventoryNodesDesc, prometheus.GaugeValue, float64(len(inv.Nodes)))
	seen := map[string]bool{}
	for i, n := range inv.Nodes {
		key, name, mac := c.nodeKey(n, i)
		if key == "" || seen[key] {
			continue
		}
		seen[key] = true
		if f, ok := c.s.booter().Facts(mac); ok && mac != "" {
			ch <- prometheus.MustNewConstMetric(nodeMemoryDesc, prometheus.GaugeValue, float64(f.MemoryBytes), name, mac)
			ch <- prometheus.MustNewConstMetric(nodeDisksDesc, prometheus.GaugeValue, float64(len(f.Disks)), name, mac)
		}
		rec, ok := c.s.Board.Head(key)
		if !ok {
			continue
		}
		ch <- prometheus.MustNewConstMetric(nodeLastSeenDesc, prometheus.GaugeValue, float64(rec.Last.UnixMilli())/1e3, name, mac)
		if rec.Stage != "" {
			ch <- prometheus.MustNewConstMetric(nodeStageDesc, prometheus.GaugeValue, 1, name, mac, rec.Stage, "server")
		}
		if rec.Reported != nil {
			ch <- prometheus.MustNewConstMetric(nodeStageDesc, prometheus.GaugeValue, 1, name, mac, rec.Reported.Stage, "node")
		}
	}
}

// nodeKey is an inventory node's key on the status board (its MAC; for a
// Pi known by serial only, the MAC DHCP saw with that serial, else the
// serial), its name for the "node" label (host name, else MAC, else
// serial, else its position) and its MAC.
func (c *nodeCollector) nodeKey(n inventory.Node, i int) (key, name, mac string) {
	if hw, err := net.ParseMAC(strings.ReplaceAll(strings.TrimSpace(n.MAC), "-", ":")); err == nil {
		mac, key = hw.String(), hw.String()
	}
	serial := strings.ToLower(strings.TrimSpace(n.Serial))
	if key == "" && serial != "" {
		key = serial
		if m := c.s.Board.MACOfSerial(serial); m != "" {
			key, mac = m, m
		}
	}
	switch {
	case n.Hostname != "":
		name = n.Hostname
	case mac != "":
		name = mac
	case serial != "":
		name = "serial " + serial
	default:
		name = "#" + strconv.Itoa(i+1)
	}
	return key, name, mac
}
