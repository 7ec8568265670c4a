package engine

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/rs/zerolog"

	"cotd/configs"
	"cotd/engine/broker"
	"cotd/tlsstate"
	"cotd/tlsstate/pki"
)

// BenchmarkDeliveryCost is the server's cost per delivery on the outbound
// side: admit and queue, then the flush that writes it (writev over
// loopback TCP to a client that reads and discards) and on TLS seals it.
// batch is how many messages a flush carries: 1 is a flush per delivery,
// what every delivery paid before output was coalesced; larger batches
// are what coalescing gives a busy client. One op is one delivery of a
// 420-byte SA. The client runs on another goroutine and thread. Besides
// wall time (ns/op), which on a loaded box moves with the scheduler, it
// reports cpu-ns/op: the CPU time (user + system, from getrusage) of the
// thread that delivers and flushes, which is what the server pays per
// delivery. Loopback TCP charges the receiving side's kernel work to the
// sender's system time too. A sanity figure, not a load test.
//
//	go test -run '^$' -bench DeliveryCost -benchtime 20000x ./engine/
func BenchmarkDeliveryCost(b *testing.B) {
	for _, transport := range []string{"tcp", "tls"} {
		for _, batch := range []int{1, 4, 16, 64} {
			b.Run(fmt.Sprintf("%s/batch=%d", transport, batch), func(b *testing.B) {
				benchDelivery(b, transport == "tls", batch)
			})
		}
	}
}

func benchDelivery(b *testing.B, useTLS bool, batch int) {
	cfg := configs.Default()
	cfg.TCP.Addr, cfg.TLS.Addr, cfg.Admin.Addr = "127.0.0.1:0", "", ""
	cfg.Limits.OutboundSoftBytes, cfg.Limits.OutboundHardBytes = 64<<20, 128<<20
	cfg.Output.CoalesceDelay = configs.Duration{} // the benchmark makes the passes
	s, err := New(cfg, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	srvRaw, cliRaw := loopbackPair(b)
	el := &fakeLoop{}
	lp := newLoop(el, time.Now().UnixNano())
	ss := newSession(s, sockWire{srvRaw}, s.listeners[0], lp, 1, "bench")
	ss.established.Store(true)
	if useTLS {
		ss.tls = establishTLS(b, srvRaw, cliRaw, ss)
	}
	go func() { _, _ = io.Copy(io.Discard, cliRaw) }()
	sa := []byte(`<event version="2.0" uid="ANDROID-0123456789abcdef" type="a-f-G-U-C" how="m-g" ` +
		`time="2026-12-06T06:00:00Z" start="2026-12-06T06:00:00Z" stale="2026-12-06T06:01:15Z">` +
		`<point lat="59.3293" lon="18.0686" hae="30.0" ce="9.9" le="9999999"/><detail>` +
		`<contact callsign="ALPHA-1" endpoint="*:-1:stcp"/><__group name="Cyan" role="Team Member"/>` +
		`<status battery="88"/><track course="90" speed="1.2"/></detail></event>`)
	m := broker.NewMessage(sa, "a-f-G-U-C", false, 0, nil)
	b.SetBytes(int64(len(sa)))
	b.ReportAllocs()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0 := threadCPU(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if v := ss.Deliver(m); v != broker.Queued {
			b.Fatalf("delivery %d: %v", i, v)
		}
		if (i+1)%batch == 0 || i == b.N-1 {
			el.run(b)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(threadCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
	if ss.out.sent == 0 {
		b.Fatal("nothing was written")
	}
}

// threadCPU is the calling thread's user + system time, in nanoseconds.
func threadCPU(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// rusageThread is RUSAGE_THREAD (Linux), which package syscall does not name.
const rusageThread = 1

// sockWire writes to a real socket with writev, blocking; nothing is ever
// left unwritten.
type sockWire struct{ c net.Conn }

func (w sockWire) Writev(bufs [][]byte) (int, error) {
	bs := net.Buffers(bufs)
	n, err := bs.WriteTo(w.c)
	return int(n), err
}
func (w sockWire) OutboundBuffered() int         { return 0 }
func (w sockWire) Close() error                  { return w.c.Close() }
func (w sockWire) Wake(gnet.AsyncCallback) error { return nil }

func loopbackPair(b *testing.B) (srv, cli net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	cli, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	if srv, err = ln.Accept(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cli.Close(); _ = srv.Close() })
	return srv, cli
}

// establishTLS runs a TLS 1.3 handshake between a tlsstate server on
// srvRaw, fed by this goroutine as the loop would, and a crypto/tls client
// on cliRaw; then the server's records go to ss's queue. The client reads
// nothing afterwards but raw bytes.
func establishTLS(b *testing.B, srvRaw, cliRaw net.Conn, ss *session) *tlsstate.Conn {
	ca, err := pki.NewCA("bench CA", pki.KeyECDSAP256, 24*time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	leaf, err := ca.IssueServer("bench", []string{"127.0.0.1"}, pki.KeyECDSAP256, 24*time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	var toQueue atomic.Bool
	woke := make(chan struct{}, 1)
	tc := tlsstate.Server(&tls.Config{Certificates: []tls.Certificate{leaf.TLSCertificate()}, DynamicRecordSizingDisabled: true},
		tlsstate.Options{}, tlsstate.Hooks{
			Out: func(p []byte) {
				if toQueue.Load() {
					ss.tlsOut(p)
					return
				}
				_, _ = srvRaw.Write(p)
			},
			Wake: func() {
				select {
				case woke <- struct{}{}:
				default:
				}
			},
		})
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	cc := tls.Client(cliRaw, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	hsErr := make(chan error, 1)
	go func() { hsErr <- cc.Handshake() }()
	in := make(chan []byte)
	go func() {
		for {
			buf := make([]byte, 16<<10)
			n, err := srvRaw.Read(buf)
			if err != nil {
				return
			}
			in <- buf[:n]
		}
	}()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case <-timeout:
			b.Fatal("TLS handshake did not finish")
		case p := <-in:
			if _, err := tc.Feed(p, nil); err != nil {
				b.Fatal(err)
			}
		case <-woke:
			if _, err := tc.Feed(nil, nil); err != nil {
				b.Fatal(err)
			}
		case err := <-hsErr:
			if err != nil {
				b.Fatal(err)
			}
			hsErr = nil
		}
		if _, err := tc.Write(nil); err == nil && hsErr == nil {
			break
		} else if err != nil && !errors.Is(err, tlsstate.ErrNotEstablished) {
			b.Fatal(err)
		}
	}
	toQueue.Store(true)
	return tc
}

// BenchmarkDeliveryPath is the shard → session path without the system call:
// each message is delivered to 100 recipients (Deliver, as a shard's
// broadcast calls it), and after every pass messages one flush pass hands
// each recipient's queue to a connection that takes everything at no cost.
// What is left is what a delivery pays in queueing, locks, atomics and
// bookkeeping (the read-to-write delay metric included). One op is one
// delivery.
//
//	go test -run '^$' -bench DeliveryPath -benchtime 1000000x ./engine/
func BenchmarkDeliveryPath(b *testing.B) {
	for _, pass := range []int{1, 16} {
		b.Run(fmt.Sprintf("recipients=100/pass=%d", pass), func(b *testing.B) {
			benchDeliveryPath(b, 100, pass)
		})
	}
}

func benchDeliveryPath(b *testing.B, recipients, pass int) {
	cfg := configs.Default()
	cfg.TCP.Addr, cfg.TLS.Addr, cfg.Admin.Addr = "127.0.0.1:0", "", ""
	cfg.Limits.OutboundSoftBytes, cfg.Limits.OutboundHardBytes = 64<<20, 128<<20
	cfg.Output.CoalesceDelay = configs.Duration{} // the benchmark makes the passes
	s, err := New(cfg, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	el := &fakeLoop{}
	lp := newLoop(el, time.Now().UnixNano())
	subs := make([]*session, recipients)
	wires := make([]*nopWire, recipients)
	for i := range subs {
		wires[i] = &nopWire{}
		subs[i] = newSession(s, wires[i], s.listeners[0], lp, uint64(i+1), "bench")
		subs[i].established.Store(true)
	}
	m := broker.NewMessage(make([]byte, 420), "a-f-G-U-C", true, time.Now().UnixNano(), nil)
	b.ReportAllocs()
	b.ResetTimer()
	msgs := b.N / recipients
	for i := range msgs {
		for _, ss := range subs {
			if v := ss.Deliver(m); v != broker.Queued {
				b.Fatalf("delivery: %v", v)
			}
		}
		if (i+1)%pass == 0 || i == msgs-1 {
			el.run(b)
		}
	}
	b.StopTimer()
	for _, w := range wires {
		if w.n != msgs*len(m.XML) {
			b.Fatalf("wrote %d bytes, want %d", w.n, msgs*len(m.XML))
		}
	}
}

// nopWire takes every write whole and keeps nothing.
type nopWire struct{ n int }

func (w *nopWire) Writev(bufs [][]byte) (int, error) {
	n := 0
	for _, p := range bufs {
		n += len(p)
	}
	w.n += n
	return n, nil
}
func (w *nopWire) OutboundBuffered() int         { return 0 }
func (w *nopWire) Close() error                  { return nil }
func (w *nopWire) Wake(gnet.AsyncCallback) error { return nil }
