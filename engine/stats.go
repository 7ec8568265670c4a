package engine

import (
	"io"
	"strconv"

	"cotd/engine/broker"
	"cotd/engine/metrics"
)

// Stats are the engine's counters. Every field is updated lock-free.
type Stats struct {
	Accepted [numListenerKinds]metrics.Counter
	Open     [numListenerKinds]metrics.Gauge
	// Handshaking is the part of Open still in its TLS handshake.
	Handshaking [numListenerKinds]metrics.Gauge
	Closes      [numCloseReasons]metrics.Counter
	FramesIn    [numFrameKinds]metrics.Counter
	BytesIn     metrics.Counter
	BytesOut    metrics.Counter
	// UnsentBytes is output queued for clients that closed before it was
	// written (an upper bound; see OnClose).
	UnsentBytes metrics.Counter
	Pongs       metrics.Counter
	Refused     [numRefuseReasons]metrics.Counter // connections closed at accept
	Handshakes  [numHandshakeResults]metrics.Counter
	Logins      [numLoginResults]metrics.Counter
	// Offers counts t-x-takp-v offers sent; Negotiations the answers to
	// client requests.
	Offers       metrics.Counter
	Negotiations [numNegotiationResults]metrics.Counter
	// HandshakeSeconds is the time from accept to an established TLS session.
	HandshakeSeconds *metrics.Histogram
	// Delay is the time from reading a frame to handing it to a
	// recipient's socket, in seconds.
	Delay *metrics.Histogram
	// BadEvents counts inbound events dropped with their connection kept open.
	BadEvents [numBadEventReasons]metrics.Counter
	// AuthThrottled counts <auth> documents refused before their check,
	// and checks skipped, by why.
	AuthThrottled [numAuthThrottles]metrics.Counter
	// Throttled counts the times a connection's input was left unread
	// because its inbound budget was spent.
	Throttled metrics.Counter
}

func (s *Server) writeMetrics(w io.Writer) error {
	m := metrics.NewWriter(w)
	st := &s.stats
	c := func(x *metrics.Counter) float64 { return float64(x.Value()) }
	metrics.Vec(m, "cotd_connections_accepted_total", "Connections accepted, by listener.", "counter", "listener",
		0, numListenerKinds, func(k ListenerKind) float64 { return c(&st.Accepted[k]) })
	metrics.Vec(m, "cotd_connections_open", "Connections open now, by listener.", "gauge", "listener",
		0, numListenerKinds, func(k ListenerKind) float64 { return float64(st.Open[k].Value()) })
	m.Family("cotd_connections", "Connections open now, by listener and state: handshaking (TLS, not yet established) or established.", "gauge")
	for k := range numListenerKinds {
		hs := st.Handshaking[k].Value()
		m.Sample("cotd_connections", float64(hs), "listener", k.String(), "state", "handshaking")
		m.Sample("cotd_connections", float64(st.Open[k].Value()-hs), "listener", k.String(), "state", "established")
	}
	metrics.Vec(m, "cotd_closes_total", "Connections closed, by reason.", "counter", "reason",
		ReasonPeerClosed, numCloseReasons, func(r CloseReason) float64 { return c(&st.Closes[r]) })
	metrics.Vec(m, "cotd_frames_in_total", "CoT documents received, by kind.", "counter", "kind",
		0, numFrameKinds, func(k FrameKind) float64 { return c(&st.FramesIn[k]) })
	metrics.Vec(m, "cotd_bad_events_total", "Inbound events dropped with the connection kept open, by reason.", "counter", "reason",
		0, numBadEventReasons, func(r BadEventReason) float64 { return c(&st.BadEvents[r]) })
	m.One("cotd_bytes_in_total", "Bytes read from clients.", "counter", c(&st.BytesIn))
	m.One("cotd_bytes_out_total", "Bytes handed to client sockets.", "counter", c(&st.BytesOut))
	m.One("cotd_unsent_bytes_total", "Bytes queued for clients whose connection closed before they were written (at most; the socket may take part of it in a last write).", "counter", c(&st.UnsentBytes))
	m.One("cotd_inbound_throttled_total", "Times a connection's input was left unread because its inbound budget (limits.inbound_*) was spent.", "counter", c(&st.Throttled))
	m.One("cotd_partial_frame_bytes", "Inbound bytes held in partial frames and unread input, all connections.", "gauge", float64(s.partials.total.Load()))
	m.One("cotd_pongs_total", "Pongs sent in answer to pings.", "counter", c(&st.Pongs))
	metrics.Vec(m, "cotd_refused_total", "Connections closed at accept, by reason (shutting down, limits.max_connections).", "counter", "reason",
		0, numRefuseReasons, func(r RefuseReason) float64 { return c(&st.Refused[r]) })
	metrics.Vec(m, "cotd_tls_handshakes_total", "TLS handshakes, by result.", "counter", "result",
		0, numHandshakeResults, func(r HandshakeResult) float64 { return c(&st.Handshakes[r]) })
	metrics.Vec(m, "cotd_auth_throttled_total", "<auth> documents refused before their password check (pending bounds, failure backoff), and checks skipped because the connection closed, by reason.", "counter", "reason",
		0, numAuthThrottles, func(r AuthThrottle) float64 { return c(&st.AuthThrottled[r]) })
	metrics.Vec(m, "cotd_logins_total", "<auth> logins, by result.", "counter", "result",
		0, numLoginResults, func(r LoginResult) float64 { return c(&st.Logins[r]) })
	m.One("cotd_protocol_offers_total", "TAK protocol v1 offers sent.", "counter", c(&st.Offers))
	metrics.Vec(m, "cotd_protocol_negotiations_total", "Answers to TAK protocol requests, by result.", "counter", "result",
		0, numNegotiationResults, func(r NegotiationResult) float64 { return c(&st.Negotiations[r]) })
	st.HandshakeSeconds.Write(m, "cotd_tls_handshake_seconds", "Time from accept to an established TLS session.")
	st.Delay.Write(m, "cotd_delivery_delay_seconds", "Time from reading a frame to handing it to a recipient's socket.")

	bs := s.broker.Stats()
	m.One("cotd_frames_routed_total", "Frames accepted by the broker for routing.", "counter", c(&bs.Routed))
	m.One("cotd_deliveries_total", "Messages queued to recipients by the broker.", "counter", float64(bs.DeliveredAll()))
	// Frames out: what the broker queued, by its kind, and what each
	// connection's loop answered itself (pongs; protocol offers and
	// responses). auth is an inbound kind only.
	m.Family("cotd_frames_out_total", "CoT documents queued to clients, by kind.", "counter")
	for k := range numFrameKinds {
		var v uint64
		switch k {
		case KindSA:
			v = bs.Delivered[broker.KindSA].Value()
		case KindChat:
			v = bs.Delivered[broker.KindChat].Value()
		case KindOther:
			v = bs.Delivered[broker.KindOther].Value()
		case KindPing:
			v = st.Pongs.Value()
		case KindControl:
			v = st.Offers.Value()
			for i := range st.Negotiations {
				v += st.Negotiations[i].Value()
			}
		default:
			continue
		}
		m.Sample("cotd_frames_out_total", float64(v), "kind", k.String())
	}
	metrics.Vec(m, "cotd_drops_total", "Messages dropped, by reason.", "counter", "reason",
		0, broker.NumDropReasons, func(r broker.DropReason) float64 { return c(&bs.Drops[r]) })
	m.One("cotd_unroutable_total", "Directed frames with no destination online.", "counter", c(&bs.Unroutable))
	m.One("cotd_delivery_failures_total", "b-t-f-s returned for directed chats that reached no one.", "counter", c(&bs.DeliveryFailures))
	m.One("cotd_chats_kept_offline_total", "Directed chats that reached no one, kept for later delivery instead of a b-t-f-s.", "counter", c(&bs.KeptOffline))
	m.One("cotd_sa_replayed_total", "Cached SAs sent to joining clients.", "counter", c(&bs.Replayed))
	m.One("cotd_disconnect_notices_total", "t-x-d-d notices sent for clients that left.", "counter", c(&bs.DisconnectNotices))
	m.One("cotd_uid_refused_total", "SAs dropped because another live client owns their uid.", "counter", c(&bs.UIDRefused))
	m.One("cotd_uid_takeovers_total", "uids taken over by a newer connection (same user reconnecting, quiet holder, a gateway's device).", "counter", c(&bs.UIDTakeovers))
	m.One("cotd_sa_over_connection_cap_total", "SAs dropped because their connection announced sa.max_per_connection uids already.", "counter", c(&bs.SAOverCap))
	m.One("cotd_sa_cache_full_total", "SAs routed but not cached because the cache held sa.max_cached.", "counter", c(&bs.SACacheFull))
	m.One("cotd_sa_cached", "SAs in the replay cache.", "gauge", float64(s.broker.CachedSAs()))
	m.Family("cotd_broker_inbox_depth", "Frames waiting in each broker shard.", "gauge")
	for i := range s.broker.NumShards() {
		m.Sample("cotd_broker_inbox_depth", float64(s.broker.InboxDepth(i)), "shard", strconv.Itoa(i))
	}
	var queued int64
	s.sessions.Range(func(_, v any) bool {
		queued += v.(*session).queued()
		return true
	})
	m.One("cotd_outbound_queued_bytes", "Bytes queued to clients and not yet written.", "gauge", float64(queued))
	s.dir.writeMetrics(m)
	return m.Flush()
}
