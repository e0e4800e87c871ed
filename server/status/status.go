// Package status keeps what `ramboot serve` has seen of each node: its
// last boot stage, when, and a short history, for the status page and
// its JSON endpoint.
package status

import (
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"sync"
	"time"
)

// Node is one node's record.
type Node struct {
	MAC      string    `json:"mac"`
	Serial   string    `json:"serial,omitempty"`
	Hostname string    `json:"hostname,omitempty"`
	IP       string    `json:"ip,omitempty"`
	Kind     string    `json:"kind,omitempty"`
	Stage    string    `json:"stage"`
	Detail   string    `json:"detail,omitempty"`
	Last     time.Time `json:"last_seen"`
	Steps    []Step    `json:"steps"`
}

// Step is one boot step.
type Step struct {
	At     time.Time `json:"at"`
	Stage  string    `json:"stage"`
	Detail string    `json:"detail,omitempty"`
}

// Board holds every node seen, keyed by MAC (or serial when no MAC is
// known, as for TFTP requests under a serial prefix).
type Board struct {
	Now      func() time.Time
	MaxSteps int // per node; default 32

	mu    sync.Mutex
	nodes map[string]*Node
}

// Record adds a step for a node. Empty fields do not overwrite known ones.
func (b *Board) Record(key string, n Node, stage, detail string) {
	now := time.Now
	if b.Now != nil {
		now = b.Now
	}
	t := now().UTC()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.nodes == nil {
		b.nodes = map[string]*Node{}
	}
	cur, ok := b.nodes[key]
	if !ok {
		cur = &Node{}
		b.nodes[key] = cur
	}
	for dst, src := range map[*string]string{&cur.MAC: n.MAC, &cur.Serial: n.Serial, &cur.Hostname: n.Hostname, &cur.IP: n.IP, &cur.Kind: n.Kind} {
		if src != "" {
			*dst = src
		}
	}
	cur.Stage, cur.Detail, cur.Last = stage, detail, t
	cur.Steps = append(cur.Steps, Step{At: t, Stage: stage, Detail: detail})
	max := b.MaxSteps
	if max == 0 {
		max = 32
	}
	if len(cur.Steps) > max {
		cur.Steps = cur.Steps[len(cur.Steps)-max:]
	}
}

// MACOfSerial returns the MAC of the node recorded with serial, or "".
func (b *Board) MACOfSerial(serial string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, n := range b.nodes {
		if n.Serial == serial && n.MAC != "" {
			return n.MAC
		}
	}
	return ""
}

// KeyOfIP returns the key of the node most recently recorded with IP ip
// (Node.IP), or "" if none is.
func (b *Board) KeyOfIP(ip string) string {
	if ip == "" {
		return ""
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	key, last := "", time.Time{}
	for k, n := range b.nodes {
		if n.IP != ip {
			continue
		}
		if key == "" || n.Last.After(last) || (n.Last.Equal(last) && k < key) {
			key, last = k, n.Last
		}
	}
	return key
}

// Nodes returns a copy of every node, most recently seen first.
func (b *Board) Nodes() []Node {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Node, 0, len(b.nodes))
	for _, n := range b.nodes {
		c := *n
		c.Steps = append([]Step(nil), n.Steps...)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Last.Equal(out[j].Last) {
			return out[i].Last.After(out[j].Last)
		}
		return out[i].MAC < out[j].MAC
	})
	return out
}

var page = template.Must(template.New("status").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>ramboot: {{len .}} nodes</title>
<meta http-equiv="refresh" content="5">
<style>body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}
td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}code{font-size:12px}</style></head>
<body><h1>ramboot serve</h1><p>{{len .}} nodes seen. JSON: <a href="/status.json">/status.json</a></p>
<table><tr><th>MAC</th><th>serial</th><th>hostname</th><th>IP</th><th>kind</th><th>last stage</th><th>detail</th><th>last seen</th></tr>
{{range .}}<tr><td><code>{{.MAC}}</code></td><td><code>{{.Serial}}</code></td><td>{{.Hostname}}</td><td>{{.IP}}</td><td>{{.Kind}}</td>
<td><b>{{.Stage}}</b></td><td>{{.Detail}}</td><td>{{.Last.Format "15:04:05"}}</td></tr>
{{end}}</table></body></html>
`))

// ServeHTTP serves the page at / and JSON at /status.json.
func (b *Board) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	nodes := b.Nodes()
	if r.URL.Path == "/status.json" {
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(w).Encode(map[string]any{"nodes": nodes}); err != nil {
			http.Error(w, fmt.Sprint(err), http.StatusInternalServerError)
		}
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := page.Execute(w, nodes); err != nil {
		http.Error(w, fmt.Sprint(err), http.StatusInternalServerError)
		return
	}
}
