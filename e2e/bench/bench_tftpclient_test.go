package bench

import (
	"fmt"
	"net"
	"time"

	"github.com/ramboot/ramboot/e2e/client"
)

// sbGet is one transfer of the concurrent benchmarks.
type sbGet struct {
	client.Result
	Err error // the transfer's error, or the server's ERROR
}

// sbTFTPGet reads file from server:69 over conn with e2e/client's TFTP
// client (blksize and tsize asked, 1 s retransmission, 10 timeouts in a
// row end it, deadline bounds it), keeping only the length and digest.
func sbTFTPGet(conn *net.UDPConn, server *net.UDPAddr, file string, blksize int, deadline time.Time) sbGet {
	c := client.TFTP{Conn: conn, Server: server.String(), Blksize: blksize, Tsize: true,
		RTO: time.Second, Tries: 10, Deadline: deadline, Discard: true}
	res, err := c.Get(file)
	if err == nil && res.ErrCode >= 0 {
		err = fmt.Errorf("TFTP ERROR %d %q", res.ErrCode, res.ErrMsg)
	}
	return sbGet{Result: res, Err: err}
}
