package engine_test

import (
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"cotd/configs"
	"cotd/cot"
	"cotd/engine"
	et "cotd/engine/enginetest"
	"cotd/tlsstate/pki"
)

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

// Connections that come and go leave nothing behind: no session, timer,
// broker entry, goroutine or descriptor. Half the cycles complete a TLS
// session (with an SA, so the client is identified and cached), half are
// plain TCP.
func TestConnectDisconnectCyclesLeaveNothing(t *testing.T) {
	cycles := 2000
	if testing.Short() {
		cycles = 200
	}
	p := et.NewPKI(t, pki.KeyECDSAP256)
	h := et.StartTLS(t, p, func(c *configs.Config) { c.Log.Level = "warn" })
	cfg := p.ClientWith(p.ClientCert(t, "cycler", 24*time.Hour))
	cfg.ClientSessionCache = nil // a full handshake every time

	// Warm up so that pools and the loops' first allocations are not
	// mistaken for leaks.
	et.Dial(t, h.TCPAddr()).Conn.Close()
	et.Eventually(t, "warm-up connection gone", func() bool { return h.Srv.Census() == engine.Census{} })
	runtime.GC()
	goroutines, fds := runtime.NumGoroutine(), openFDs(t)

	const workers = 20
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < cycles; i += workers {
				if i%2 == 0 {
					conn, err := et.TryDialTLS(h.TLSAddr(), cfg)
					if err != nil {
						t.Errorf("cycle %d: %v", i, err)
						return
					}
					_, _ = conn.Write([]byte(et.SA("CYC", "CYC", "a-f-G-U-C")))
					_ = conn.Close()
				} else {
					c := et.Dial(t, h.TCPAddr())
					c.Send(et.Ping("CYC"))
					c.Expect("pong", et.Type(cot.TypePong))
					_ = c.Conn.Close()
				}
			}
		}()
	}
	wg.Wait()
	et.Eventually(t, "every connection released", func() bool { return h.Srv.Census() == engine.Census{} })
	et.Eventually(t, "goroutines back to the baseline", func() bool {
		return runtime.NumGoroutine() <= goroutines
	})
	et.Eventually(t, "descriptors back to the baseline", func() bool { return openFDs(t) <= fds })
	if n := h.Srv.Broker().CachedSAs(); n != 0 {
		t.Errorf("%d SAs still cached for clients that left", n)
	}
	st := h.Srv.Stats()
	total := st.Accepted[engine.ListenerTCP].Value() + st.Accepted[engine.ListenerTLS].Value()
	if total != uint64(cycles)+1 {
		t.Errorf("accepted %d connections, want %d", total, cycles+1)
	}
	if st.Open[engine.ListenerTCP].Value() != 0 || st.Open[engine.ListenerTLS].Value() != 0 {
		t.Errorf("open gauges not back to zero: tcp %d tls %d", st.Open[0].Value(), st.Open[1].Value())
	}
	if n := st.Handshaking[engine.ListenerTLS].Value(); n != 0 {
		t.Errorf("handshaking gauge at %d with every connection closed", n)
	}
}
