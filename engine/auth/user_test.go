package auth

import (
	"slices"
	"testing"
)

func TestInOut(t *testing.T) {
	tests := []struct {
		name    string
		u       User
		in, out []string
	}{
		{"no groups is anon both ways", User{Name: "a"}, []string{Anon}, []string{Anon}},
		{"empty slices are no groups", User{Name: "a", Groups: []string{}, GroupsIn: []string{}}, []string{Anon}, []string{Anon}},
		{"both directions", User{Groups: []string{"HQ"}}, []string{"HQ"}, []string{"HQ"}},
		{
			"union sorted and de-duplicated",
			User{Groups: []string{"HQ", "Blue"}, GroupsIn: []string{"Blue", "Alpha", "Alpha"}, GroupsOut: []string{"Red", "HQ"}},
			[]string{"Alpha", "Blue", "HQ"}, []string{"Blue", "HQ", "Red"},
		},
		{"receive only", User{GroupsOut: []string{"Red"}}, nil, []string{"Red"}},
		{"publish only", User{GroupsIn: []string{"Blue"}}, []string{"Blue"}, nil},
		{"explicit anon plus a group", User{Groups: []string{Anon, "HQ"}}, []string{"HQ", Anon}, []string{"HQ", Anon}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.u.In(); !slices.Equal(got, tt.in) {
				t.Errorf("In() = %q, want %q", got, tt.in)
			}
			if got := tt.u.Out(); !slices.Equal(got, tt.out) {
				t.Errorf("Out() = %q, want %q", got, tt.out)
			}
		})
	}
}

func TestInOutDoNotAliasFields(t *testing.T) {
	u := User{Groups: []string{"b", "a"}}
	in := u.In()
	in[0] = "changed"
	if !slices.Equal(u.Groups, []string{"b", "a"}) {
		t.Errorf("In() changed Groups: %q", u.Groups)
	}
}
