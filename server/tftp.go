package server

import "context"

// startTFTP starts the TFTP listener (see tftp_serve.go).
func (s *Server) startTFTP(ctx context.Context, start func(string, func(context.Context) error)) error {
	return s.serveTFTP(ctx, start)
}
