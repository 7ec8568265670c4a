package engine_test

import (
	"testing"

	"github.com/panjf2000/gnet/v2/pkg/pool/goroutine"

	et "cotd/engine/enginetest"
)

// A running server has closed gnet's shared goroutine pool, whose two
// housekeeping tickers woke an idle server 2.1 times a second, and serves
// connections without it.
func TestRunningServerHasNoGnetPool(t *testing.T) {
	h := et.Start(t, nil)
	if !goroutine.DefaultWorkerPool.IsClosed() {
		t.Error("gnet's goroutine pool is still open: its tickers wake an idle server")
	}
	a, b := et.Dial(t, h.TCPAddr()), et.Dial(t, h.TCPAddr())
	et.Eventually(t, "both joined", func() bool { return h.Srv.Broker().Count() == 2 })
	a.Send(et.SA("A", "ALPHA", "a-f-G-U-C"))
	b.Expect("a's position", et.UID("A"))
}
