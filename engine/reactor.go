package engine

import (
	"sync"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/panjf2000/gnet/v2/pkg/pool/goroutine"
)

// reactor is the Server as gnet sees it: the event-loop callbacks (OnBoot,
// OnOpen, OnTraffic, OnClose in server.go) live on this unexported type so
// that they are not part of the engine's API; nothing outside gnet may
// call them. It is the same memory as the Server, converted, not a copy.
type reactor Server

// OnShutdown implements gnet.EventHandler: Run does the draining.
func (r *reactor) OnShutdown(gnet.Engine) {}

// OnTick implements gnet.EventHandler. cotd does not ask gnet for ticks
// (each loop's wheel sets its own timer, loop.startWheel), so it is never
// called.
func (r *reactor) OnTick() (time.Duration, gnet.Action) { return 0, gnet.None }

var _ gnet.EventHandler = (*reactor)(nil)

// releaseGnetPool closes gnet's shared goroutine pool, which gnet makes when
// its package loads. On Linux gnet submits work to it only to register
// connections dialled or handed in from outside (Engine.Register, gnet's
// client), which cotd never does; idle, its two housekeeping tickers woke
// the process 2.1 times a second for nothing.
var releaseGnetPool = sync.OnceFunc(func() { goroutine.DefaultWorkerPool.Release() })
