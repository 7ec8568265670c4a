package marti

import (
	"net"
	"sync"
	"sync/atomic"
)

// limitListener holds at most cap(slots) connections open. One more is
// closed as soon as it is accepted and counted: waiting in the backlog
// instead would hide a flood, and TAK clients retry.
type limitListener struct {
	net.Listener
	slots   chan struct{}
	refused *atomic.Uint64
}

func newLimitListener(ln net.Listener, n int, refused *atomic.Uint64) *limitListener {
	return &limitListener{Listener: ln, slots: make(chan struct{}, n), refused: refused}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &limitConn{Conn: c, release: func() { <-l.slots }}, nil
		default:
			l.refused.Add(1) // before the close the client sees
			_ = c.Close()
		}
	}
}

// limitConn gives its slot back once, on the first Close.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
