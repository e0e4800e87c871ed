package server

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/ramboot/ramboot/server/status"
	"github.com/ramboot/ramboot/server/tftp"
)

var (
	serialDirRE = regexp.MustCompile(`^[0-9a-f]{8}$`)
	macDirRE    = regexp.MustCompile(`^[0-9a-f]{2}(-[0-9a-f]{2}){5}$`)
)

// resolveTFTP maps a request to a file of the tree. The Pi asks for
// "<serial>/start4.elf" (or "<mac>/..." with TFTP_PREFIX=2, as dnsmasq's
// tftp-unique-root=mac lays it out): a file in that per-node directory
// wins; otherwise the shared tree answers, so one built tree boots every
// Pi without copies, and a per-node directory can override single files.
func (s *Server) resolveTFTP(remote net.Addr, rel string) (string, error) {
	s.metrics().tftpTransfers.WithLabelValues("started").Inc()
	first, rest, ok := strings.Cut(rel, "/")
	if !ok || rest == "" {
		return rel, nil
	}
	lower := strings.ToLower(first)
	if !serialDirRE.MatchString(lower) && !macDirRE.MatchString(lower) {
		return rel, nil
	}
	if st, err := os.Stat(filepath.Join(s.Root, first, rest)); err == nil && st.Mode().IsRegular() {
		return rel, nil
	}
	return rest, nil
}

func (s *Server) tftpLog(e tftp.Event) {
	s.metrics().countTFTP(e)
	attrs := []any{"remote", addrHost(e.Remote), "path", e.Path, "kind", e.Kind, "bytes", e.Bytes,
		"duration", e.Duration.Round(time.Millisecond).String(), "blksize", e.BlockSize}
	if e.WindowSize > 1 {
		attrs = append(attrs, "windowsize", e.WindowSize)
	}
	if e.Resolved != "" && e.Resolved != e.Path {
		attrs = append(attrs, "served", e.Resolved)
	}
	if e.Err != nil {
		attrs = append(attrs, "err", e.Err.Error())
	}
	node := status.Node{IP: addrHost(e.Remote)}
	detail := e.Path
	if e.Kind == tftp.KindEarlyTerminate {
		detail += " (size probe)"
	}
	key := ""
	if first, _, ok := strings.Cut(e.Path, "/"); ok {
		// The path names a node: its serial (the record is under the MAC
		// DHCP saw with it, option 97, one entry per Pi) or its MAC. Any
		// host can send any path: it goes on that node's record only if
		// the sender is that node by the server's own evidence (nodeAt),
		// else on the sender's, as a claim. It never ties an address to
		// a node.
		claim, serial := "", ""
		switch lower := strings.ToLower(first); {
		case serialDirRE.MatchString(lower):
			attrs = append(attrs, "serial", lower)
			if claim = s.Board.MACOfSerial(lower); claim == "" {
				key, node.Serial = lower, lower // DHCP never saw it: the serial's own record
			}
			serial = lower
		case macDirRE.MatchString(lower):
			if m := strings.ReplaceAll(lower, "-", ":"); s.isNode(m) {
				claim = m
			} else {
				detail += " (the path names " + m + ", not a node DHCP saw or the inventory lists)"
			}
		}
		if claim != "" {
			if at := s.nodeAt(node.IP); at == claim {
				key, node.MAC, node.Serial = claim, claim, serial
			} else {
				key = at
				detail += " (the path names " + claim + "; this address is not its)"
				attrs = append(attrs, "claims", claim)
			}
		}
	}
	s.log().Info("tftp", attrs...)
	if key == "" {
		key = "ip " + node.IP
	}
	s.Board.Record(key, node, "tftp "+e.Kind, detail)
}

func addrHost(a net.Addr) string {
	if a == nil {
		return ""
	}
	if h, _, err := net.SplitHostPort(a.String()); err == nil {
		return h
	}
	return a.String()
}

func (s *Server) serveTFTP(ctx context.Context, start func(string, func(context.Context) error)) error {
	addr, lc, err := s.listenConfig("--tftp", s.TFTPAddr, "69")
	if err != nil {
		return err
	}
	pc, err := lc.ListenPacket(ctx, "udp4", addr)
	if err != nil {
		return errors.New("tftp: " + err.Error() + " (port 69 needs root or CAP_NET_BIND_SERVICE; or pass --tftp ADDR)")
	}
	ts := &tftp.Server{Root: s.Root, Resolve: s.resolveTFTP, Log: s.tftpLog,
		MaxTransfers: s.TFTPMaxTransfers, MaxTransfersPerClient: s.TFTPMaxPerClient, MaxTimeout: s.TFTPMaxTimeout,
		OnRefuse: s.metrics().errors.WithLabelValues(errTFTPBusy).Inc,
		Held:     s.metrics().countTFTP} // malformed packets not logged (once per client a minute), still counted
	var boards []string
	for _, b := range s.treeBoards() {
		boards = append(boards, b.Name+" ("+b.Arch+")")
	}
	s.log().Info("tftp listening", "addr", pc.LocalAddr().String(), "interface", s.Interface, "root", s.Root, "boards", strings.Join(boards, ", "))
	start("tftp", func(ctx context.Context) error {
		go func() {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			ts.Shutdown(sctx)
		}()
		err := ts.Serve(pc)
		if errors.Is(err, tftp.ErrServerClosed) {
			return nil
		}
		return err
	})
	return nil
}
