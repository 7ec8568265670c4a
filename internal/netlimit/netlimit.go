package netlimit

import (
	"net"
	"sync"
)

// listener holds at most cap(slots) connections open. One more is closed as
// soon as it is accepted and counted: waiting in the backlog instead would
// hide a flood, and TAK clients retry.
type listener struct {
	net.Listener
	slots    chan struct{}
	onRefuse func()
}

// New returns ln limited to n open connections. A connection accepted while
// n are open is closed at once; onRefuse runs before that close, so a client
// that sees the close can already read the count. A connection frees its
// slot on its first Close.
func New(ln net.Listener, n int, onRefuse func()) net.Listener {
	return &listener{Listener: ln, slots: make(chan struct{}, n), onRefuse: onRefuse}
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &conn{Conn: c, release: func() { <-l.slots }}, nil
		default:
			l.onRefuse()
			_ = c.Close()
		}
	}
}

// conn gives its slot back once, on the first Close: net/http may close a
// connection more than once.
type conn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
