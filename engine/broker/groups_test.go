package broker

import (
	"testing"
)

func TestMembershipReach(t *testing.T) {
	b := New(Options{Shards: 1})
	mk := func(in, out []string) *Client { return NewClient(1, nil, b.Membership(in, out)) }
	blue := mk([]string{"Blue"}, []string{"Blue"})
	red := mk([]string{"Red"}, []string{"Red"})
	inOnly := mk([]string{"Blue"}, nil)
	outOnly := mk(nil, []string{"Blue"})
	anon := NewClient(2, nil, nil)
	anon2 := mk([]string{Anon}, []string{Anon})
	// Enough groups to need a second word in the bit set.
	for i := range 70 {
		b.Membership([]string{string(rune('a' + i%26))}, []string{string(rune('A'+i%26)) + "x" + string(rune('0'+i/26))})
	}
	far := mk([]string{"zz-far"}, []string{"zz-far", "Blue"})
	cases := []struct {
		name string
		s, r *Client
		want bool
	}{
		{"same group", blue, blue, true},
		{"other group", blue, red, false},
		{"in-only publishes", inOnly, blue, true},
		{"in-only hears nothing", blue, inOnly, false},
		{"out-only hears", blue, outOnly, true},
		{"out-only publishes nothing", outOnly, blue, false},
		{"anon to anon", anon, anon2, true},
		{"anon to blue", anon, blue, false},
		{"high bit group hears blue", blue, far, true},
		{"high bit group to blue", far, blue, false},
	}
	for _, tc := range cases {
		if got := reaches(tc.s, tc.r); got != tc.want {
			t.Errorf("%s: reaches = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestRetype(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`<event version="2.0" uid="x" type="b-t-f" how="h"><detail/></event>`, `<event version="2.0" uid="x" type="b-t-f-s" how="h"><detail/></event>`},
		{`<event uid='x' type='b-t-f'><detail type="keep"/></event>`, `<event uid='x' type='b-t-f-s'><detail type="keep"/></event>`},
	} {
		got, ok := retype([]byte(tc.in), "b-t-f-s")
		if !ok || string(got) != tc.want {
			t.Errorf("retype(%s) = %s, %v", tc.in, got, ok)
		}
	}
	if _, ok := retype([]byte(`<event uid="x"><detail type="b"/></event>`), "y"); ok {
		t.Error("retype changed a type attribute outside the start tag")
	}
}
