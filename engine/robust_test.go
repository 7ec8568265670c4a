package engine_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"cotd/configs"
	"cotd/cot"
	"cotd/engine"
	"cotd/engine/broker"
	et "cotd/engine/enginetest"
)

func TestBadInputClosesOnlyThatClient(t *testing.T) {
	h := et.Start(t, func(c *configs.Config) { c.Limits.MaxFrameBytes = 4096 })
	good := et.Dial(t, h.TCPAddr())
	watcher := et.Dial(t, h.TCPAddr())
	h.Joined(t, 2)
	cases := []struct {
		name   string
		input  string
		reason engine.CloseReason
	}{
		{"garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", engine.ReasonBadFrame},
		{"http", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", engine.ReasonBadFrame},
		{"broken event", `<event version="2.0" uid="x" type="a-f-G"><point lat="1"></detail></event>`, engine.ReasonBadFrame},
		{"oversize", `<event version="2.0" uid="big" type="a-f-G"><detail><remarks>` +
			strings.Repeat("x", 8192) + `</remarks></detail></event>`, engine.ReasonFrameTooLarge},
	}
	for i, tc := range cases {
		bad := et.Dial(t, h.TCPAddr())
		h.Joined(t, 3)
		// A good event in the same write as the bad bytes: what was
		// accepted before the junk is still routed.
		uid := fmt.Sprintf("before-%d", i)
		bad.Send(et.Marker(uid) + tc.input)
		bad.Closed()
		watcher.Expect(tc.name+": event sent before the bad input", et.UID(uid))
		et.Eventually(t, tc.name+" counted", func() bool {
			return h.Srv.Stats().Closes[tc.reason].Value() >= 1
		})
		// Everyone else keeps flowing.
		mark := fmt.Sprintf("after-%d", i)
		good.Send(et.Marker(mark))
		watcher.Expect(tc.name+": traffic after", et.UID(mark))
	}
	if n := h.Srv.Stats().Closes[engine.ReasonBadFrame].Value(); n != 3 {
		t.Errorf("bad_frame closes = %d, want 3", n)
	}
	if n := h.Srv.Stats().Closes[engine.ReasonFrameTooLarge].Value(); n != 1 {
		t.Errorf("frame_too_large closes = %d, want 1", n)
	}
	m := h.Metrics(t)
	for _, want := range []string{`cotd_closes_total{reason="bad_frame"} 3`, `cotd_closes_total{reason="frame_too_large"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	logs := h.Logs.String()
	if !strings.Contains(logs, `"reason":"frame_too_large"`) || !strings.Contains(logs, `"conn":`) {
		t.Errorf("close not logged with the connection's identity and reason:\n%s", logs)
	}
}

// A recipient that never reads must not slow anyone else. Its position
// reports are dropped over the soft limit (counted), and once it owes more
// than the hard limit it is closed as a slow consumer.
func TestSlowConsumerDoesNotDelayOthers(t *testing.T) {
	h := et.Start(t, func(c *configs.Config) {
		// The sender bursts past a tenth of its inbound budget, which
		// makes it noisy (its messages dropped before they can fill a
		// queue): this test is about a silent reader, so the budget is off.
		c.Limits.InboundBytesPerSec, c.Limits.InboundEventsPerSec = 0, 0
		c.Limits.OutboundSoftBytes = 32 << 10
		c.Limits.OutboundHardBytes = 128 << 10
		c.Limits.SocketSendBytes = 16 << 10
	})
	silent := et.DialSilent(t, h.TCPAddr())
	_ = silent
	honest := et.Dial(t, h.TCPAddr())
	sender := et.Dial(t, h.TCPAddr())
	h.Joined(t, 3)

	// The sender paces itself by what the honest client has received, as a
	// fleet of EUDs reporting at a steady rate would: the honest client is
	// never behind, the silent one falls further behind with every batch.
	const sas, chats, batch = 400, 100, 20
	for i := 0; i < sas; i += batch {
		var b strings.Builder
		for j := i; j < i+batch; j++ {
			b.WriteString(strings.Replace(et.SA("SENDER", "S", "a-f-G-U-C"), `hae="300"`, fmt.Sprintf(`hae="%d"`, j), 1))
		}
		sender.Send(b.String())
		last := float64(i + batch - 1)
		honest.Expect("SA batch", func(h *cot.Header) bool { return h.UID == "SENDER" && h.HAE == last })
	}
	text := strings.Repeat("y", 4000)
	for i := 0; i < chats; i += 4 {
		var b strings.Builder
		for j := i; j < i+4; j++ {
			b.WriteString(et.Chat(fmt.Sprintf("chat-%d", j), text, nil, nil))
		}
		sender.Send(b.String())
		honest.Expect("chat batch", et.UID(fmt.Sprintf("chat-%d", i+3)))
	}
	n, c := 0, 0
	for _, ev := range honest.Events() {
		switch {
		case ev.H.UID == "SENDER":
			n++
		case strings.HasPrefix(ev.H.UID, "chat-"):
			c++
		}
	}
	if n != sas || c != chats {
		t.Errorf("honest client got %d of %d position reports and %d of %d chats", n, sas, c, chats)
	}
	st := h.Srv.Broker().Stats()
	et.Eventually(t, "the silent client closed as a slow consumer", func() bool {
		return h.Srv.Stats().Closes[engine.ReasonSlowConsumerBytes].Value() == 1
	})
	if n := h.Srv.Stats().Closes[engine.ReasonSlowConsumerStalled].Value(); n != 0 {
		t.Errorf("slow_consumer_stalled closes = %d: the silent client went over the hard limit, it did not time out", n)
	}
	if st.Drops[broker.DropBackpressure].Value() == 0 {
		t.Error("no position report was dropped for the silent client")
	}
	if st.Drops[broker.DropSlowConsumer].Value() == 0 {
		t.Error("the message that crossed the hard limit was not counted")
	}
	if st.Drops[broker.DropBackpressure].Value() >= sas {
		t.Errorf("drops %d: reports below the soft limit must be queued", st.Drops[broker.DropBackpressure].Value())
	}
}

// Output that stops moving for write_timeout closes the client even when it
// is under the hard limit.
func TestWriteTimeoutClosesStalledClient(t *testing.T) {
	h := et.Start(t, func(c *configs.Config) {
		c.Limits.OutboundSoftBytes = 512 << 10
		c.Limits.OutboundHardBytes = 4 << 20
		c.Limits.SocketSendBytes = 8 << 10
		c.Limits.WriteTimeout = configs.Duration{Duration: time.Second}
	})
	et.DialSilent(t, h.TCPAddr())
	sender := et.Dial(t, h.TCPAddr())
	h.Joined(t, 2)
	var b strings.Builder
	for i := range 60 {
		b.WriteString(et.Chat(fmt.Sprintf("c-%d", i), strings.Repeat("z", 4000), nil, nil))
	}
	sender.Send(b.String())
	et.Eventually(t, "stalled client closed", func() bool {
		return h.Srv.Stats().Closes[engine.ReasonSlowConsumerStalled].Value() == 1
	})
	if n := h.Srv.Stats().Closes[engine.ReasonSlowConsumerBytes].Value(); n != 0 {
		t.Errorf("slow_consumer_bytes closes = %d: the stalled client was under the hard limit", n)
	}
	if m := h.Metrics(t); !strings.Contains(m, `cotd_closes_total{reason="slow_consumer_stalled"} 1`) {
		t.Error(`/metrics lacks cotd_closes_total{reason="slow_consumer_stalled"} 1`)
	}
	// About 240 KB was owed and the silent socket holds a few tens of KB at
	// most: the rest was lost with the connection and must show as such.
	if n := h.Srv.Stats().UnsentBytes.Value(); n < 100<<10 || n > 60*4200 {
		t.Errorf("unsent bytes = %d, want what the stalled client was owed less what its socket holds", n)
	}
	if !strings.Contains(h.Logs.String(), `"unsent_bytes":`) {
		t.Error("the close did not log the unsent bytes")
	}
	if !strings.Contains(h.Logs.String(), "no write progress") {
		t.Error("the write timeout was not logged")
	}
}

func TestIdleClientIsClosed(t *testing.T) {
	h := et.Start(t, func(c *configs.Config) { c.Limits.IdleTimeout = configs.Duration{Duration: time.Second} })
	idle := et.Dial(t, h.TCPAddr())
	idle.Closed()
	if n := h.Srv.Stats().Closes[engine.ReasonIdle].Value(); n != 1 {
		t.Errorf("idle closes = %d", n)
	}
	if n := h.Srv.Stats().UnsentBytes.Value(); n != 0 {
		t.Errorf("a client owed nothing closed with %d unsent bytes", n)
	}
}

func TestShutdownDrainsQueuedOutput(t *testing.T) {
	// 3000 markers at once is a flood by the inbound budget's measure
	// (its messages would be the first dropped): this test is about the
	// drain, so the budget is off.
	h := et.Start(t, func(c *configs.Config) { c.Limits.InboundBytesPerSec, c.Limits.InboundEventsPerSec = 0, 0 })
	rx := et.Dial(t, h.TCPAddr())
	tx := et.Dial(t, h.TCPAddr())
	h.Joined(t, 2)
	const n = 3000
	var b strings.Builder
	for i := range n {
		b.WriteString(et.Marker(fmt.Sprintf("m-%d", i)))
	}
	tx.Send(b.String())
	et.Eventually(t, "all frames accepted", func() bool {
		return h.Srv.Stats().FramesIn[engine.KindOther].Value() == n
	})
	if err := h.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	rx.Closed()
	got := 0
	for _, ev := range rx.Events() {
		if strings.HasPrefix(ev.H.UID, "m-") {
			got++
		}
	}
	if got != n {
		t.Errorf("received %d of %d accepted frames before the server closed", got, n)
	}
	if h.Srv.Stats().Closes[engine.ReasonShutdown].Value() != 2 {
		t.Errorf("shutdown closes = %d", h.Srv.Stats().Closes[engine.ReasonShutdown].Value())
	}
}

// A late joiner is owed the latest SA of every client, even when that is
// more than its outbound soft limit holds at once: the replay waits for
// the queue to drain instead of dropping position reports.
func TestReplayLargerThanTheSoftLimit(t *testing.T) {
	h := et.Start(t, func(c *configs.Config) {
		c.Limits.OutboundSoftBytes = 4 << 10
		c.Limits.OutboundHardBytes = 64 << 10
		c.Limits.SocketSendBytes = 4 << 10
	})
	const n = 200 // about 120 KiB of SAs: 30 times the soft limit
	for i := range n {
		c := et.Dial(t, h.TCPAddr())
		c.Send(et.SA(fmt.Sprintf("S-%d", i), fmt.Sprintf("CS-%d", i), "a-f-G-U-C"))
	}
	et.Eventually(t, "every SA cached", func() bool { return h.Srv.Broker().CachedSAs() == n })
	late := et.Dial(t, h.TCPAddr())
	for i := range n {
		late.Expect("replayed SA", et.UID(fmt.Sprintf("S-%d", i)))
	}
}

// A client that falls behind and then catches up by reading, while sending
// nothing itself, must get position reports again once its backlog is
// written: the unwritten bytes that put it over the soft limit are looked
// at again while they drain, not only when the client next sends.
func TestPositionReportsResumeAfterBacklogDrains(t *testing.T) {
	h := et.Start(t, func(c *configs.Config) {
		c.Limits.OutboundSoftBytes = 16 << 10
		c.Limits.OutboundHardBytes = 4 << 20
		c.Limits.SocketSendBytes = 4 << 10
	})
	conn := et.DialSilent(t, h.TCPAddr())
	sender := et.Dial(t, h.TCPAddr())
	h.Joined(t, 2)
	// Chats are never dropped for back-pressure: 120 KB of them pile up
	// unwritten behind the silent client's full socket.
	const chats = 30
	var b strings.Builder
	for i := range chats {
		b.WriteString(et.Chat(fmt.Sprintf("c-%d", i), strings.Repeat("z", 4000), nil, nil))
	}
	sender.Send(b.String())
	et.Eventually(t, "backlog over the soft limit", func() bool {
		for _, ci := range h.Srv.Directory().Clients() {
			if ci.QueuedBytes > 16<<10 {
				return true
			}
		}
		return false
	})
	reader := et.Wrap(t, conn)
	reader.Expect("the last chat of the backlog", et.UID(fmt.Sprintf("c-%d", chats-1)))
	// The reader now owes nothing and sends nothing. Each report below
	// must eventually get through; before the fix every one was refused
	// until the write timeout (60 s) refreshed the stale backlog figure.
	et.Eventually(t, "a position report after the backlog drained", func() bool {
		sender.Send(et.SA("SENDER", "S", "a-f-G-U-C"))
		return reader.Received(et.UID("SENDER"))
	})
}

// Once a client has named itself in an SA, every line logged about its
// connection says who it is, as well as which connection.
func TestConnectionLogsNameTheClient(t *testing.T) {
	h := et.Start(t, nil)
	c := et.Dial(t, h.TCPAddr())
	c.Send(et.SA("LOG-1", "LOGGER", "a-f-G-U-C"))
	et.Eventually(t, "the SA routed", func() bool { return h.Srv.Broker().CachedSAs() == 1 })
	c.Send("<event garbage")
	c.Send(strings.Repeat("\x00", 64))
	c.Closed()
	et.Eventually(t, "the close logged", func() bool { return strings.Contains(h.Logs.String(), `"reason":"bad_frame"`) })
	for line := range strings.Lines(h.Logs.String()) {
		if strings.Contains(line, `"reason":"bad_frame"`) &&
			!(strings.Contains(line, `"uid":"LOG-1"`) && strings.Contains(line, `"callsign":"LOGGER"`) && strings.Contains(line, `"conn":`)) {
			t.Errorf("a line about the connection does not name its client: %s", line)
		}
	}
}
