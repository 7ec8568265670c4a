package storefeed_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"cotd/configs"
	et "cotd/engine/enginetest"
	"cotd/engine/store"
	"cotd/engine/store/storetest"
	"cotd/tlsstate/pki"
)

// backend is one database the end-to-end tests run against.
type backend struct {
	name string
	// use points the store section at a fresh, empty database.
	use func(t *testing.T, c *configs.Store)
}

var backends = []backend{
	{"sqlite", func(t *testing.T, c *configs.Store) { c.Path = filepath.Join(t.TempDir(), "cotd.db") }},
	{"postgres", func(t *testing.T, c *configs.Store) { c.URL = storetest.Schema(t, "cotd_feed_") }},
}

// q rewrites ? placeholders for PostgreSQL.
func q(c configs.Store, query string) string {
	if c.URL == "" {
		return query
	}
	out := make([]byte, 0, len(query)+8)
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			out = append(out, '$')
			out = strconv.AppendInt(out, int64(n), 10)
			continue
		}
		out = append(out, query[i])
	}
	return string(out)
}

// usersTOML gives the test users their groups: alice and bob share Blue,
// red hears only Red.
const usersTOML = `
[[user]]
name = "alice"
groups = ["Blue"]

[[user]]
name = "bob"
groups = ["Blue"]

[[user]]
name = "red"
groups = ["Red"]
`

// world is a TLS server with a store on one backend and the users above.
type world struct {
	h *et.Harness
	p *et.PKI
}

func newWorld(t *testing.T, b backend, mutate func(*configs.Config)) *world {
	t.Helper()
	users := filepath.Join(t.TempDir(), "users.toml")
	if err := os.WriteFile(users, []byte(usersTOML), 0o600); err != nil {
		t.Fatal(err)
	}
	p := et.NewPKI(t, pki.KeyECDSAP256)
	h := et.StartTLS(t, p, func(c *configs.Config) {
		c.Auth.UsersFile = users
		c.Store.Enabled = true
		b.use(t, &c.Store)
		if mutate != nil {
			mutate(c)
		}
	})
	return &world{h: h, p: p}
}

// dial connects user (the certificate CN) and announces it with an SA as
// uid/callsign.
func (w *world) dial(t *testing.T, user, uid, callsign string) *et.Client {
	t.Helper()
	c := et.DialTLS(t, w.h.TLSAddr(), w.p.Client(t, user))
	c.SendEvent(et.SA(uid, callsign, "a-f-G-U-C"))
	return c
}

// sync waits until the store wrote everything the feed handed it so far.
func (w *world) sync(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), et.Wait)
	defer cancel()
	if err := w.h.Store.Sync(ctx); err != nil {
		t.Fatalf("store Sync: %v", err)
	}
}

// status is uid's last status in client_endpoint, or StatusUnknown.
func (w *world) status(t *testing.T, uid string) store.ConnStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), et.Wait)
	defer cancel()
	eps, err := w.h.Store.ClientEndpoints(ctx, store.EndpointQuery{Scope: store.Everything})
	if err != nil {
		t.Fatalf("ClientEndpoints: %v", err)
	}
	for _, e := range eps {
		if e.UID == uid {
			return e.LastStatus
		}
	}
	return store.StatusUnknown
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), et.Wait)
	t.Cleanup(cancel)
	return ctx
}
