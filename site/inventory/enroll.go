package inventory

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Entry is a node to enroll: what `ramboot node enroll` adds to
// nodes.yaml. MAC or Serial names the node; the rest is optional.
type Entry struct {
	MAC, Serial, Hostname, Address, Option224 string
	// Install, with InstallSHA256, is an install: image (its URL
	// template); Boot its boot: form.
	Install, InstallSHA256, Boot string
}

// Enroll returns nodes.yaml (data) with e appended to its nodes: list,
// every other byte of meaning kept: comments, order, the other entries
// and the defaults (yaml.v3's node API; the file is written back with
// two-space indentation). The result is parsed as serve parses it, so an
// entry that clashes (a MAC, serial, hostname or address already listed)
// or is malformed is refused with the parser's words and nothing is
// returned to write.
func Enroll(data []byte, e Entry) ([]byte, error) {
	if e.MAC == "" && e.Serial == "" {
		return nil, errors.New("enroll: name the node by its MAC or its Pi serial")
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("enroll: nodes.yaml: %w", err)
	}
	if doc.Kind == 0 { // an empty file
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("enroll: nodes.yaml is not a mapping with nodes: and defaults:")
	}
	top := doc.Content[0]
	var nodes *yaml.Node
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value == "nodes" {
			nodes = top.Content[i+1]
		}
	}
	switch {
	case nodes == nil:
		nodes = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		top.Content = append(top.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "nodes"}, nodes)
	case nodes.Kind == yaml.ScalarNode && nodes.Tag == "!!null": // "nodes:" with nothing under it
		*nodes = yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	case nodes.Kind != yaml.SequenceNode:
		return nil, fmt.Errorf("enroll: nodes.yaml line %d: nodes: is not a list", nodes.Line)
	}
	nodes.Style &^= yaml.FlowStyle // one entry per block, however it was written
	entry := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	add := func(k, v string) {
		if v != "" {
			entry.Content = append(entry.Content,
				&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k},
				&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v})
		}
	}
	if e.MAC != "" {
		mac, err := net.ParseMAC(e.MAC)
		if err != nil || len(mac) != 6 {
			return nil, fmt.Errorf("enroll: %q is not an Ethernet MAC like dc:a6:32:01:36:c2", e.MAC)
		}
		e.MAC = mac.String()
	}
	add("mac", e.MAC)
	add("serial", strings.ToLower(e.Serial))
	add("hostname", e.Hostname)
	add("address", e.Address)
	add("option224", e.Option224)
	if e.Install != "" {
		in := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Style: yaml.FlowStyle}
		for _, kv := range [][2]string{{"image", e.Install}, {"sha256", e.InstallSHA256}} {
			if kv[1] != "" {
				in.Content = append(in.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: kv[0]},
					&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: kv[1]})
			}
		}
		entry.Content = append(entry.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "install"}, in)
	}
	add("boot", e.Boot)
	nodes.Content = append(nodes.Content, entry)

	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	enc.Close()
	if _, err := Parse(out.Bytes()); err != nil {
		return nil, fmt.Errorf("enroll: the new entry is refused: %w", err)
	}
	return out.Bytes(), nil
}
