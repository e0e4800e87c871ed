// Package status keeps what `ramboot serve` has seen of each node: its
// last boot stage, when, and a short history, for the status page and
// its JSON endpoint.
package status

import (
	"bytes"
	"encoding/json"
	"html/template"
	"io"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
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
	// Reported is the node's own last report (its init's, see Report),
	// beside Stage and Detail, which are what the server saw; nil if the
	// node reported nothing.
	Reported *Step `json:"reported,omitempty"`
	// Hardware is the node's facts in one line, as its init reported
	// them (SetHardware); "" if none.
	Hardware string `json:"hardware,omitempty"`
	// Generation is the root image generation the node last downloaded
	// whole through a channel (tree/images: "debian@ID.squashfs"); "" if
	// none.
	Generation string `json:"generation,omitempty"`
}

// Step is one boot step.
type Step struct {
	At     time.Time `json:"at"`
	Stage  string    `json:"stage"`
	Detail string    `json:"detail,omitempty"`
	// By is "node" for a step the node reported itself, "" for one the
	// server saw.
	By string `json:"by,omitempty"`
}

// ByNode marks a step the node reported (Step.By).
const ByNode = "node"

// Defaults for Board's zero fields.
const (
	DefaultMaxSteps  = 32
	DefaultMaxOthers = 1024
	// MaxField is the most bytes kept of a key, a detail or any field of a
	// Node: most come from clients (a TFTP path, a DHCP serial).
	MaxField = 200
)

// Board holds the nodes seen, keyed by MAC (or serial when no MAC is
// known, as for TFTP requests under a serial prefix; or "ip ADDRESS").
//
// What it shows and what it believes are apart. Record shows what was
// seen, whoever sent it; only DHCP (the exchanges the server itself
// handled) says which MAC has which address (KeyOfIP), which serial
// (MACOfSerial) and that a MAC is a node at all (SawDHCP). A TFTP path,
// a User-Agent or a report never ties an address or a serial to a MAC.
//
// It is bounded whatever clients send: pinned keys (the inventory's nodes,
// see SetPinned) are always kept; of the others at most MaxOthers, the
// least recently seen dropped first. Keys and every string are cut to
// MaxField bytes. Record, DHCP, MACOfSerial and KeyOfIP cost O(1).
type Board struct {
	Now       func() time.Time
	MaxSteps  int // per node; default DefaultMaxSteps
	MaxOthers int // nodes kept besides the pinned ones; default DefaultMaxOthers

	mu       sync.Mutex
	nodes    map[string]*entry
	pinned   map[string]bool
	lru      entry             // sentinel of the unpinned entries, most recently seen first
	others   int               // entries in lru
	bySerial map[string]string // serial -> MAC DHCP saw it with (option 97)
	byIP     map[string]string // IP -> MAC the server's DHCP most recently granted it

	// For the page only (SetRoster, SetPower): the inventory's nodes,
	// listed even before they are seen, and the last power action per
	// key.
	roster  []Node
	power   map[string]string
	install map[string]string
}

// entry is a node on the board; unpinned entries are in the LRU list.
type entry struct {
	key  string
	node Node
	// What DHCP said of the node (see DHCP): it was seen, the serial it
	// sent, the address the server granted it ("" if none).
	dhcp       bool
	dhcpSerial string
	boundIP    string
	prev, next *entry // nil when pinned
}

func (b *Board) init() {
	if b.nodes == nil {
		b.nodes = map[string]*entry{}
		b.bySerial = map[string]string{}
		b.byIP = map[string]string{}
		b.lru.prev, b.lru.next = &b.lru, &b.lru
	}
}

func (b *Board) maxOthers() int {
	if b.MaxOthers <= 0 {
		return DefaultMaxOthers
	}
	return b.MaxOthers
}

// pushFront puts e first in the LRU list.
func (b *Board) pushFront(e *entry) {
	e.prev, e.next = &b.lru, b.lru.next
	e.prev.next, e.next.prev = e, e
	b.others++
}

func (b *Board) unlink(e *entry) {
	if e.next == nil {
		return
	}
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
	b.others--
}

// evict drops the least recently seen unpinned nodes over the bound.
func (b *Board) evict() {
	for b.others > b.maxOthers() {
		e := b.lru.prev
		b.unlink(e)
		delete(b.nodes, e.key)
		if e.dhcpSerial != "" && b.bySerial[e.dhcpSerial] == e.key {
			delete(b.bySerial, e.dhcpSerial)
		}
		if e.boundIP != "" && b.byIP[e.boundIP] == e.key {
			delete(b.byIP, e.boundIP)
		}
	}
}

// SetPinned replaces the set of keys that are always kept (the inventory's
// MACs and serials, in the board's spelling: "dc:a6:32:01:36:c2",
// "9ffefdef"). Nodes no longer pinned count against MaxOthers again, in
// the order they were last seen.
func (b *Board) SetPinned(keys []string) {
	pinned := make(map[string]bool, len(keys))
	for _, k := range keys {
		pinned[clip(k)] = true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	b.pinned = pinned
	var unpinned []*entry
	for _, e := range b.nodes {
		b.unlink(e)
		if !pinned[e.key] {
			unpinned = append(unpinned, e)
		}
	}
	// Oldest first, so the most recently seen ends up in front.
	sort.Slice(unpinned, func(i, j int) bool {
		if !unpinned[i].node.Last.Equal(unpinned[j].node.Last) {
			return unpinned[i].node.Last.Before(unpinned[j].node.Last)
		}
		return unpinned[i].key < unpinned[j].key
	})
	for _, e := range unpinned {
		b.pushFront(e)
	}
	b.evict()
}

// SetRoster sets the inventory's nodes (MAC or Serial, Hostname, IP the
// fixed address) for the status page: it names the nodes it has seen by
// their hostnames and lists the others as not seen yet. The records are
// unchanged (see SetPinned for what is kept).
func (b *Board) SetRoster(nodes []Node) {
	r := make([]Node, len(nodes))
	for i, n := range nodes {
		r[i] = Node{MAC: clip(n.MAC), Serial: clip(n.Serial), Hostname: clip(n.Hostname), IP: clip(n.IP)}
	}
	b.mu.Lock()
	b.roster = r
	b.mu.Unlock()
}

// SetPower sets the last power action of each node (by board key: MAC,
// or serial for a node listed by serial only), one line each, for the
// status page.
func (b *Board) SetPower(last map[string]string) {
	m := make(map[string]string, len(last))
	for k, v := range last {
		m[clip(k)] = clip(v)
	}
	b.mu.Lock()
	b.power = m
	b.mu.Unlock()
}

// SetInstall sets each node's install state (by MAC), one line each, for
// the status page.
func (b *Board) SetInstall(states map[string]string) {
	m := make(map[string]string, len(states))
	for k, v := range states {
		m[clip(k)] = clip(v)
	}
	b.mu.Lock()
	b.install = m
	b.mu.Unlock()
}

// clip cuts s to at most MaxField bytes, on a UTF-8 boundary.
func clip(s string) string {
	if len(s) <= MaxField {
		return s
	}
	cut := MaxField - len("...")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// Record adds a step the server saw for a node. Empty fields do not
// overwrite known ones. It is for showing only: n.IP and n.Serial are
// displayed, never believed (see DHCP).
func (b *Board) Record(key string, n Node, stage, detail string) {
	b.record(key, n, stage, detail, "", nil)
}

// Binding is what a DHCP step tells the board about a node's identity.
type Binding int

const (
	// Seen: DHCP saw the MAC (and its serial, option 97, if it sent
	// one) in a packet the server handled, but granted it no address:
	// a DISCOVER, a proxy-mode exchange, an OFFER not yet taken.
	Seen Binding = iota
	// Bound: n.IP is the address the server's own ACK granted the MAC.
	Bound
)

// DHCP adds a step of a DHCP exchange the server handled for the node
// with MAC key: the evidence a node's identity rests on. The MAC counts
// as a node (SawDHCP); n.Serial, if any, is the serial MACOfSerial maps to
// key. With Bound, KeyOfIP(n.IP) is key until the server grants n.IP to
// another MAC; with Seen, n.IP is only shown.
func (b *Board) DHCP(key string, n Node, stage, detail string, how Binding) {
	b.record(key, n, stage, detail, "", &how)
}

// Report adds a step the node reported itself (Step.By "node") and makes
// it the node's Reported step; Stage and Detail keep what the server saw.
// The caller has checked that the report comes from the node: n.IP is the
// address it came from, shown, not bound.
func (b *Board) Report(key string, n Node, stage, detail string) {
	b.record(key, n, stage, detail, ByNode, nil)
}

// record adds a step; dhcp is nil unless the step is DHCP's.
func (b *Board) record(key string, n Node, stage, detail, by string, dhcp *Binding) {
	now := time.Now
	if b.Now != nil {
		now = b.Now
	}
	t := now().UTC()
	key, stage, detail = clip(key), clip(stage), clip(detail)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	cur, ok := b.nodes[key]
	if !ok {
		cur = &entry{key: key}
		b.nodes[key] = cur
		if !b.pinned[key] {
			b.pushFront(cur)
		}
	} else if cur.next != nil {
		b.unlink(cur)
		b.pushFront(cur)
	}
	c := &cur.node
	for _, f := range [...]struct {
		dst *string
		src string
	}{{&c.MAC, n.MAC}, {&c.Serial, n.Serial}, {&c.Hostname, n.Hostname}, {&c.IP, n.IP}, {&c.Kind, n.Kind}, {&c.Generation, n.Generation}} {
		if f.src != "" {
			*f.dst = clip(f.src)
		}
	}
	if dhcp != nil {
		b.learn(cur, clip(n.Serial), clip(n.IP), *dhcp)
	}
	step := Step{At: t, Stage: stage, Detail: detail, By: by}
	if by == "" {
		c.Stage, c.Detail = stage, detail
	} else {
		r := step
		c.Reported = &r
	}
	c.Last = t
	max := b.MaxSteps
	if max <= 0 {
		max = DefaultMaxSteps
	}
	if len(c.Steps) >= max {
		// Drop the oldest in place: the slice never grows past max.
		copy(c.Steps, c.Steps[len(c.Steps)-max+1:])
		c.Steps = c.Steps[:max-1]
	}
	c.Steps = append(c.Steps, step)
	if !ok {
		b.evict()
	}
}

// learn takes what a DHCP step says of e's identity. b.mu is held.
func (b *Board) learn(e *entry, serial, ip string, how Binding) {
	e.dhcp = true
	if serial != "" && serial != e.dhcpSerial {
		if e.dhcpSerial != "" && b.bySerial[e.dhcpSerial] == e.key {
			delete(b.bySerial, e.dhcpSerial)
		}
		e.dhcpSerial = serial
		b.bySerial[serial] = e.key
	}
	if how == Bound && ip != "" {
		if e.boundIP != "" && e.boundIP != ip && b.byIP[e.boundIP] == e.key {
			delete(b.byIP, e.boundIP)
		}
		e.boundIP = ip
		b.byIP[ip] = e.key // the address moved: its last grant wins
	}
}

// MACOfSerial returns the MAC DHCP most recently saw with serial (option
// 97, see DHCP), or "".
func (b *Board) MACOfSerial(serial string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bySerial[serial]
}

// SawDHCP reports whether DHCP saw the MAC key (see DHCP).
func (b *Board) SawDHCP(key string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.nodes[key]
	return ok && e.dhcp
}

// Pinned reports whether key is one of the keys SetPinned set (the
// inventory's).
func (b *Board) Pinned(key string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pinned[key]
}

// KeyOfIP returns the MAC the server's DHCP most recently granted ip (a
// DHCP step with Bound), or "" if it granted it to none the board keeps.
func (b *Board) KeyOfIP(ip string) string {
	if ip == "" {
		return ""
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.byIP[ip]
}

// SetHardware sets the hardware line of the node recorded under key, if
// the board has it; it changes neither its stage nor its steps.
func (b *Board) SetHardware(key, line string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.nodes[key]
	if ok {
		e.node.Hardware = clip(line)
	}
	return ok
}

// Node returns a copy of the node recorded under key.
func (b *Board) Node(key string) (Node, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.nodes[key]
	if !ok {
		return Node{}, false
	}
	return e.node.copy(), true
}

// Head returns the node recorded under key without its steps: its last
// stage, its last report and when it was last seen, cheaply (the metrics
// read it for every inventory node at every scrape).
func (b *Board) Head(key string) (Node, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.nodes[key]
	if !ok {
		return Node{}, false
	}
	n := e.node
	n.Steps = nil
	if n.Reported != nil {
		r := *n.Reported
		n.Reported = &r
	}
	return n, true
}

func (n Node) copy() Node {
	n.Steps = append([]Step(nil), n.Steps...)
	if n.Reported != nil {
		r := *n.Reported
		n.Reported = &r
	}
	return n
}

// Has reports whether the board has a record under key.
func (b *Board) Has(key string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.nodes[key]
	return ok
}

// Len returns the number of nodes on the board.
func (b *Board) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.nodes)
}

// Nodes returns a copy of every node, most recently seen first.
func (b *Board) Nodes() []Node {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Node, 0, len(b.nodes))
	for _, e := range b.nodes {
		out = append(out, e.node.copy())
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Last.Equal(out[j].Last) {
			return out[i].Last.After(out[j].Last)
		}
		return out[i].MAC < out[j].MAC
	})
	return out
}

// page is the status page in three parts, written a node at a time (see
// ServeHTTP): the head (given the counts), a row per node, the foot with
// the script. The page works without the script (a table, refreshed by
// the browser every 10 s); with it the table sorts by a click on a column,
// filters as one types (every word must appear in the row), counts the
// nodes per stage, and refreshes itself in place every 10 s keeping the
// sort and the filter, which live in the address's fragment
// (#q=rack1&sort=seen&desc=1) so that a reload or a shared link shows the
// same view.
var page = template.Must(template.New("head").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ramboot: {{.Shown}} nodes</title>
<meta name="viewport" content="width=device-width,initial-scale=1">
<link rel="icon" href="data:,">
<noscript><meta http-equiv="refresh" content="10"></noscript>
<style>
body{font:13px system-ui,sans-serif;margin:1em 1.5em;color:#222}
h1{font-size:18px;margin:0 0 .4em}
#bar{display:flex;gap:1em;align-items:center;flex-wrap:wrap;position:sticky;top:0;background:#fff;padding:.4em 0;z-index:2}
#q{font:inherit;padding:.3em .5em;width:22em}
#counts button{font:inherit;margin:0 .3em .2em 0;padding:.1em .5em;border:1px solid #bbb;border-radius:1em;background:#f6f6f6;cursor:pointer}
table{border-collapse:collapse;width:100%;table-layout:fixed}
th{position:sticky;top:2.6em;background:#eee;text-align:left;padding:.3em .5em;cursor:pointer;user-select:none;white-space:nowrap}
th[aria-sort=ascending]::after{content:" \25B2"}th[aria-sort=descending]::after{content:" \25BC"}
td{padding:.25em .5em;border-bottom:1px solid #e4e4e4;vertical-align:top;overflow:hidden;text-overflow:ellipsis}
td small{display:block;color:#666;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
code{font-size:12px}
tr.unseen td{color:#999}
tr.failed td{background:#fff0f0}
</style></head>
<body><h1>ramboot serve</h1>
<div id="bar"><input id="q" type="search" placeholder="filter: words in a row (hostname, MAC, stage, generation...)" aria-label="filter">
<span id="shown">{{.Shown}} nodes</span> <label><input id="auto" type="checkbox" checked> refresh every 10 s</label>
<span>{{.Seen}} seen, {{.Unseen}} listed in nodes.yaml and not seen yet. JSON: <a href="/status.json">/status.json</a></span></div>
<div id="counts"></div>
<table><colgroup><col style="width:12%"><col style="width:7%"><col style="width:6%"><col style="width:7%"><col style="width:16%"><col style="width:13%"><col style="width:10%"><col style="width:9%"><col style="width:13%"><col style="width:7%"></colgroup>
<thead><tr><th data-col="node">node</th><th data-col="ip">IP</th><th data-col="kind">kind</th><th data-col="install">install</th><th data-col="stage">last stage</th><th data-col="report">reported by the node</th><th data-col="generation">generation</th><th data-col="power">power</th><th data-col="hardware">hardware</th><th data-col="seen">last seen</th></tr></thead>
<tbody id="nodes">
{{define "row"}}<tr data-stage="{{.Stage}}"{{if not .Seen}} class="unseen"{{else if .Failed}} class="failed"{{end}}><td data-v="{{.Name}}" title="{{.Name}}">{{.Name}}<small>{{if and .MAC (ne .Name .MAC)}}<code>{{.MAC}}</code> {{end}}{{with .Serial}}<code>{{.}}</code>{{end}}</small></td><td data-v="{{.IPKey}}">{{.IP}}</td><td>{{.Kind}}</td><td title="{{.Install}}">{{.Install}}</td>
<td title="{{.Detail}}"><b>{{.Stage}}</b><small>{{.Detail}}</small></td>
<td>{{with .Reported}}<span title="{{.Detail}}"><b>{{.Stage}}</b> {{.At.Format "15:04:05"}}<small>{{.Detail}}</small></span>{{end}}</td><td title="{{.Generation}}">{{.Generation}}</td><td title="{{.Power}}">{{.Power}}</td><td title="{{.Hardware}}">{{.Hardware}}</td><td data-v="{{.LastMS}}">{{if .Seen}}{{.Last.Format "15:04:05"}}{{else}}not seen{{end}}</td></tr>
{{end}}{{define "foot"}}</tbody></table>
<script>
"use strict";
(function () {
  const tb = document.getElementById("nodes"), q = document.getElementById("q");
  const shown = document.getElementById("shown"), auto = document.getElementById("auto");
  const counts = document.getElementById("counts");
  const ths = Array.from(document.querySelectorAll("th[data-col]"));
  const cols = ths.map(th => th.dataset.col);
  let sortCol = -1, desc = false;
  function load() {
    const p = new URLSearchParams(location.hash.slice(1));
    q.value = p.get("q") || "";
    sortCol = cols.indexOf(p.get("sort") || "");
    desc = p.get("desc") === "1";
  }
  function save() {
    const p = new URLSearchParams();
    if (q.value) p.set("q", q.value);
    if (sortCol >= 0) { p.set("sort", cols[sortCol]); if (desc) p.set("desc", "1"); }
    const h = p.toString();
    history.replaceState(null, "", h ? "#" + h : location.pathname);
  }
  function key(tr, i) {
    const td = tr.cells[i];
    return td.dataset.v !== undefined ? td.dataset.v : td.textContent.trim().toLowerCase();
  }
  function cmp(x, y) {
    if (x === "" || y === "") return (x === "") - (y === "");
    const nx = Number(x), ny = Number(y);
    if (!isNaN(nx) && !isNaN(ny)) return nx - ny;
    return x < y ? -1 : x > y ? 1 : 0;
  }
  function apply() {
    const rows = Array.from(tb.rows);
    if (sortCol >= 0) {
      rows.sort((a, b) => {
        const x = key(a, sortCol), y = key(b, sortCol);
        if (x === "" || y === "") return (x === "") - (y === "");
        return desc ? cmp(y, x) : cmp(x, y);
      });
      const f = document.createDocumentFragment();
      rows.forEach(r => f.appendChild(r));
      tb.appendChild(f);
    }
    const words = q.value.toLowerCase().split(/\s+/).filter(Boolean);
    const per = new Map();
    let n = 0;
    for (const r of rows) {
      const t = r.textContent.toLowerCase();
      const ok = words.every(w => t.includes(w));
      r.hidden = !ok;
      if (ok) n++;
      const st = r.dataset.stage || "not seen";
      per.set(st, (per.get(st) || 0) + 1);
    }
    shown.textContent = n + " of " + rows.length + " nodes shown";
    ths.forEach((th, i) => th.setAttribute("aria-sort", i === sortCol ? (desc ? "descending" : "ascending") : "none"));
    counts.replaceChildren(...Array.from(per).sort((a, b) => b[1] - a[1]).map(([st, c]) => {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = st + ": " + c;
      b.addEventListener("click", () => { q.value = st; save(); apply(); });
      return b;
    }));
  }
  ths.forEach((th, i) => th.addEventListener("click", () => {
    if (sortCol === i) desc = !desc; else { sortCol = i; desc = cols[i] === "seen"; }
    save(); apply();
  }));
  q.addEventListener("input", () => { save(); apply(); });
  window.addEventListener("hashchange", () => { load(); apply(); });
  async function refresh() {
    if (!auto.checked || document.hidden) return;
    try {
      const r = await fetch(location.pathname, {cache: "no-store"});
      if (!r.ok) return;
      const doc = new DOMParser().parseFromString(await r.text(), "text/html");
      const nb = doc.getElementById("nodes");
      if (!nb) return;
      tb.replaceChildren(...Array.from(nb.rows));
      apply();
    } catch (e) {
      shown.textContent = "refresh failed: " + e.message;
    }
  }
  load();
  apply();
  setInterval(refresh, 10000);
})();
</script></body></html>
{{end}}`))

// pageHead is what the page's head says of the board.
type pageHead struct{ Shown, Seen, Unseen int }

// pageRow is one row of the page.
type pageRow struct {
	Node
	Name    string // the hostname, the board's or the inventory's, or the key
	Power   string
	Install string // the install state (state.json), for nodes with install:
	Seen    bool
	Failed  bool  // the last stage says the node failed
	LastMS  int64 // for sorting; 0 if never seen
	IPKey   string
}

// ipKey is an IPv4 address as a number, for sorting ("" for anything else).
func ipKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is4() {
		return ""
	}
	b := a.As4()
	return strconv.FormatUint(uint64(b[0])<<24|uint64(b[1])<<16|uint64(b[2])<<8|uint64(b[3]), 10)
}

// order returns the board's keys, most recently seen first (Nodes'
// order), without copying the nodes.
func (b *Board) order() []string {
	type item struct {
		key, mac string
		last     time.Time
	}
	b.mu.Lock()
	items := make([]item, 0, len(b.nodes))
	for k, e := range b.nodes {
		items = append(items, item{k, e.node.MAC, e.node.Last})
	}
	b.mu.Unlock()
	sort.Slice(items, func(i, j int) bool {
		if !items[i].last.Equal(items[j].last) {
			return items[i].last.After(items[j].last)
		}
		if items[i].mac != items[j].mac {
			return items[i].mac < items[j].mac
		}
		return items[i].key < items[j].key
	})
	keys := make([]string, len(items))
	for i, it := range items {
		keys[i] = it.key
	}
	return keys
}

// jsonChunk is how much of /status.json is gathered before a write.
const jsonChunk = 32 << 10

// ServeHTTP serves the page at /status and JSON at /status.json
// ({"nodes":[...]}, most recently seen first), both written a node at a
// time: the lock is held to copy one node, never while writing, and a
// reader costs the list of keys, one node and a 32 kB buffer however
// slowly it reads (the whole board, with every node's steps, is several
// MB when full). A node dropped from the board meanwhile is left out.
func (b *Board) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	keys := b.order()
	if r.URL.Path == "/status.json" {
		w.Header().Set("Content-Type", "application/json")
		b.writeJSON(w, keys)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	b.mu.Lock()
	roster, power, install := b.roster, b.power, b.install
	b.mu.Unlock()
	// The inventory's nodes by key, and which of them the board has.
	listed := make(map[string]int, 2*len(roster))
	for i, n := range roster {
		for _, k := range []string{n.MAC, strings.ToLower(n.Serial)} {
			if k != "" {
				listed[k] = i
			}
		}
	}
	seen := make([]bool, len(roster))
	for _, k := range keys {
		if i, ok := listed[k]; ok {
			seen[i] = true
		}
	}
	unseen := 0
	for i, n := range roster {
		if !seen[i] && n.Serial != "" && b.MACOfSerial(strings.ToLower(n.Serial)) != "" {
			seen[i] = true
		}
		if !seen[i] {
			unseen++
		}
	}
	if page.Execute(w, pageHead{Shown: len(keys) + unseen, Seen: len(keys), Unseen: unseen}) != nil {
		return // the client is gone
	}
	for _, k := range keys {
		n, ok := b.Head(k)
		if !ok {
			continue
		}
		r := pageRow{Node: n, Seen: true, LastMS: n.Last.UnixMilli(), IPKey: ipKey(n.IP), Power: power[k], Install: install[n.MAC]}
		r.Name = n.Hostname
		if r.Name == "" {
			if i, ok := listed[k]; ok {
				r.Name = roster[i].Hostname
			} else if i, ok := listed[strings.ToLower(n.Serial)]; ok && n.Serial != "" {
				r.Name = roster[i].Hostname
			}
		}
		if r.Name == "" {
			r.Name = k
		}
		r.Failed = strings.Contains(n.Stage, "fail") || (n.Reported != nil && strings.Contains(n.Reported.Stage, "fail"))
		if page.ExecuteTemplate(w, "row", r) != nil {
			return
		}
	}
	for i, n := range roster {
		if seen[i] {
			continue
		}
		k := n.MAC
		if k == "" {
			k = strings.ToLower(n.Serial)
		}
		r := pageRow{Node: n, Name: n.Hostname, IPKey: ipKey(n.IP), Power: power[k], Install: install[n.MAC]}
		if r.Name == "" {
			r.Name = k
		}
		if page.ExecuteTemplate(w, "row", r) != nil {
			return
		}
	}
	page.ExecuteTemplate(w, "foot", nil)
}

// writeJSON writes {"nodes":[...]} with the nodes under keys, a chunk at
// a time.
func (b *Board) writeJSON(w io.Writer, keys []string) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	buf.WriteString(`{"nodes":[`)
	sep := false
	for _, k := range keys {
		n, ok := b.Node(k)
		if !ok {
			continue
		}
		if sep {
			buf.WriteByte(',')
		}
		sep = true
		if err := enc.Encode(n); err != nil {
			return err
		}
		buf.Truncate(buf.Len() - 1) // Encode's newline
		if buf.Len() >= jsonChunk {
			if _, err := w.Write(buf.Bytes()); err != nil {
				return err
			}
			buf.Reset()
		}
	}
	buf.WriteString("]}\n")
	_, err := w.Write(buf.Bytes())
	return err
}
