package engine

import (
	"io"
	"strconv"

	"cotd/engine/broker"
	"cotd/engine/metrics"
)

// Stats are the engine's counters. Every field is updated lock-free.
type Stats struct {
	Accepted   [numListenerKinds]metrics.Counter
	Open       [numListenerKinds]metrics.Gauge
	Closes     [numCloseReasons]metrics.Counter
	FramesIn   [numFrameKinds]metrics.Counter
	BytesIn    metrics.Counter
	BytesOut   metrics.Counter
	Pongs      metrics.Counter
	WakeFails  metrics.Counter
	Refused    metrics.Counter // connections refused while draining
	Handshakes [numHandshakeResults]metrics.Counter
	Logins     [numLoginResults]metrics.Counter
	// Offers counts t-x-takp-v offers sent; Negotiations the answers to
	// client requests.
	Offers       metrics.Counter
	Negotiations [numNegotiationResults]metrics.Counter
	// HandshakeSeconds is the time from accept to an established TLS session.
	HandshakeSeconds *metrics.Histogram
	// Delay is the time from reading a frame to handing it to a
	// recipient's socket, in seconds.
	Delay *metrics.Histogram
}

func (s *Server) writeMetrics(w io.Writer) error {
	m := metrics.NewWriter(w)
	st := &s.stats
	m.Family("cotd_connections_accepted_total", "Connections accepted, by listener.", "counter")
	for k := range numListenerKinds {
		m.Sample("cotd_connections_accepted_total", float64(st.Accepted[k].Value()), "listener", k.String())
	}
	m.Family("cotd_connections_open", "Connections open now, by listener.", "gauge")
	for k := range numListenerKinds {
		m.Sample("cotd_connections_open", float64(st.Open[k].Value()), "listener", k.String())
	}
	m.Family("cotd_closes_total", "Connections closed, by reason.", "counter")
	for r := ReasonPeerClosed; r < numCloseReasons; r++ {
		m.Sample("cotd_closes_total", float64(st.Closes[r].Value()), "reason", r.String())
	}
	m.Family("cotd_frames_in_total", "CoT documents received, by kind.", "counter")
	for k := range numFrameKinds {
		m.Sample("cotd_frames_in_total", float64(st.FramesIn[k].Value()), "kind", k.String())
	}
	m.Family("cotd_bytes_in_total", "Bytes read from clients.", "counter")
	m.Sample("cotd_bytes_in_total", float64(st.BytesIn.Value()))
	m.Family("cotd_bytes_out_total", "Bytes handed to client sockets.", "counter")
	m.Sample("cotd_bytes_out_total", float64(st.BytesOut.Value()))
	m.Family("cotd_pongs_total", "Pongs sent in answer to pings.", "counter")
	m.Sample("cotd_pongs_total", float64(st.Pongs.Value()))
	m.Family("cotd_refused_total", "Connections refused because the server was shutting down.", "counter")
	m.Sample("cotd_refused_total", float64(st.Refused.Value()))

	m.Family("cotd_tls_handshakes_total", "TLS handshakes, by result.", "counter")
	for r := range numHandshakeResults {
		m.Sample("cotd_tls_handshakes_total", float64(st.Handshakes[r].Value()), "result", r.String())
	}
	m.Family("cotd_logins_total", "<auth> logins, by result.", "counter")
	for r := range numLoginResults {
		m.Sample("cotd_logins_total", float64(st.Logins[r].Value()), "result", r.String())
	}
	m.Family("cotd_protocol_offers_total", "TAK protocol v1 offers sent.", "counter")
	m.Sample("cotd_protocol_offers_total", float64(st.Offers.Value()))
	m.Family("cotd_protocol_negotiations_total", "Answers to TAK protocol requests, by result.", "counter")
	for r := range numNegotiationResults {
		m.Sample("cotd_protocol_negotiations_total", float64(st.Negotiations[r].Value()), "result", r.String())
	}
	st.HandshakeSeconds.Write(m, "cotd_tls_handshake_seconds", "Time from accept to an established TLS session.")
	st.Delay.Write(m, "cotd_delivery_delay_seconds", "Time from reading a frame to handing it to a recipient's socket.")

	bs := s.broker.Stats()
	m.Family("cotd_frames_routed_total", "Frames accepted by the broker for routing.", "counter")
	m.Sample("cotd_frames_routed_total", float64(bs.Routed.Value()))
	m.Family("cotd_deliveries_total", "Messages queued to recipients (frames out).", "counter")
	m.Sample("cotd_deliveries_total", float64(bs.Delivered.Value()))
	m.Family("cotd_drops_total", "Messages dropped, by reason.", "counter")
	for r := range broker.NumDropReasons {
		m.Sample("cotd_drops_total", float64(bs.Drops[r].Value()), "reason", r.String())
	}
	m.Family("cotd_unroutable_total", "Directed frames with no destination online.", "counter")
	m.Sample("cotd_unroutable_total", float64(bs.Unroutable.Value()))
	m.Family("cotd_delivery_failures_total", "b-t-f-s returned for directed chats that reached no one.", "counter")
	m.Sample("cotd_delivery_failures_total", float64(bs.DeliveryFailures.Value()))
	m.Family("cotd_sa_replayed_total", "Cached SAs sent to joining clients.", "counter")
	m.Sample("cotd_sa_replayed_total", float64(bs.Replayed.Value()))
	m.Family("cotd_disconnect_notices_total", "t-x-d-d notices sent for clients that left.", "counter")
	m.Sample("cotd_disconnect_notices_total", float64(bs.DisconnectNotices.Value()))
	m.Family("cotd_sa_cached", "SAs in the replay cache.", "gauge")
	m.Sample("cotd_sa_cached", float64(s.broker.CachedSAs()))
	m.Family("cotd_broker_inbox_depth", "Frames waiting in each broker shard.", "gauge")
	for i := range s.broker.NumShards() {
		m.Sample("cotd_broker_inbox_depth", float64(s.broker.InboxDepth(i)), "shard", strconv.Itoa(i))
	}
	var queued int64
	for _, c := range s.broker.Clients() {
		if ss, ok := s.sessions.Load(c.ID); ok {
			queued += ss.(*session).queued()
		}
	}
	m.Family("cotd_outbound_queued_bytes", "Bytes queued to clients and not yet written.", "gauge")
	m.Sample("cotd_outbound_queued_bytes", float64(queued))
	return m.Flush()
}
