package server

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ramboot/ramboot/internal/report"
	"github.com/ramboot/ramboot/server/status"
)

// Report limits, the defaults of the Server fields of the same names.
const (
	// DefaultReportRate is the reports a second one node may send on
	// average; DefaultReportBurst the most it may send at once. The init
	// sends about ten in a boot, and one every 2 s while it downloads.
	DefaultReportRate  = 5
	DefaultReportBurst = 20
	// DefaultReportTotalRate bounds the reports a second of all nodes
	// together (and refused requests), so that reports cost little
	// whatever clients send: twice that many at once.
	DefaultReportTotalRate = 200
	// reportReadTimeout bounds reading a report's body.
	reportReadTimeout = 5 * time.Second
	// reportLogInterval: a client whose report is refused is logged once
	// in that long; at most reportLogClients clients are remembered.
	reportLogInterval = time.Minute
	reportLogClients  = 1024
	// reportBuckets bounds the per-node rate limiters kept.
	reportBuckets = 4096
)

// reportState is what the report handler keeps between requests.
type reportState struct {
	mu      sync.Mutex
	total   bucket
	perNode map[string]*bucket
	logged  map[string]time.Time // client IP -> last refusal logged
}

// bucket is a token bucket.
type bucket struct {
	tokens float64
	last   time.Time
}

// take takes a token if there is one, refilling rate a second up to burst.
func (b *bucket) take(now time.Time, rate, burst float64) bool {
	if b.last.IsZero() {
		b.tokens = burst
	} else {
		b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// serveReport takes a node's report of its own boot stage (POST
// report.Path, a JSON report.Report). The report is believed only for the
// MAC the request's source address belongs to by what the server itself
// saw (nodeAt): the MAC its own DHCP ACK granted the address, or, when it
// granted it to none (proxy mode), the MAC the kernel's neighbour table has
// for the address, if that MAC is a node. Anything else is refused with 403
// (counted, and logged once per client a minute): a node cannot write
// another node's record, and no report makes up a node.
func (s *Server) serveReport(w http.ResponseWriter, r *http.Request) {
	m := s.metrics()
	var rep report.Report
	key, ip, ok := s.takeNodePost(w, r, "report", report.MaxBody, func(body []byte) (string, error) {
		if err := json.Unmarshal(body, &rep); err != nil {
			return "", errors.New("malformed report: " + err.Error() + `: want JSON like {"mac":"52:54:00:12:34:56","stage":"network-up"}`)
		}
		key, err := rep.Check()
		if err != nil {
			return "", errors.New("bad report: " + err.Error())
		}
		return key, nil
	})
	if !ok {
		return
	}
	rep.MAC = key
	rep.Detail = report.Clip(strings.ToValidUTF8(rep.Detail, "?"), report.MaxDetail)
	detail := reportDetail(rep)
	if rep.BootImg != "" {
		verdict, served := s.bootImgVerdict(key, rep.BootImg)
		detail = strings.TrimSpace(detail + "; " + verdict)
		if !served {
			s.log().Warn("boot.img", "mac", key, "remote", ip, "sha256", rep.BootImg, "verdict", verdict)
		}
	}
	s.Board.Report(key, status.Node{MAC: key, IP: ip}, rep.Stage, detail)
	m.reports.WithLabelValues(rep.Stage).Inc()
	s.log().Info("report", "mac", key, "remote", ip, "stage", rep.Stage, "detail", rep.Detail, "bytes", rep.Bytes, "total", rep.Total, "boot_img", rep.BootImg)
	// An install outcome is acknowledged only once the state file has it:
	// the init delivers it until a 2xx, so a 503 here is tried again.
	if mac, err := net.ParseMAC(key); err == nil {
		if err := s.booter().NoteReport(mac, s.ServerIP, rep.Stage, rep.Detail); err != nil {
			m.errors.WithLabelValues(errReportLost).Inc()
			http.Error(w, err.Error()+": try again", http.StatusServiceUnavailable)
			return
		}
	}
	if s.OnReport != nil {
		s.OnReport(key, rep)
	}
	w.WriteHeader(http.StatusNoContent)
}

// reportDetail is the detail the board shows: the node's, with the
// progress it reported.
func reportDetail(r report.Report) string {
	d := r.Detail
	switch {
	case r.Total > 0:
		d = strings.TrimSpace(d + " " + strconv.FormatInt(r.Bytes, 10) + " of " + strconv.FormatInt(r.Total, 10) +
			" bytes (" + strconv.FormatInt(r.Bytes*100/r.Total, 10) + "%)")
	case r.Bytes > 0:
		d = strings.TrimSpace(d + " " + strconv.FormatInt(r.Bytes, 10) + " bytes")
	}
	return d
}

// reportFrom reports whether a request from ip may report for key.
func (s *Server) reportFrom(ip, key string) bool {
	return key != "" && s.nodeAt(ip) == key
}

// nodeAt returns the MAC of the node at address ip by what the server
// itself saw, or "":
//
//   - the MAC its own DHCP ACK granted ip (full mode), unless the kernel's
//     neighbour table on the served interface has another MAC at ip (a
//     host that asked for an address under another's MAC and uses it from
//     its own);
//   - else the MAC the neighbour table has at ip, if that MAC is a node
//     (isNode; proxy mode, or --dhcp off: another server gave the
//     address).
//
// Nothing a client writes counts: not a TFTP path, a User-Agent or a
// report. What is left to an on-link attacker (forging its Ethernet
// address, ARP) is in the README's trust model.
func (s *Server) nodeAt(ip string) string {
	if ip == "" {
		return ""
	}
	neigh := s.neighbor(ip)
	if bound := s.Board.KeyOfIP(ip); bound != "" {
		if neigh != "" && neigh != bound {
			return ""
		}
		return bound
	}
	if neigh != "" && s.isNode(neigh) {
		return neigh
	}
	return ""
}

// isNode reports whether mac is a node by the server's own evidence: DHCP
// saw it, or the inventory names it (with --dhcp off, DHCP sees nothing).
func (s *Server) isNode(mac string) bool {
	return s.Board.SawDHCP(mac) || s.Board.Pinned(mac)
}

// neighbor returns the MAC the kernel's neighbour table has at ip on the
// served interface, or "".
func (s *Server) neighbor(ip string) string {
	if s.neighborMAC != nil {
		return s.neighborMAC(ip)
	}
	return neighborMAC("/proc/net/arp", s.Interface, ip)
}

// neighborMAC returns the MAC of ip in the kernel's neighbour table (the
// /proc/net/arp format) on interface ifname, or "".
func neighborMAC(file, ifname, ip string) string {
	f, err := os.Open(file)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // the header
	for sc.Scan() {
		// IP address, HW type, Flags, HW address, Mask, Device
		fl := strings.Fields(sc.Text())
		if len(fl) < 6 || fl[0] != ip || fl[5] != ifname {
			continue
		}
		flags, err := strconv.ParseUint(strings.TrimPrefix(fl[2], "0x"), 16, 32)
		if err != nil || flags&0x2 == 0 { // ATF_COM: the entry is complete
			continue
		}
		if mac, err := net.ParseMAC(fl[3]); err == nil {
			return mac.String()
		}
	}
	return ""
}

// reportAllowed takes a token from all reports' bucket (key "") or from
// the node's.
func (s *Server) reportAllowed(now time.Time, key, ip string) bool {
	st := &s.reports
	st.mu.Lock()
	defer st.mu.Unlock()
	if key == "" {
		rate := float64(positive(s.ReportTotalRate, DefaultReportTotalRate))
		return st.total.take(now, rate, 2*rate)
	}
	if st.perNode == nil || len(st.perNode) >= reportBuckets {
		st.perNode = map[string]*bucket{}
	}
	b := st.perNode[key]
	if b == nil {
		b = &bucket{}
		st.perNode[key] = b
	}
	return b.take(now, float64(positive(s.ReportRate, DefaultReportRate)), float64(positive(s.ReportBurst, DefaultReportBurst)))
}

// logRefusal reports whether a refusal for ip is to be logged: once per
// client in reportLogInterval.
func (s *Server) logRefusal(now time.Time, ip string) bool {
	st := &s.reports
	st.mu.Lock()
	defer st.mu.Unlock()
	if t, ok := st.logged[ip]; ok && now.Sub(t) < reportLogInterval {
		return false
	}
	if st.logged == nil || len(st.logged) >= reportLogClients {
		st.logged = map[string]time.Time{}
	}
	st.logged[ip] = now
	return true
}

// serveFacts takes a node's hardware facts (POST report.FactsPath, a JSON
// report.Facts of at most report.MaxFactsBody), under the same rules as a
// report (serveReport): from the node's own address by the server's
// evidence only (403 otherwise), within the report rate limits. The
// latest facts of each node are kept (Booter.NoteFacts) and shown on its
// status record.
func (s *Server) serveFacts(w http.ResponseWriter, r *http.Request) {
	var f report.Facts
	key, ip, ok := s.takeNodePost(w, r, "facts report", report.MaxFactsBody, func(body []byte) (string, error) {
		if err := json.Unmarshal(body, &f); err != nil {
			return "", errors.New("malformed facts: " + err.Error())
		}
		key, err := f.Check()
		if err != nil {
			return "", errors.New("bad facts: " + err.Error())
		}
		return key, nil
	})
	if !ok {
		return
	}
	f.MAC = key
	s.booter().NoteFacts(f, ip)
	line := f.Summary()
	s.Board.SetHardware(key, line)
	s.log().Info("facts", "mac", key, "remote", ip, "hardware", line)
	w.WriteHeader(http.StatusNoContent)
}

// takeNodePost reads a node's POST (a report or its facts) under the
// rules every node endpoint keeps: POST only; the reports' total rate;
// at most max bytes, read within reportReadTimeout; decode parses the
// body and returns the MAC it speaks for, which must be the MAC of the
// node at the request's source address by the server's own evidence
// (nodeAt; 403 otherwise, logged once per client a minute); then that
// node's own rate. It answers every refusal itself; ok says go on.
func (s *Server) takeNodePost(w http.ResponseWriter, r *http.Request, what string, max int64, decode func([]byte) (string, error)) (key, ip string, ok bool) {
	m := s.metrics()
	if r.Method != http.MethodPost {
		http.NewResponseController(w).SetReadDeadline(time.Now())
		w.Header().Set("Connection", "close")
		w.Header().Set("Allow", "POST")
		http.Error(w, "POST a JSON "+what+" to "+r.URL.Path, http.StatusMethodNotAllowed)
		return "", "", false
	}
	ip = remoteIP(r.RemoteAddr)
	now := time.Now()
	if !s.reportAllowed(now, "", ip) {
		m.errors.WithLabelValues(errReportRate).Inc()
		refuse(w, http.StatusTooManyRequests, "too many reports: try again later")
		return "", "", false
	}
	tooBig := "a " + what + " is at most " + strconv.FormatInt(max, 10) + " bytes"
	if r.ContentLength > max {
		m.errors.WithLabelValues(errReportBad).Inc()
		refuse(w, http.StatusRequestEntityTooLarge, tooBig)
		return "", "", false
	}
	http.NewResponseController(w).SetReadDeadline(now.Add(reportReadTimeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		m.errors.WithLabelValues(errReportBad).Inc()
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			refuse(w, http.StatusRequestEntityTooLarge, tooBig)
			return "", "", false
		}
		refuse(w, http.StatusBadRequest, "reading the "+what+": "+err.Error())
		return "", "", false
	}
	key, err = decode(body)
	if err != nil {
		m.errors.WithLabelValues(errReportBad).Inc()
		http.Error(w, err.Error(), http.StatusBadRequest)
		return "", "", false
	}
	if !s.reportFrom(ip, key) {
		m.errors.WithLabelValues(errReportRefused).Inc()
		if s.logRefusal(now, ip) {
			s.log().Warn(what+" refused: the source address is not the node's", "remote", ip, "mac", key,
				"dhcp", s.Board.KeyOfIP(ip), "neighbour", s.neighbor(ip))
		}
		http.Error(w, "this address does not belong to "+key+": a node reports only for itself", http.StatusForbidden)
		return "", "", false
	}
	if !s.reportAllowed(now, key, ip) {
		m.errors.WithLabelValues(errReportRate).Inc()
		http.Error(w, "too many reports from "+key+": try again later", http.StatusTooManyRequests)
		return "", "", false
	}
	return key, ip, true
}
