package takclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"cotd/cot"
)

// Options configure Send and Listen. Zero values take the defaults given.
type Options struct {
	// Addr is the server's plain TCP streaming address; default
	// "127.0.0.1:8087".
	Addr string
	// UID and Callsign identify the sender; defaults "cotd-send-<random>"
	// and "SENDER".
	UID, Callsign string
	// Lat and Lon are the reported position; default 0,0 is replaced by a
	// point near Oklahoma City (35.4676,-97.5164) so that a map shows it.
	Lat, Lon float64
	// Interval is the time between position reports; default 5s.
	Interval time.Duration
	// Count is how many position reports Send sends before it leaves; 0
	// (default) sends until ctx ends.
	Count int
	// PingEvery is the time between keep-alive pings; default 15s, as ATAK.
	// The server closes a client that sends nothing for limits.idle_timeout.
	PingEvery time.Duration
	// XML prints each received document as it arrived instead of a summary
	// line; Pongs also prints the server's answers to pings.
	XML, Pongs bool
}

func (o *Options) defaults() {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:8087"
	}
	if o.UID == "" {
		o.UID = "cotd-send-" + cot.NewUID()[:8]
	}
	if o.Callsign == "" {
		o.Callsign = "SENDER"
	}
	if o.Lat == 0 && o.Lon == 0 {
		o.Lat, o.Lon = 35.4676, -97.5164
	}
	if o.Interval <= 0 {
		o.Interval = 5 * time.Second
	}
	if o.PingEvery <= 0 {
		o.PingEvery = 15 * time.Second
	}
}

// ErrClosed: the server closed the connection.
var ErrClosed = errors.New("takclient: the server closed the connection")

// Send connects, reports its position every Interval (with time, start and
// stale fresh each time) and prints what it receives to out. It returns nil
// when ctx ends or, with Count, once the server has answered a ping sent
// after the last report: everything sent was read by then.
func Send(ctx context.Context, o Options, out io.Writer) error {
	o.defaults()
	return run(ctx, o, out, true)
}

// Listen connects and prints what it receives to out until ctx ends. It
// sends no position of its own, only pings.
func Listen(ctx context.Context, o Options, out io.Writer) error {
	o.defaults()
	return run(ctx, o, out, false)
}

func run(ctx context.Context, o Options, out io.Writer, send bool) error {
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", o.Addr)
	if err != nil {
		return fmt.Errorf("takclient: %w", err)
	}
	defer conn.Close()
	p := &printer{out: out, xml: o.XML, pongs: o.Pongs}
	if send {
		p.printf("connected to %s as %s (uid %s); a position every %v, Ctrl-C to leave", o.Addr, o.Callsign, o.UID, o.Interval)
	} else {
		p.printf("connected to %s; listening, Ctrl-C to leave", o.Addr)
	}
	pongs := make(chan struct{}, 1)
	readErr := make(chan error, 1)
	go func() { readErr <- read(conn, p, pongs) }()

	write := func(b []byte) error {
		_ = conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
		_, err := conn.Write(b)
		return err
	}
	var saTick <-chan time.Time
	sent := 0
	if send {
		if err := write(position(o, time.Now())); err != nil {
			return fmt.Errorf("takclient: %w", err)
		}
		sent++
		t := time.NewTicker(o.Interval)
		defer t.Stop()
		saTick = t.C
	}
	ping := time.NewTicker(o.PingEvery)
	defer ping.Stop()
	for {
		if o.Count > 0 && sent >= o.Count {
			return finish(ctx, conn, o, pongs, readErr, write)
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-readErr:
			return err
		case now := <-saTick:
			if err := write(position(o, now)); err != nil {
				return fmt.Errorf("takclient: %w", err)
			}
			sent++
		case now := <-ping.C:
			if err := write(pingEvent(o.UID, now)); err != nil {
				return fmt.Errorf("takclient: %w", err)
			}
		}
	}
}

// finish sends a ping and waits for its pong: the server reads a
// connection in order, so by then it has read every report before it.
func finish(ctx context.Context, conn net.Conn, o Options, pongs <-chan struct{}, readErr <-chan error, write func([]byte) error) error {
	// Drain a pong answering an earlier keep-alive.
	select {
	case <-pongs:
	default:
	}
	if err := write(pingEvent(o.UID, time.Now())); err != nil {
		return fmt.Errorf("takclient: %w", err)
	}
	select {
	case <-pongs:
		return nil
	case err := <-readErr:
		return err
	case <-ctx.Done():
		return nil
	}
}

// read prints every document the server sends until the connection ends.
func read(conn net.Conn, p *printer, pongs chan<- struct{}) error {
	f := cot.NewXMLFramer(cot.DefaultMaxFrame)
	buf := make([]byte, 32<<10)
	var h cot.Header
	for {
		n, err := conn.Read(buf)
		if n > 0 {
			ferr := f.Feed(buf[:n], func(doc []byte) error {
				if err := cot.ScanHeader(doc, &h); err != nil {
					p.printf("unreadable document from the server: %v", err)
					return nil
				}
				if h.Type == cot.TypePong {
					select {
					case pongs <- struct{}{}:
					default:
					}
				}
				p.event(doc, &h)
				return nil
			})
			if ferr != nil {
				return fmt.Errorf("takclient: reading from the server: %w", ferr)
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return ErrClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("takclient: %w", err)
		}
	}
}

// printer writes one line per received document, serialised.
type printer struct {
	mu        sync.Mutex
	out       io.Writer
	xml       bool
	pongs     bool
	offerSeen bool
}

func (p *printer) printf(format string, a ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.out, format+"\n", a...)
}

func (p *printer) event(doc []byte, h *cot.Header) {
	if h.Type == cot.TypePong && !p.pongs {
		return
	}
	if h.Type == cot.TypeTakpOffer {
		p.mu.Lock()
		first := !p.offerSeen
		p.offerSeen = true
		p.mu.Unlock()
		if first {
			p.printf("%s  the server offers TAK protocol v1 (t-x-takp-v): the binary (protobuf) encoding ATAK switches to; this client does not ask for it and stays on XML", clock())
		}
		if !p.xml {
			return
		}
	}
	if p.xml {
		p.printf("%s", strings.TrimSpace(string(doc)))
		return
	}
	switch {
	case h.Type == cot.TypeDelete:
		p.printf("%s  %s: %s (%s) disconnected", clock(), h.Type, h.LinkUID, h.LinkType)
	case h.Type == cot.TypePong:
		p.printf("%s  %s: pong", clock(), h.Type)
	case h.Callsign != "":
		p.printf("%s  %s from %s (uid %s) at %.5f,%.5f, sent %s", clock(), h.Type, h.Callsign, h.UID, h.Lat, h.Lon, h.Time.Local().Format(time.TimeOnly))
	default:
		p.printf("%s  %s (uid %s)", clock(), h.Type, h.UID)
	}
}

// clock is the local time of day, like the "sent" time printed beside it.
func clock() string { return time.Now().Format(time.TimeOnly) }

// position is the sender's SA, as ATAK writes one: time and start now,
// stale two reports later.
func position(o Options, now time.Time) []byte {
	stale := now.Add(2*o.Interval + 10*time.Second)
	b := make([]byte, 0, 512)
	b = append(b, `<event version="2.0" uid="`...)
	b = cot.AppendEscaped(b, o.UID)
	b = append(b, `" type="a-f-G-U-C" how="m-g" time="`...)
	b = append(b, cot.FormatTime(now)...)
	b = append(b, `" start="`...)
	b = append(b, cot.FormatTime(now)...)
	b = append(b, `" stale="`...)
	b = append(b, cot.FormatTime(stale)...)
	b = fmt.Appendf(b, `"><point lat="%.6f" lon="%.6f" hae="0" ce="10" le="9999999"/>`, o.Lat, o.Lon)
	b = append(b, `<detail><contact callsign="`...)
	b = cot.AppendEscaped(b, o.Callsign)
	b = append(b, `" endpoint="*:-1:stcp"/><__group name="Cyan" role="Team Member"/>`...)
	b = append(b, `<takv device="cotd send" platform="cotd" os="" version=""/></detail></event>`...)
	return b
}

// pingEvent is TAK's keep-alive, which the server answers with a pong and
// never routes.
func pingEvent(uid string, now time.Time) []byte {
	b := make([]byte, 0, 256)
	b = append(b, `<event version="2.0" uid="`...)
	b = cot.AppendEscaped(b, uid+"-ping")
	b = append(b, `" type="t-x-c-t" how="m-g" time="`...)
	b = append(b, cot.FormatTime(now)...)
	b = append(b, `" start="`...)
	b = append(b, cot.FormatTime(now)...)
	b = append(b, `" stale="`...)
	b = append(b, cot.FormatTime(now.Add(cot.ControlStale))...)
	return append(b, `"><point lat="0" lon="0" hae="0" ce="9999999" le="9999999"/><detail/></event>`...)
}
