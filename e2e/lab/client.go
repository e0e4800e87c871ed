package lab

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"sync"
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

// GetAll fetches every URL with c, workers at a time, reading each body
// to its end; it returns the first error.
func GetAll(c *http.Client, urls []string, workers int) error {
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(urls); i += workers {
				resp, err := c.Get(urls[i])
				if err != nil {
					errc <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	close(errc)
	return <-errc
}
