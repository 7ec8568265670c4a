package engine_test

import (
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"cotd/configs"
	"cotd/cot"
	et "cotd/engine/enginetest"
	"cotd/tlsstate/pki"
)

// recordCounter sits under a TLS client and counts the records the server
// sends, by parsing their 5-byte headers from the raw stream.
type recordCounter struct {
	net.Conn
	mu      sync.Mutex
	records int
	hdr     []byte // a header being read
	left    int    // body bytes of the current record still to come
}

func (r *recordCounter) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	r.mu.Lock()
	defer r.mu.Unlock()
	for b := p[:n]; len(b) > 0; {
		if r.left > 0 {
			k := min(r.left, len(b))
			r.left -= k
			b = b[k:]
			continue
		}
		k := min(5-len(r.hdr), len(b))
		r.hdr = append(r.hdr, b[:k]...)
		b = b[k:]
		if len(r.hdr) == 5 {
			r.records++
			r.left = int(r.hdr[3])<<8 | int(r.hdr[4])
			r.hdr = r.hdr[:0]
		}
	}
	return n, err
}

func (r *recordCounter) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.records
}

// Messages queued for a TLS client together are sealed together: a burst
// of 200 events costs a few full records, not a record each, and every
// event arrives, in order.
func TestTLSBurstIsSealedIntoFewRecords(t *testing.T) {
	p := et.NewPKI(t, pki.KeyECDSAP256)
	h := et.StartTLS(t, p, func(c *configs.Config) {
		c.TLS.Protocol = configs.ProtocolXML // no v1 offer among the counted records
		c.Output.CoalesceDelay = configs.Duration{Duration: 50 * time.Millisecond}
	})
	raw, err := net.Dial("tcp", h.TLSAddr())
	if err != nil {
		t.Fatal(err)
	}
	rc := &recordCounter{Conn: raw}
	conn := tls.Client(rc, p.Client(t, "rx"))
	if err := conn.Handshake(); err != nil {
		t.Fatal(err)
	}
	rx := et.Wrap(t, conn)
	tx := et.Dial(t, h.TCPAddr())
	h.Joined(t, 2)
	// Barrier: once the pong is read, every record sent before it (session
	// tickets) has been counted.
	rx.Send(et.Ping("RX"))
	rx.Expect("pong", et.Type(cot.TypePong))
	before := rc.count()

	const n = 200
	var b strings.Builder
	for i := range n {
		b.WriteString(et.Marker(fmt.Sprintf("m-%03d", i)))
	}
	tx.Send(b.String())
	rx.Expect("the last event of the burst", et.UID(fmt.Sprintf("m-%03d", n-1)))
	var got []string
	for _, ev := range rx.Events() {
		if strings.HasPrefix(ev.H.UID, "m-") {
			got = append(got, ev.H.UID)
		}
	}
	if len(got) != n {
		t.Fatalf("received %d of %d events", len(got), n)
	}
	for i, uid := range got {
		if want := fmt.Sprintf("m-%03d", i); uid != want {
			t.Fatalf("event %d is %s, want %s: out of order", i, uid, want)
		}
	}
	// 200 events of about 300 bytes are 60 KB: four full records. The
	// bound leaves room for passes cut short on a loaded machine; sealing
	// each message alone makes 200.
	if records := rc.count() - before; records > n/4 {
		t.Errorf("%d events came in %d TLS records, want at most %d", n, records, n/4)
	} else {
		t.Logf("%d events in %d records", n, records)
	}
}
