// Package tftp is a small read-only TFTP server (RFC 1350) for network
// booting Raspberry Pis and PXE clients from one built tree.
//
// We keep our own because the Go TFTP packages do not fit: pin/tftp is not
// on the module proxy and pack.ag/tftp has been unmaintained since 2018.
//
// # Usage
//
//	s := &tftp.Server{
//		Root: "out/rpi4",
//		Log:  func(e tftp.Event) { log.Print(e) },
//	}
//	go func() { <-ctx.Done(); s.Shutdown(context.Background()) }()
//	err := s.ListenAndServe("192.0.2.10:69")
//
// Serve takes any net.PacketConn, so tests use 127.0.0.1 on a high port.
//
// # Protocol
//
//   - Read requests only. A write request gets ERROR 2 "access violation
//     (read-only server)".
//   - Modes: octet, and netascii served as octet (no CR/LF conversion:
//     every boot file is binary; tftp-hpa's client defaults to netascii,
//     use -m binary). Other modes ("mail") get ERROR 4.
//   - Options (RFC 2347): blksize (RFC 2348, 8..65464, capped at
//     Server.MaxBlockSize, default 1468), tsize (RFC 2349, answered with the
//     file size), timeout (RFC 2349, 1..255 s, replaces Server.Timeout; a
//     value above Server.MaxTimeout, default 10 s, is not granted) and
//     windowsize (RFC 7440, capped at Server.MaxWindow, default 64).
//     Unknown options and bad values are ignored. If any option is
//     accepted the server sends an OACK and waits for ACK 0 before DATA 1.
//   - Block numbers wrap from 65535 to 0, so files of any size are served.
//   - A client that sends ERROR before acknowledging any data has ended the
//     transfer on purpose: the Raspberry Pi bootloader asks for a file with
//     tsize, reads the size from the OACK and answers ERROR 0 "Early
//     terminate". That is logged as KindEarlyTerminate, not as an error.
//   - Each transfer has its own UDP socket connected to the client and bound
//     to the address the request came to (the transfer ID of RFC 1350). As
//     the socket is connected, packets from another port never reach the
//     transfer and get no ERROR 5 from us; an ICMP "port unreachable" from a
//     client that went away ends the transfer at once.
//   - Lost packets: the window is sent again after the timeout, at most
//     Server.Retries times in a row. Duplicate ACKs never trigger a resend
//     in lock-step (Sorcerer's Apprentice, RFC 1123 4.2.3.1); see transfer
//     for the windowed rules.
//
// # Paths
//
// The requested name is checked before anything else: control characters
// and any ".." component are refused, one leading "/" is dropped (so
// "/start4.elf" is "start4.elf", as with tftpd-hpa -s), a name still
// absolute after that is refused. Server.Resolve may then map the name to
// another one. The file is opened below Root with openat2(RESOLVE_BENEATH)
// where the kernel has it (Linux 5.6+): symlinks are followed only while
// they stay inside Root, and absolute symlinks are refused even when they
// point inside (use relative links in the tree). Older kernels fall back to
// filepath.EvalSymlinks with a prefix check. Only regular files are served.
// Not found is ERROR 1, anything refused ERROR 2; error messages never
// carry server paths.
//
// # Scale
//
// One goroutine and one socket per transfer, the file opened per transfer
// and read with ReadAt, one packet buffer of 4 + min(blksize, file size)
// bytes whatever the window: a rack of Pis booting at once costs a few MB.
//
// Whatever clients send, the state stays bounded: at most
// Server.MaxTransfers transfers in flight (default 1000) and
// Server.MaxTransfersPerClient per client IP address (default 500); a
// request over either gets ERROR 0 "server busy: ..." and is logged once
// per client address a minute. A repeated request (same client address,
// port and file) for a transfer still running is dropped: it is the
// client's retransmission, and answering it would start a second transfer.
// A stalled transfer ends after at most (Retries+1) × MaxTimeout. A file
// that cannot be read mid-transfer ends it with ERROR 0.
package tftp
