package engine

import (
	"errors"
	"time"

	"cotd/configs"
	"cotd/cot"
	"cotd/cot/takproto"
)

// errSwitchV1 stops the XML framer right after the request that switched
// the client to TAK protocol v1: the bytes behind it are v1.
var errSwitchV1 = errors.New("engine: switching to TAK protocol v1")

// startProtocol runs on the loop just before a client joins: a "protobuf"
// listener speaks v1 from the first byte; a "negotiate" listener offers v1
// once the SA replay is queued (Replayed), as TAK Server does.
func (ss *session) startProtocol() {
	if ss.srv.protocolOf(ss.ln) == configs.ProtocolNegotiate {
		ss.offerUID = cot.NewUID()
	}
}

// Replayed implements broker.Outbox: the join is complete, the SA replay
// queued. It runs on the loop (replay off) or the replay's goroutine;
// offerUID was set before the join and is not written again.
func (ss *session) Replayed() {
	if ss.offerUID == "" {
		return
	}
	ss.sendLocal(takproto.AppendOffer(nil, ss.offerUID, time.Now()), 0, true)
	ss.srv.stats.Offers.Inc()
}

// encodeV1 is the broker's Encoder: an event as one TAK protocol v1 frame,
// or nil when it does not convert.
func encodeV1(xml []byte) []byte {
	var tm takproto.TakMessage
	if takproto.FromXML(xml, &tm) != nil {
		return nil
	}
	return takproto.AppendMessageFrame(nil, &tm)
}

// speakV1 puts a "protobuf" listener's connection in v1 from the start.
func (ss *session) speakV1() {
	ss.out.mu.Lock()
	ss.outV1.Store(true)
	ss.out.mu.Unlock()
	ss.inputV1()
}

// inputV1 switches the input side to v1 frames. Loop only.
func (ss *session) inputV1() {
	ss.framer = nil
	ss.v1 = takproto.NewFramer(ss.srv.cfg.Limits.MaxFrameBytes)
}

// negotiate answers a client's t-x-takp-q on the loop. A request that names
// this connection's offer and version 1 is granted: the response goes out
// as XML and everything after it, both ways, is v1. Any other request is
// refused with status false and the connection stays XML.
func (ss *session) negotiate(doc []byte) error {
	uid, version, ok := takproto.ParseRequest(doc)
	now := time.Now()
	grant := ok && ss.offerUID != "" && uid == ss.offerUID && version == takproto.ProtocolVersion
	resp := takproto.AppendResponse(nil, uid, grant, now)
	o := &ss.out
	o.mu.Lock()
	if grant && ss.outV1.Load() {
		// Already switched: a second request changes nothing.
		grant = false
		resp = takproto.AppendResponse(nil, uid, false, now)
	}
	// The response is queued whatever the back-pressure (the client waits
	// for it), and in the same step as the switch: every event queued
	// before it is XML, every one after it v1.
	if !o.closing {
		ss.appendLocked(resp, ss.readAt, false)
	}
	if grant {
		ss.outV1.Store(true)
	}
	o.mu.Unlock()
	if !grant {
		ss.srv.stats.Negotiations[NegotiationRefused].Inc()
		ss.logger().Info().Str("request_uid", uid).Int("version", version).Bool("parsed", ok).
			Msg("tak protocol request refused; staying on XML")
		return nil
	}
	ss.srv.stats.Negotiations[NegotiationV1].Inc()
	ss.logger().Debug().Msg("switched to tak protocol v1")
	return errSwitchV1
}

// onV1 handles one v1 payload: it is turned into the XML event it stands
// for, so that one path answers pings, checks and routes everything; the
// payload itself is kept for v1 recipients.
func (ss *session) onV1(payload []byte) error {
	tm := &ss.lp.tm
	if err := tm.Unmarshal(payload); err != nil {
		return &errFrame{reason: ReasonBadFrame, err: err}
	}
	if tm.CotEvent == nil {
		// A bare TakControl (mesh version advertisement): nothing to route.
		ss.srv.stats.FramesIn[KindControl].Inc()
		return nil
	}
	doc, err := takproto.AppendXML(ss.lp.xml[:0], tm)
	if err != nil {
		// A time beyond year 9999 or an xmlDetail with "</event" is this event's fault
		// alone: dropped and counted, the connection stays.
		return ss.refuse(err)
	}
	ss.lp.xml = doc[:0]
	ss.curV1 = payload
	err = ss.onDoc(doc)
	ss.curV1 = nil
	return err
}

// NegotiationResult classifies answers to t-x-takp-q.
type NegotiationResult uint8

// The negotiation results, counted in cotd_negotiations_total.
const (
	NegotiationV1 NegotiationResult = iota
	NegotiationRefused
	numNegotiationResults
)

func (r NegotiationResult) String() string {
	if r == NegotiationV1 {
		return "v1"
	}
	return "refused"
}
