package enroll

import (
	"net/netip"
	"testing"
	"time"
)

// fakeClock is the throttle's time, moved by the test.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestThrottleBacksOffPerSourceAndUser(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	th := newThrottle(3, time.Second, 8*time.Second)
	th.now = clk.now
	attacker := netip.MustParseAddr("192.0.2.1")
	owner := netip.MustParseAddr("198.51.100.7")

	for i := 0; i < 3; i++ {
		if ok, _ := th.allow(attacker, "alice"); !ok {
			t.Fatalf("failure %d refused within the free failures", i+1)
		}
		th.fail(attacker, "alice")
	}
	if ok, _ := th.allow(attacker, "alice"); !ok {
		t.Fatal("three failures are free")
	}
	th.fail(attacker, "alice") // 4th: 1 s lock-out
	ok, wait := th.allow(attacker, "alice")
	if ok || wait != time.Second {
		t.Fatalf("after 4 failures: ok=%v wait=%v, want a 1s lock-out", ok, wait)
	}
	// Another user from the same source is locked out too: it is the source.
	if ok, _ := th.allow(attacker, "carol"); ok {
		t.Error("the source's lock-out did not cover another user")
	}
	// The real user from elsewhere is not.
	if ok, _ := th.allow(owner, "alice"); !ok {
		t.Error("alice's owner locked out from another address")
	}
	// Doubling, capped.
	for _, want := range []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second} {
		clk.t = clk.t.Add(time.Hour)
		th.fail(attacker, "alice")
		if _, wait := th.allow(attacker, "alice"); wait != want {
			t.Errorf("lock-out %v, want %v", wait, want)
		}
	}
	clk.t = clk.t.Add(9 * time.Second)
	if ok, _ := th.allow(attacker, "alice"); !ok {
		t.Error("lock-out did not end")
	}
}

// An attacker spread over many addresses (each under the per-source limit)
// is stopped by the user's count on those addresses, not on others.
func TestThrottleUserAcrossSources(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	th := newThrottle(3, time.Second, time.Minute)
	th.now = clk.now
	var sources []netip.Addr
	for i := 1; i <= 4; i++ {
		src := netip.AddrFrom4([4]byte{203, 0, 113, byte(i)})
		sources = append(sources, src)
		th.fail(src, "alice") // one failure each: no source is over its limit
	}
	for _, src := range sources {
		if ok, _ := th.allow(src, "alice"); ok {
			t.Errorf("%v may still guess alice's password after the user's 4th failure", src)
		}
		if ok, _ := th.allow(src, "carol"); !ok {
			t.Errorf("%v locked out of carol, who never failed", src)
		}
	}
	if ok, _ := th.allow(netip.MustParseAddr("198.51.100.7"), "alice"); !ok {
		t.Error("alice locked out from an address that never failed")
	}
	// A success clears that source for the user.
	th.succeed(sources[0], "alice")
	if ok, _ := th.allow(sources[0], "alice"); !ok {
		t.Error("a successful login did not clear its source")
	}
}

func TestThrottleKeysIPv6ByPrefix(t *testing.T) {
	th := newThrottle(1, time.Second, time.Second)
	a := netip.MustParseAddr("2001:db8:1:2::1")
	b := netip.MustParseAddr("2001:db8:1:2:ffff::9") // same /64
	c := netip.MustParseAddr("2001:db8:1:3::1")      // another /64
	th.fail(a, "")
	th.fail(a, "")
	if ok, _ := th.allow(b, "x"); ok {
		t.Error("an address in the same /64 escaped the lock-out")
	}
	if ok, _ := th.allow(c, "x"); !ok {
		t.Error("another /64 locked out")
	}
	if sourceKey(netip.MustParseAddr("::ffff:192.0.2.1")) != sourceKey(netip.MustParseAddr("192.0.2.1")) {
		t.Error("an IPv4-mapped address is keyed apart from its IPv4 form")
	}
}

func TestThrottleBoundsMemory(t *testing.T) {
	th := newThrottle(5, time.Second, time.Second)
	for i := 0; i < maxTracked+100; i++ {
		th.fail(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), "")
	}
	if n := len(th.sources); n > maxTracked {
		t.Errorf("%d sources tracked, bound %d", n, maxTracked)
	}
}
