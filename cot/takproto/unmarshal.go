package takproto

import (
	"fmt"
	"math"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// block holds every sub-message of one decoded TakMessage, so that decoding allocates them
// all at once. The pointers in the message point into it.
type block struct {
	control TakControl
	event   CotEvent
	detail  Detail
	contact Contact
	group   Group
	precLoc PrecisionLocation
	status  Status
	takv    Takv
	track   Track
}

// Unmarshal resets m and decodes the protobuf encoding b into it, with proto3 semantics:
// unknown fields are skipped, a known field with an unexpected wire type is treated as
// unknown, a repeated scalar field keeps its last value and a repeated sub-message merges.
// Truncated or invalid wire data and strings that are not UTF-8 are rejected with an error
// wrapping ErrMalformed, and m is left reset. No input makes it panic.
//
// It allocates at most twice, and never for b's sake: the strings of m all slice one copy of
// b (so any one of them keeps that copy alive), and the sub-messages share one block. b is
// not retained.
func (m *TakMessage) Unmarshal(b []byte) error {
	*m = TakMessage{}
	d := decoder{src: b}
	if err := d.takMessage(0, len(b), m); err != nil {
		*m = TakMessage{}
		return err
	}
	return nil
}

// decoder walks one payload. Positions are offsets into src, so that a string field can be
// sliced from str, the one copy of src.
type decoder struct {
	src []byte
	str string
	blk *block
}

// field is one decoded field: v holds a varint or fixed value, [s, e) locates the value of a
// length-delimited one in src.
type field struct {
	num  protowire.Number
	typ  protowire.Type
	v    uint64
	s, e int
}

// next decodes the field that starts at pos; the enclosing message ends at end. It returns
// the position after the field.
func (d *decoder) next(pos, end int) (field, int, error) {
	var f field
	b := d.src[pos:end]
	// Fast path for the common case, a length-delimited field with a one-byte tag and a
	// one-byte length: every sub-message and string of a typical event but xmlDetail.
	if len(b) >= 2 && b[0] >= 1<<3 && b[0] < 0x80 && b[0]&7 == byte(protowire.BytesType) &&
		b[1] < 0x80 && int(b[1]) <= len(b)-2 {
		f.num, f.typ = protowire.Number(b[0]>>3), protowire.BytesType
		f.s, f.e = pos+2, pos+2+int(b[1])
		return f, f.e, nil
	}
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return f, 0, d.fail(pos, "tag", protowire.ParseError(n))
	}
	if num > protowire.MaxValidNumber {
		return f, 0, d.fail(pos, "tag", fmt.Errorf("field number %d out of range", num))
	}
	f.num, f.typ = num, typ
	b = b[n:]
	var m int
	switch typ {
	case protowire.VarintType:
		f.v, m = protowire.ConsumeVarint(b)
	case protowire.Fixed64Type:
		f.v, m = protowire.ConsumeFixed64(b)
	case protowire.BytesType:
		var v []byte
		v, m = protowire.ConsumeBytes(b)
		f.s = pos + n + m - len(v)
		f.e = f.s + len(v)
	default:
		// Fixed32 and groups occur in no field of the schema; they are skipped as unknown.
		m = protowire.ConsumeFieldValue(num, typ, b)
	}
	if m < 0 {
		return f, 0, d.fail(pos, fmt.Sprintf("field %d", num), protowire.ParseError(m))
	}
	return f, pos + n + m, nil
}

func (d *decoder) fail(pos int, what string, err error) error {
	return fmt.Errorf("%w: %s at offset %d: %v", ErrMalformed, what, pos, err)
}

// string returns the value of a length-delimited field as a string, rejecting invalid UTF-8
// as proto3 requires of string fields.
func (d *decoder) string(f field) (string, error) {
	if f.s == f.e {
		return "", nil
	}
	if !utf8.Valid(d.src[f.s:f.e]) {
		return "", d.fail(f.s, fmt.Sprintf("field %d", f.num), fmt.Errorf("string is not UTF-8"))
	}
	if d.str == "" {
		d.str = string(d.src)
	}
	return d.str[f.s:f.e], nil
}

func (d *decoder) block() *block {
	if d.blk == nil {
		d.blk = new(block)
	}
	return d.blk
}

// Each decode function below sets the fields it meets and leaves the others alone, which is
// how a repeated sub-message merges into the first.

func (d *decoder) takMessage(pos, end int, m *TakMessage) error {
	for pos < end {
		f, n, err := d.next(pos, end)
		if err != nil {
			return err
		}
		pos = n
		switch {
		case f.num == numTakControl && f.typ == protowire.BytesType:
			if m.TakControl == nil {
				m.TakControl = &d.block().control
			}
			err = d.takControl(f.s, f.e, m.TakControl)
		case f.num == numCotEvent && f.typ == protowire.BytesType:
			if m.CotEvent == nil {
				m.CotEvent = &d.block().event
			}
			err = d.cotEvent(f.s, f.e, m.CotEvent)
		case f.num == numSubmissionTime && f.typ == protowire.VarintType:
			m.SubmissionTime = f.v
		case f.num == numCreationTime && f.typ == protowire.VarintType:
			m.CreationTime = f.v
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (d *decoder) takControl(pos, end int, c *TakControl) error {
	for pos < end {
		f, n, err := d.next(pos, end)
		if err != nil {
			return err
		}
		pos = n
		if f.typ != protowire.VarintType {
			continue
		}
		switch f.num {
		case numMinProtoVersion:
			c.MinProtoVersion = uint32(f.v)
		case numMaxProtoVersion:
			c.MaxProtoVersion = uint32(f.v)
		}
	}
	return nil
}

func (d *decoder) cotEvent(pos, end int, e *CotEvent) error {
	for pos < end {
		f, n, err := d.next(pos, end)
		if err != nil {
			return err
		}
		pos = n
		switch f.typ {
		case protowire.BytesType:
			var s *string
			switch f.num {
			case numType:
				s = &e.Type
			case numAccess:
				s = &e.Access
			case numQos:
				s = &e.Qos
			case numOpex:
				s = &e.Opex
			case numUid:
				s = &e.Uid
			case numHow:
				s = &e.How
			case numCaveat:
				s = &e.Caveat
			case numReleaseableTo:
				s = &e.ReleaseableTo
			case numDetail:
				if e.Detail == nil {
					e.Detail = &d.block().detail
				}
				err = d.detail(f.s, f.e, e.Detail)
			}
			if s != nil {
				*s, err = d.string(f)
			}
		case protowire.VarintType:
			switch f.num {
			case numSendTime:
				e.SendTime = f.v
			case numStartTime:
				e.StartTime = f.v
			case numStaleTime:
				e.StaleTime = f.v
			}
		case protowire.Fixed64Type:
			v := math.Float64frombits(f.v)
			switch f.num {
			case numLat:
				e.Lat = v
			case numLon:
				e.Lon = v
			case numHae:
				e.Hae = v
			case numCe:
				e.Ce = v
			case numLe:
				e.Le = v
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (d *decoder) detail(pos, end int, dt *Detail) error {
	for pos < end {
		f, n, err := d.next(pos, end)
		if err != nil {
			return err
		}
		pos = n
		if f.typ != protowire.BytesType {
			continue
		}
		switch f.num {
		case numXmlDetail:
			dt.XmlDetail, err = d.string(f)
		case numContact:
			if dt.Contact == nil {
				dt.Contact = &d.block().contact
			}
			err = d.strings(f.s, f.e, &dt.Contact.Endpoint, &dt.Contact.Callsign)
		case numGroup:
			if dt.Group == nil {
				dt.Group = &d.block().group
			}
			err = d.strings(f.s, f.e, &dt.Group.Name, &dt.Group.Role)
		case numPrecisionLocation:
			if dt.PrecisionLocation == nil {
				dt.PrecisionLocation = &d.block().precLoc
			}
			p := dt.PrecisionLocation
			err = d.strings(f.s, f.e, &p.Geopointsrc, &p.Altsrc)
		case numStatus:
			if dt.Status == nil {
				dt.Status = &d.block().status
			}
			err = d.status(f.s, f.e, dt.Status)
		case numTakv:
			if dt.Takv == nil {
				dt.Takv = &d.block().takv
			}
			t := dt.Takv
			err = d.strings(f.s, f.e, &t.Device, &t.Platform, &t.Os, &t.Version)
		case numTrack:
			if dt.Track == nil {
				dt.Track = &d.block().track
			}
			err = d.track(f.s, f.e, dt.Track)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// strings decodes a message whose fields are all strings, numbered 1 to len(dst).
func (d *decoder) strings(pos, end int, dst ...*string) error {
	for pos < end {
		f, n, err := d.next(pos, end)
		if err != nil {
			return err
		}
		pos = n
		if f.typ == protowire.BytesType && f.num >= 1 && int(f.num) <= len(dst) {
			if *dst[f.num-1], err = d.string(f); err != nil {
				return err
			}
		}
	}
	return nil
}

func (d *decoder) status(pos, end int, s *Status) error {
	for pos < end {
		f, n, err := d.next(pos, end)
		if err != nil {
			return err
		}
		pos = n
		if f.num == numBattery && f.typ == protowire.VarintType {
			s.Battery = uint32(f.v)
		}
	}
	return nil
}

func (d *decoder) track(pos, end int, t *Track) error {
	for pos < end {
		f, n, err := d.next(pos, end)
		if err != nil {
			return err
		}
		pos = n
		if f.typ != protowire.Fixed64Type {
			continue
		}
		switch f.num {
		case numSpeed:
			t.Speed = math.Float64frombits(f.v)
		case numCourse:
			t.Course = math.Float64frombits(f.v)
		}
	}
	return nil
}
