package lab

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"time"

	"github.com/ramboot/ramboot/internal/netnstest"
)

// Client is an HTTP client whose connections start inside namespace
// ns (5 s to connect, 10 s a request); close frees its connections.
func Client(ns string) (c *http.Client, close func()) {
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return netnstest.Dial(ns, &net.Dialer{Timeout: 5 * time.Second}, network, addr)
	}}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, tr.CloseIdleConnections
}

// Get fetches u from inside namespace ns.
func Get(ns, u string) (string, error) {
	c, done := Client(ns)
	defer done()
	resp, err := c.Get(u)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(resp.Body)
	return b.String(), err
}
