package takproto

import (
	"math"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
)

// The schema of TAK protocol v1 (tak-protocol.md 2.5; testdata/takmessage.proto). A nil
// pointer is an absent sub-message. As in proto3, a zero scalar is not written, so absent and
// zero cannot be told apart for scalars.

// TakMessage is the payload of one v1 frame.
type TakMessage struct {
	TakControl *TakControl
	CotEvent   *CotEvent
	// SubmissionTime and CreationTime are milliseconds since the Unix epoch; TAK Server sets
	// them, clients leave them zero.
	SubmissionTime uint64
	CreationTime   uint64
}

// TakControl is what mesh peers broadcast to agree on a version. Streaming connections
// negotiate in XML instead (see AppendOffer), so a server only passes it through.
type TakControl struct {
	MinProtoVersion uint32
	MaxProtoVersion uint32 // 0 means 1
}

// CotEvent is an <event>. Times are milliseconds since the Unix epoch.
type CotEvent struct {
	Type      string
	Access    string
	Qos       string
	Opex      string
	Uid       string
	SendTime  uint64 // the "time" attribute
	StartTime uint64
	StaleTime uint64
	How       string
	Lat       float64
	Lon       float64
	Hae       float64
	Ce        float64
	Le        float64
	Detail    *Detail
	Caveat    string
	// ReleaseableTo keeps the spelling of the schema and of the XML attribute.
	ReleaseableTo string
}

// Detail is the <detail> element: the children that have a typed form, and XmlDetail, the
// others as XML text (the children of <detail> without the wrapper). Where both carry an
// element of the same name, XmlDetail wins.
type Detail struct {
	XmlDetail         string
	Contact           *Contact
	Group             *Group
	PrecisionLocation *PrecisionLocation
	Status            *Status
	Takv              *Takv
	Track             *Track
}

// Contact is <contact endpoint callsign>.
type Contact struct {
	Endpoint string
	Callsign string
}

// Group is <__group name role>: the team colour and role, not a TAK Server access group.
type Group struct {
	Name string
	Role string
}

// PrecisionLocation is <precisionlocation geopointsrc altsrc>.
type PrecisionLocation struct {
	Geopointsrc string
	Altsrc      string
}

// Status is <status battery>.
type Status struct {
	Battery uint32
}

// Takv is <takv device platform os version>.
type Takv struct {
	Device   string
	Platform string
	Os       string
	Version  string
}

// Track is <track speed course>.
type Track struct {
	Speed  float64
	Course float64
}

// Field numbers, per message.
const (
	numTakControl     protowire.Number = 1
	numCotEvent       protowire.Number = 2
	numSubmissionTime protowire.Number = 3
	numCreationTime   protowire.Number = 4

	numMinProtoVersion protowire.Number = 1
	numMaxProtoVersion protowire.Number = 2

	numType          protowire.Number = 1
	numAccess        protowire.Number = 2
	numQos           protowire.Number = 3
	numOpex          protowire.Number = 4
	numUid           protowire.Number = 5
	numSendTime      protowire.Number = 6
	numStartTime     protowire.Number = 7
	numStaleTime     protowire.Number = 8
	numHow           protowire.Number = 9
	numLat           protowire.Number = 10
	numLon           protowire.Number = 11
	numHae           protowire.Number = 12
	numCe            protowire.Number = 13
	numLe            protowire.Number = 14
	numDetail        protowire.Number = 15
	numCaveat        protowire.Number = 16
	numReleaseableTo protowire.Number = 17

	numXmlDetail         protowire.Number = 1
	numContact           protowire.Number = 2
	numGroup             protowire.Number = 3
	numPrecisionLocation protowire.Number = 4
	numStatus            protowire.Number = 5
	numTakv              protowire.Number = 6
	numTrack             protowire.Number = 7

	numEndpoint protowire.Number = 1
	numCallsign protowire.Number = 2

	numName protowire.Number = 1
	numRole protowire.Number = 2

	numGeopointsrc protowire.Number = 1
	numAltsrc      protowire.Number = 2

	numBattery protowire.Number = 1

	numDevice   protowire.Number = 1
	numPlatform protowire.Number = 2
	numOs       protowire.Number = 3
	numVersion  protowire.Number = 4

	numSpeed  protowire.Number = 1
	numCourse protowire.Number = 2
)

// Size returns the length of m's encoding.
func (m *TakMessage) Size() int {
	if m == nil {
		return 0
	}
	n := sizeVarint(numSubmissionTime, m.SubmissionTime) + sizeVarint(numCreationTime, m.CreationTime)
	if m.TakControl != nil {
		n += sizeMessage(numTakControl, m.TakControl.size())
	}
	if m.CotEvent != nil {
		n += sizeMessage(numCotEvent, m.CotEvent.size())
	}
	return n
}

// AppendMarshal appends the protobuf encoding of m to b, fields in number order, and returns
// the extended slice. It allocates only when b lacks the capacity, and then once. A nil m
// encodes as nothing (an empty TakMessage).
func (m *TakMessage) AppendMarshal(b []byte) []byte {
	if m == nil {
		return b
	}
	return m.appendTo(slices.Grow(b, m.Size()))
}

func (m *TakMessage) appendTo(b []byte) []byte {
	if m == nil {
		return b
	}
	if m.TakControl != nil {
		b = appendHeader(b, numTakControl, m.TakControl.size())
		b = m.TakControl.appendTo(b)
	}
	if m.CotEvent != nil {
		b = appendHeader(b, numCotEvent, m.CotEvent.size())
		b = m.CotEvent.appendTo(b)
	}
	b = appendVarint(b, numSubmissionTime, m.SubmissionTime)
	return appendVarint(b, numCreationTime, m.CreationTime)
}

func (c *TakControl) size() int {
	return sizeVarint(numMinProtoVersion, uint64(c.MinProtoVersion)) +
		sizeVarint(numMaxProtoVersion, uint64(c.MaxProtoVersion))
}

func (c *TakControl) appendTo(b []byte) []byte {
	b = appendVarint(b, numMinProtoVersion, uint64(c.MinProtoVersion))
	return appendVarint(b, numMaxProtoVersion, uint64(c.MaxProtoVersion))
}

func (e *CotEvent) size() int {
	n := sizeString(numType, e.Type) + sizeString(numAccess, e.Access) +
		sizeString(numQos, e.Qos) + sizeString(numOpex, e.Opex) + sizeString(numUid, e.Uid) +
		sizeVarint(numSendTime, e.SendTime) + sizeVarint(numStartTime, e.StartTime) +
		sizeVarint(numStaleTime, e.StaleTime) + sizeString(numHow, e.How) +
		sizeDouble(numLat, e.Lat) + sizeDouble(numLon, e.Lon) + sizeDouble(numHae, e.Hae) +
		sizeDouble(numCe, e.Ce) + sizeDouble(numLe, e.Le) +
		sizeString(numCaveat, e.Caveat) + sizeString(numReleaseableTo, e.ReleaseableTo)
	if e.Detail != nil {
		n += sizeMessage(numDetail, e.Detail.size())
	}
	return n
}

func (e *CotEvent) appendTo(b []byte) []byte {
	b = appendString(b, numType, e.Type)
	b = appendString(b, numAccess, e.Access)
	b = appendString(b, numQos, e.Qos)
	b = appendString(b, numOpex, e.Opex)
	b = appendString(b, numUid, e.Uid)
	b = appendVarint(b, numSendTime, e.SendTime)
	b = appendVarint(b, numStartTime, e.StartTime)
	b = appendVarint(b, numStaleTime, e.StaleTime)
	b = appendString(b, numHow, e.How)
	b = appendDouble(b, numLat, e.Lat)
	b = appendDouble(b, numLon, e.Lon)
	b = appendDouble(b, numHae, e.Hae)
	b = appendDouble(b, numCe, e.Ce)
	b = appendDouble(b, numLe, e.Le)
	if e.Detail != nil {
		b = appendHeader(b, numDetail, e.Detail.size())
		b = e.Detail.appendTo(b)
	}
	b = appendString(b, numCaveat, e.Caveat)
	return appendString(b, numReleaseableTo, e.ReleaseableTo)
}

func (d *Detail) size() int {
	n := sizeString(numXmlDetail, d.XmlDetail)
	if c := d.Contact; c != nil {
		n += sizeMessage(numContact, sizeString(numEndpoint, c.Endpoint)+sizeString(numCallsign, c.Callsign))
	}
	if g := d.Group; g != nil {
		n += sizeMessage(numGroup, sizeString(numName, g.Name)+sizeString(numRole, g.Role))
	}
	if p := d.PrecisionLocation; p != nil {
		n += sizeMessage(numPrecisionLocation, sizeString(numGeopointsrc, p.Geopointsrc)+sizeString(numAltsrc, p.Altsrc))
	}
	if s := d.Status; s != nil {
		n += sizeMessage(numStatus, sizeVarint(numBattery, uint64(s.Battery)))
	}
	if t := d.Takv; t != nil {
		n += sizeMessage(numTakv, t.size())
	}
	if t := d.Track; t != nil {
		n += sizeMessage(numTrack, sizeDouble(numSpeed, t.Speed)+sizeDouble(numCourse, t.Course))
	}
	return n
}

func (t *Takv) size() int {
	return sizeString(numDevice, t.Device) + sizeString(numPlatform, t.Platform) +
		sizeString(numOs, t.Os) + sizeString(numVersion, t.Version)
}

func (d *Detail) appendTo(b []byte) []byte {
	b = appendString(b, numXmlDetail, d.XmlDetail)
	if c := d.Contact; c != nil {
		b = appendHeader(b, numContact, sizeString(numEndpoint, c.Endpoint)+sizeString(numCallsign, c.Callsign))
		b = appendString(b, numEndpoint, c.Endpoint)
		b = appendString(b, numCallsign, c.Callsign)
	}
	if g := d.Group; g != nil {
		b = appendHeader(b, numGroup, sizeString(numName, g.Name)+sizeString(numRole, g.Role))
		b = appendString(b, numName, g.Name)
		b = appendString(b, numRole, g.Role)
	}
	if p := d.PrecisionLocation; p != nil {
		b = appendHeader(b, numPrecisionLocation, sizeString(numGeopointsrc, p.Geopointsrc)+sizeString(numAltsrc, p.Altsrc))
		b = appendString(b, numGeopointsrc, p.Geopointsrc)
		b = appendString(b, numAltsrc, p.Altsrc)
	}
	if s := d.Status; s != nil {
		b = appendHeader(b, numStatus, sizeVarint(numBattery, uint64(s.Battery)))
		b = appendVarint(b, numBattery, uint64(s.Battery))
	}
	if t := d.Takv; t != nil {
		b = appendHeader(b, numTakv, t.size())
		b = appendString(b, numDevice, t.Device)
		b = appendString(b, numPlatform, t.Platform)
		b = appendString(b, numOs, t.Os)
		b = appendString(b, numVersion, t.Version)
	}
	if t := d.Track; t != nil {
		b = appendHeader(b, numTrack, sizeDouble(numSpeed, t.Speed)+sizeDouble(numCourse, t.Course))
		b = appendDouble(b, numSpeed, t.Speed)
		b = appendDouble(b, numCourse, t.Course)
	}
	return b
}

// Encoding helpers. Each omits a zero value, as proto3 does for fields without explicit
// presence. A double counts as zero only when all its bits are: -0 and NaN are written, as
// the reference implementations do.

func sizeVarint(num protowire.Number, v uint64) int {
	if v == 0 {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeVarint(v)
}

func sizeString(num protowire.Number, s string) int {
	if s == "" {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeBytes(len(s))
}

func sizeDouble(num protowire.Number, v float64) int {
	if math.Float64bits(v) == 0 {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeFixed64()
}

// sizeMessage is the size of a present sub-message field whose body is n bytes.
func sizeMessage(num protowire.Number, n int) int {
	return protowire.SizeTag(num) + protowire.SizeBytes(n)
}

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendDouble(b []byte, num protowire.Number, v float64) []byte {
	bits := math.Float64bits(v)
	if bits == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, bits)
}

// appendHeader starts a sub-message field whose body is n bytes.
func appendHeader(b []byte, num protowire.Number, n int) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendVarint(b, uint64(n))
}
