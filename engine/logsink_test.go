package engine_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"cotd/configs"
	"cotd/cot"
	"cotd/engine"
	et "cotd/engine/enginetest"
	"cotd/engine/logsink"
)

// blockedOutput is a log output that takes nothing until released: a
// journald or pipe that stopped reading.
type blockedOutput struct{ release chan struct{} }

func (b blockedOutput) Write(p []byte) (int, error) {
	<-b.release
	return len(p), nil
}

// With the log output stalled, routing goes on (the shards log each change
// of callsign) and the lines that do not fit are dropped and counted.
func TestStalledLogOutputDoesNotStopRouting(t *testing.T) {
	out := blockedOutput{release: make(chan struct{})}
	sink := logsink.New(out, 16)
	cfg := configs.Default()
	cfg.TCP.Addr, cfg.TLS.Addr, cfg.Admin.Addr = "127.0.0.1:0", "", ""
	srv, err := engine.New(cfg, zerolog.New(sink).Level(zerolog.DebugLevel))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		close(out.release)
		cancel()
		<-done
		_ = sink.Close()
	})
	<-srv.Ready()
	addr := srv.Addr(engine.ListenerTCP).String()
	a, b := et.Dial(t, addr), et.Dial(t, addr)
	et.Eventually(t, "joined", func() bool { return srv.Broker().Count() == 2 })
	const n = 200
	for i := range n {
		a.Send(et.SA("A", fmt.Sprintf("A-%d", i), "a-f-G-U-C"))
	}
	b.Expect("a's last position", func(h *cot.Header) bool { return h.Callsign == fmt.Sprintf("A-%d", n-1) })
	got := 0
	for _, ev := range b.Events() {
		if strings.HasPrefix(ev.H.Callsign, "A-") {
			got++
		}
	}
	if got != n {
		t.Errorf("b received %d of %d positions", got, n)
	}
	et.Eventually(t, "dropped lines counted", func() bool { return sink.Dropped() > 0 })
	var m strings.Builder
	if err := sink.WriteMetrics(&m); err != nil || !strings.Contains(m.String(), "cotd_log_dropped_lines_total ") {
		t.Errorf("metrics %q, %v", m.String(), err)
	}
}
