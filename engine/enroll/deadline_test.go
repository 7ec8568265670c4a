package enroll_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"cotd/configs"
	"cotd/engine/enginetest"
	"cotd/engine/enroll"
)

// A client that connects and says nothing is cut off by the handshake
// deadline (enroll.read_header_timeout) and counted.
func TestSilentConnectionIsClosed(t *testing.T) {
	e := start(t, func(c *configs.Config) {
		c.Enroll.ReadHeaderTimeout = configs.Duration{Duration: 200 * time.Millisecond}
	})
	conn, err := net.DialTimeout("tcp", e.en.Addr().String(), enginetest.Wait)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(enginetest.Wait))
	_, err = io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the server kept a silent connection open")
	}
	enginetest.Eventually(t, "the failed handshake to be counted", func() bool {
		return e.en.Stats().Refused[enroll.RefusedTLS].Value() == 1
	})
}

// Past enroll.max_conns a connection is closed at accept and counted; the
// ones inside the limit are served.
func TestConnectionLimit(t *testing.T) {
	e := start(t, func(c *configs.Config) { c.Enroll.MaxConns = 1 })
	held, err := net.DialTimeout("tcp", e.en.Addr().String(), enginetest.Wait)
	if err != nil {
		t.Fatal(err)
	}
	over, err := net.DialTimeout("tcp", e.en.Addr().String(), enginetest.Wait)
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	_ = over.SetReadDeadline(time.Now().Add(enginetest.Wait))
	if _, err := over.Read(make([]byte, 1)); err == nil {
		t.Fatal("the connection over the limit got data")
	} else if ne := (net.Error)(nil); errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the connection over the limit was left open")
	}
	if got := e.en.Stats().Refused[enroll.RefusedConnLimit].Value(); got != 1 {
		t.Errorf("conn_limit counted %d", got)
	}
	// Freeing the slot lets the next client in.
	held.Close()
	// The server frees it when it sees the close: until then a new
	// connection is refused, so poll.
	enginetest.Eventually(t, "a request to be served after the slot freed", func() bool {
		req, _ := http.NewRequest("GET", e.base+"/Marti/api/tls/config", nil)
		req.SetBasicAuth("alice", alicePW)
		resp, err := e.client().Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}
