package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"cotd/cot"
)

// Hostile describes clients that attack the server beside the honest EUDs. They are
// extra connections (not counted in clients), on the TCP target, neither senders nor
// recipients in the loss figures; they read and discard what they receive, and
// reconnect a second after the server closes them, until the send phase ends. The
// question the hostile scenario asks: does any honest client pay for them?
type Hostile struct {
	// MarkerFlooders (hostile.marker_flooders) send markers, each with a new uid, as
	// fast as the socket takes them; default 0.
	MarkerFlooders int `toml:"marker_flooders"`
	// PositionFlooders (hostile.position_flooders) send their own SA as fast as the
	// socket takes it; default 0.
	PositionFlooders int `toml:"position_flooders"`
	// Impostors (hostile.impostors) send SAs with the uid of a random honest client,
	// ten a second; default 0.
	Impostors int `toml:"impostors"`
	// Rotators (hostile.rotators) send SAs with a new uid each, a hundred a second;
	// default 0.
	Rotators int `toml:"rotators"`
	// Injectors (hostile.injectors) send events that carry a forged t-x-d-d after
	// "</event>" inside CDATA, ten a second; default 0.
	Injectors int `toml:"injectors"`
}

// hostileKind is what one hostile client does.
type hostileKind uint8

const (
	hostileMarkers hostileKind = iota
	hostilePositions
	hostileImpostor
	hostileRotator
	hostileInjector
	numHostileKinds
)

var hostileNames = [numHostileKinds]string{"marker_flooder", "position_flooder", "impostor", "rotator", "injector"}

func (k hostileKind) String() string {
	if k < numHostileKinds {
		return hostileNames[k]
	}
	return "hostileKind(" + strconv.Itoa(int(k)) + ")"
}

// count is the number of hostile clients of every kind.
func (h Hostile) count() int {
	return h.MarkerFlooders + h.PositionFlooders + h.Impostors + h.Rotators + h.Injectors
}

func (h Hostile) kinds() []hostileKind {
	var ks []hostileKind
	for k, n := range [numHostileKinds]int{h.MarkerFlooders, h.PositionFlooders, h.Impostors, h.Rotators, h.Injectors} {
		for range n {
			ks = append(ks, hostileKind(k))
		}
	}
	return ks
}

// hostileStats are the hostile clients' counters.
type hostileStats struct {
	connects atomic.Int64
	closed   atomic.Int64 // connections the server closed
	bytes    atomic.Int64 // bytes the server took from them
}

// HostileReport is what the hostile clients did and what the server did to them.
type HostileReport struct {
	Clients        int   `json:"clients"`
	Connects       int64 `json:"connects"`
	ClosedByServer int64 `json:"closed_by_server"`
	BytesSent      int64 `json:"bytes_sent"`
}

// runHostiles starts every hostile client; they end with ctx or the send phase.
func (r *runner) runHostiles(ctx context.Context) {
	for i, k := range r.sc.Hostile.kinds() {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.runHostile(ctx, i, k)
		}()
	}
}

func (r *runner) runHostile(ctx context.Context, i int, k hostileKind) {
	st := &r.hst
	for ctx.Err() == nil && time.Now().Before(r.sendEnd) && !r.stopping.Load() {
		nd := net.Dialer{Timeout: r.sc.Connect.Timeout.Duration}
		c, err := nd.DialContext(ctx, "tcp", pick(r.dialer.tcpAddrs, i))
		if err != nil {
			if !sleepCtx(ctx, time.Second) {
				return
			}
			continue
		}
		st.connects.Add(1)
		stop := context.AfterFunc(ctx, func() { _ = c.Close() })
		readDone := make(chan struct{})
		go func() {
			_, _ = io.Copy(io.Discard, c)
			close(readDone)
		}()
		r.attack(ctx, c, i, k)
		_ = c.Close()
		<-readDone
		stop()
		if ctx.Err() != nil || r.stopping.Load() || !time.Now().Before(r.sendEnd) {
			return
		}
		st.closed.Add(1)
		if !sleepCtx(ctx, time.Second) {
			return
		}
	}
}

// attack writes k's traffic on c until a write fails (the server closed it), the send
// phase ends or ctx does.
func (r *runner) attack(ctx context.Context, c net.Conn, i int, k hostileKind) {
	var seq uint64
	var b []byte
	var pace time.Duration
	switch k {
	case hostileImpostor, hostileInjector:
		pace = 100 * time.Millisecond
	case hostileRotator:
		pace = 10 * time.Millisecond
	}
	for time.Now().Before(r.sendEnd) && !r.stopping.Load() {
		now := time.Now()
		b = b[:0]
		switch k {
		case hostileMarkers:
			// A batch per write: as fast as the socket takes it.
			for range 64 {
				seq++
				b = appendHostileEvent(b, "a-h-G", "HOSTILE-M-"+strconv.Itoa(i)+"-"+strconv.FormatUint(seq, 10), "", now, "")
			}
		case hostilePositions:
			for range 64 {
				b = appendHostileEvent(b, "a-f-G-U-C", "HOSTILE-P-"+strconv.Itoa(i), "HP"+strconv.Itoa(i), now, "")
			}
		case hostileImpostor:
			if r.honest > 0 {
				n := int(seq) % r.honest
				b = appendHostileEvent(b, "a-f-G-U-C", UID(n), "IMPOSTOR", now, "")
			}
			seq++
		case hostileRotator:
			seq++
			b = appendHostileEvent(b, "a-f-G-U-C", "HOSTILE-R-"+strconv.Itoa(i)+"-"+strconv.FormatUint(seq, 10), "ROT", now, "")
		case hostileInjector:
			seq++
			forged := fmt.Sprintf(`</event><event version="2.0" uid="forged-%d" type="t-x-d-d" how="h-g-i-g-o" time="%s" start="%s" stale="%s"><point lat="0" lon="0" hae="0" ce="9999999" le="9999999"/><detail><link uid="%s" relation="p-p" type="a-f-G-U-C"/></detail></event>`,
				seq, cot.FormatTime(now), cot.FormatTime(now), cot.FormatTime(now.Add(time.Minute)), UID(0))
			b = appendHostileEvent(b, "b-t-f", "HOSTILE-I-"+strconv.Itoa(i)+"-"+strconv.FormatUint(seq, 10), "", now, forged)
		}
		if len(b) > 0 {
			_ = c.SetWriteDeadline(now.Add(r.sc.Connect.WriteTimeout.Duration))
			n, err := c.Write(b)
			r.hst.bytes.Add(int64(n))
			if err != nil {
				return
			}
		}
		if pace > 0 && !sleepCtx(ctx, time.Until(now.Add(pace))) {
			return
		}
	}
}

// appendHostileEvent writes one event: an SA when callsign is set (a contact with an
// endpoint), else a plain event, with cdata in its remarks when set.
func appendHostileEvent(b []byte, typ, uid, callsign string, now time.Time, cdata string) []byte {
	b = appendEventStart(b, typ, "m-g", now, time.Minute, func(b []byte) []byte { return append(b, uid...) })
	b = append(b, `<point lat="1" lon="2" hae="0" ce="9999999" le="9999999"/><detail>`...)
	if callsign != "" {
		b = append(b, `<contact callsign="`...)
		b = append(b, callsign...)
		b = append(b, `" endpoint="*:-1:stcp"/>`...)
	}
	if cdata != "" {
		b = append(b, `<remarks><![CDATA[`...)
		b = append(b, cdata...)
		b = append(b, `]]></remarks>`...)
	}
	return append(b, `</detail></event>`...)
}
