package takproto

import (
	"bytes"
	"math"
	"math/rand/v2"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// The schema once more, as data: the tests build a descriptor from it for
// google.golang.org/protobuf's dynamic messages, and check testdata/takmessage.proto
// against it, so that the codec, the .proto file and the reference implementation agree.
type schemaField struct {
	name string
	num  int32
	typ  string // .proto scalar type, or a message name
}

var schema = []struct {
	name   string
	fields []schemaField
}{
	{"TakMessage", []schemaField{{"takControl", 1, "TakControl"}, {"cotEvent", 2, "CotEvent"},
		{"submissionTime", 3, "uint64"}, {"creationTime", 4, "uint64"}}},
	{"TakControl", []schemaField{{"minProtoVersion", 1, "uint32"}, {"maxProtoVersion", 2, "uint32"}}},
	{"CotEvent", []schemaField{{"type", 1, "string"}, {"access", 2, "string"}, {"qos", 3, "string"},
		{"opex", 4, "string"}, {"uid", 5, "string"}, {"sendTime", 6, "uint64"}, {"startTime", 7, "uint64"},
		{"staleTime", 8, "uint64"}, {"how", 9, "string"}, {"lat", 10, "double"}, {"lon", 11, "double"},
		{"hae", 12, "double"}, {"ce", 13, "double"}, {"le", 14, "double"}, {"detail", 15, "Detail"},
		{"caveat", 16, "string"}, {"releaseableTo", 17, "string"}}},
	{"Detail", []schemaField{{"xmlDetail", 1, "string"}, {"contact", 2, "Contact"}, {"group", 3, "Group"},
		{"precisionLocation", 4, "PrecisionLocation"}, {"status", 5, "Status"}, {"takv", 6, "Takv"},
		{"track", 7, "Track"}}},
	{"Contact", []schemaField{{"endpoint", 1, "string"}, {"callsign", 2, "string"}}},
	{"Group", []schemaField{{"name", 1, "string"}, {"role", 2, "string"}}},
	{"PrecisionLocation", []schemaField{{"geopointsrc", 1, "string"}, {"altsrc", 2, "string"}}},
	{"Status", []schemaField{{"battery", 1, "uint32"}}},
	{"Takv", []schemaField{{"device", 1, "string"}, {"platform", 2, "string"}, {"os", 3, "string"},
		{"version", 4, "string"}}},
	{"Track", []schemaField{{"speed", 1, "double"}, {"course", 2, "double"}}},
}

const protoPackage = "atakmap.commoncommo.protobuf.v1"

var scalarTypes = map[string]descriptorpb.FieldDescriptorProto_Type{
	"string": descriptorpb.FieldDescriptorProto_TYPE_STRING,
	"uint64": descriptorpb.FieldDescriptorProto_TYPE_UINT64,
	"uint32": descriptorpb.FieldDescriptorProto_TYPE_UINT32,
	"double": descriptorpb.FieldDescriptorProto_TYPE_DOUBLE,
}

// takMessageDescriptor builds the descriptor of TakMessage from schema.
func takMessageDescriptor(tb testing.TB) protoreflect.MessageDescriptor {
	tb.Helper()
	fdp := &descriptorpb.FileDescriptorProto{
		Name:    proto.String("takmessage.proto"),
		Package: proto.String(protoPackage),
		Syntax:  proto.String("proto3"),
	}
	for _, m := range schema {
		mdp := &descriptorpb.DescriptorProto{Name: proto.String(m.name)}
		for _, f := range m.fields {
			fp := &descriptorpb.FieldDescriptorProto{
				Name:     proto.String(f.name),
				JsonName: proto.String(f.name),
				Number:   proto.Int32(f.num),
				Label:    descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
			}
			if typ, ok := scalarTypes[f.typ]; ok {
				fp.Type = typ.Enum()
			} else {
				fp.Type = descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum()
				fp.TypeName = proto.String("." + protoPackage + "." + f.typ)
			}
			mdp.Field = append(mdp.Field, fp)
		}
		fdp.MessageType = append(fdp.MessageType, mdp)
	}
	fd, err := protodesc.NewFile(fdp, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return fd.Messages().ByName("TakMessage")
}

func TestProtoFileMatchesSchema(t *testing.T) {
	text := string(readFile(t, "testdata/takmessage.proto"))
	if !strings.Contains(text, `syntax = "proto3";`) || !strings.Contains(text, "package "+protoPackage+";") {
		t.Error("takmessage.proto: syntax or package differs")
	}
	msgRe := regexp.MustCompile(`(?s)message (\w+) \{(.*?)\n\}`)
	fieldRe := regexp.MustCompile(`(?m)^\s+(\w+) (\w+) = (\d+);`)
	var got []string
	for _, m := range msgRe.FindAllStringSubmatch(text, -1) {
		for _, f := range fieldRe.FindAllStringSubmatch(m[2], -1) {
			got = append(got, m[1]+"."+f[2]+" "+f[3]+" "+f[1])
		}
	}
	var want []string
	for _, m := range schema {
		for _, f := range m.fields {
			want = append(want, m.name+"."+f.name+" "+strconv.Itoa(int(f.num))+" "+f.typ)
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("takmessage.proto fields:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// protoName is the .proto name of a Go field: the same with a lower-case initial.
func protoName(goName string) protoreflect.Name {
	r := []rune(goName)
	r[0] = unicode.ToLower(r[0])
	return protoreflect.Name(r)
}

// toDynamic copies a Go struct message (pointer) into a dynamic message of descriptor md.
func toDynamic(tb testing.TB, v reflect.Value, md protoreflect.MessageDescriptor) *dynamicpb.Message {
	dm := dynamicpb.NewMessage(md)
	s := v.Elem()
	if s.NumField() != md.Fields().Len() {
		tb.Fatalf("%s has %d fields, the schema %d", s.Type(), s.NumField(), md.Fields().Len())
	}
	for i := range s.NumField() {
		fd := md.Fields().ByName(protoName(s.Type().Field(i).Name))
		if fd == nil {
			tb.Fatalf("%s.%s is not in the schema", s.Type(), s.Type().Field(i).Name)
		}
		f := s.Field(i)
		switch f.Kind() {
		case reflect.Pointer:
			if !f.IsNil() {
				dm.Set(fd, protoreflect.ValueOfMessage(toDynamic(tb, f, fd.Message())))
			}
		case reflect.String:
			dm.Set(fd, protoreflect.ValueOfString(f.String()))
		case reflect.Uint64:
			dm.Set(fd, protoreflect.ValueOfUint64(f.Uint()))
		case reflect.Uint32:
			dm.Set(fd, protoreflect.ValueOfUint32(uint32(f.Uint())))
		case reflect.Float64:
			dm.Set(fd, protoreflect.ValueOfFloat64(f.Float()))
		}
	}
	return dm
}

// fromDynamic copies a dynamic message into v, a pointer to a Go struct message.
func fromDynamic(tb testing.TB, dm protoreflect.Message, v reflect.Value) {
	s := v.Elem()
	for i := range s.NumField() {
		fd := dm.Descriptor().Fields().ByName(protoName(s.Type().Field(i).Name))
		f := s.Field(i)
		switch f.Kind() {
		case reflect.Pointer:
			if dm.Has(fd) {
				f.Set(reflect.New(f.Type().Elem()))
				fromDynamic(tb, dm.Get(fd).Message(), f)
			}
		case reflect.String:
			f.SetString(dm.Get(fd).String())
		case reflect.Uint64, reflect.Uint32:
			f.SetUint(dm.Get(fd).Uint())
		case reflect.Float64:
			f.SetFloat(dm.Get(fd).Float())
		}
	}
}

// crossCheck proves m's encoding compatible with the reference implementation: it decodes
// to m there, and the reference encodes m to the very same bytes.
func crossCheck(t *testing.T, md protoreflect.MessageDescriptor, m *TakMessage) {
	t.Helper()
	mine := m.AppendMarshal(nil)
	dm := dynamicpb.NewMessage(md)
	if err := proto.Unmarshal(mine, dm); err != nil {
		t.Fatalf("reference cannot decode our encoding of %s: %v", dump(m), err)
	}
	var back TakMessage
	fromDynamic(t, dm, reflect.ValueOf(&back))
	if !equalMsg(&back, m) {
		t.Fatalf("reference decodes\n%s\nas\n%s", dump(m), dump(&back))
	}
	theirs, err := proto.MarshalOptions{Deterministic: true}.Marshal(toDynamic(t, reflect.ValueOf(m), md))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(theirs, mine) {
		t.Fatalf("encodings of %s differ:\nours      % x\nreference % x", dump(m), mine, theirs)
	}
	var ours TakMessage
	if err := ours.Unmarshal(theirs); err != nil || !equalMsg(&ours, m) {
		t.Fatalf("we decode the reference encoding as %s, %v", dump(&ours), err)
	}
}

func TestDynamicCrossCheck(t *testing.T) {
	md := takMessageDescriptor(t)
	for _, f := range xmlFixtures {
		t.Run(f.name, func(t *testing.T) { crossCheck(t, md, fixtureMsg(t, f.name)) })
	}
	for _, tc := range codecCases {
		t.Run(tc.name, func(t *testing.T) { crossCheck(t, md, &tc.msg) })
	}
	t.Run("random", func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 2))
		for range 2000 {
			crossCheck(t, md, randomMessage(r))
		}
	})
}

// randomMessage fills each field of a message with probability one half, with values
// that stress the encoding: empty and multi-byte strings, varints of every length, and
// doubles including -0, NaN, infinities and subnormals.
func randomMessage(r *rand.Rand) *TakMessage {
	var m TakMessage
	fill(r, reflect.ValueOf(&m).Elem(), 0)
	return &m
}

func fill(r *rand.Rand, s reflect.Value, depth int) {
	strs := []string{"", "a", "ANDROID-0a1b2c3d4e5f6071", "äö€𝄞", "<x a='1'/>", strings.Repeat("z", 200)}
	floats := []float64{0, math.Copysign(0, -1), 1, -122.3491337, 9999999, math.NaN(), math.Inf(1),
		math.Inf(-1), 5e-324, math.MaxFloat64}
	for i := range s.NumField() {
		if r.IntN(2) == 0 {
			continue
		}
		f := s.Field(i)
		switch f.Kind() {
		case reflect.Pointer:
			if depth < 4 {
				f.Set(reflect.New(f.Type().Elem()))
				fill(r, f.Elem(), depth+1)
			}
		case reflect.String:
			f.SetString(strs[r.IntN(len(strs))])
		case reflect.Uint64:
			f.SetUint(r.Uint64() >> r.IntN(64))
		case reflect.Uint32:
			f.SetUint(uint64(r.Uint32() >> r.IntN(32)))
		case reflect.Float64:
			if r.IntN(2) == 0 {
				f.SetFloat(floats[r.IntN(len(floats))])
			} else {
				f.SetFloat(math.Float64frombits(r.Uint64()))
			}
		}
	}
}
