package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/rs/zerolog"

	"cotd/configs"
	"cotd/engine"
	"cotd/engine/directory"
	"cotd/engine/marti"
	"cotd/engine/web"
)

// newConsole builds the web console (engine/web) on the engine's
// Directory, or returns nil when [web] enabled = false or there is no
// admin listener to serve it on.
func newConsole(ctx context.Context, srv *engine.Server, dir directory.Directory, cfg *configs.Config, m *marti.Server, log zerolog.Logger) *web.Handler {
	if !cfg.Web.Enabled || cfg.Admin.Addr == "" {
		return nil
	}
	o := web.Options{
		Config:   cfg.Web,
		Counters: engineCounters(srv),
		Log:      log.With().Str("component", "web").Logger(),
	}
	if cfg.Auth.UsersFile != "" {
		o.Users = func() []web.User { return consoleUsers(srv) }
	}
	if m != nil {
		o.Files = martiFiles{m}
	}
	return web.New(ctx, dir, o)
}

// engineCounters reads the figures the console charts from the engine's
// and the broker's counters: all lock-free loads.
func engineCounters(s *engine.Server) func() web.Counters {
	return func() web.Counters {
		st, bs := s.Stats(), s.Broker().Stats()
		var c web.Counters
		for i := range st.Open {
			c.Connections += st.Open[i].Value()
		}
		for i := range st.Handshakes {
			c.Handshakes += st.Handshakes[i].Value()
		}
		for i := range bs.Drops {
			c.Drops += bs.Drops[i].Value()
		}
		c.Deliveries = bs.DeliveredAll()
		return c
	}
}

// consoleUsers is the users file as the engine last loaded it, so that a
// SIGHUP reload shows in the console as soon as the engine applies it.
func consoleUsers(srv *engine.Server) []web.User {
	us := srv.Users().Users()
	out := make([]web.User, 0, len(us))
	for _, u := range us {
		out = append(out, web.User{Name: u.Name, In: u.In(), Out: u.Out(), Password: u.PasswordHash != "", Disabled: u.Disabled})
	}
	return out
}

// martiFiles shows Marti's stored files in the console: all of them,
// whatever their groups, since the console's users are administrators.
type martiFiles struct{ m *marti.Server }

func fileOf(f marti.FileMeta) web.File {
	who := f.Submitter
	if who == "" {
		who = f.CreatorUID // an anonymous upload (plain HTTP) names only its device
	}
	return web.File{ID: f.Hash, Name: f.Name, MIME: f.MIMEType, Size: f.Size, Submitter: who, Uploaded: f.Submitted}
}

func (x martiFiles) List(ctx context.Context) ([]web.File, error) {
	fs, err := x.m.Files(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]web.File, len(fs))
	for i, f := range fs {
		out[i] = fileOf(f)
	}
	return out, nil
}

func (x martiFiles) Open(ctx context.Context, id string) (io.ReadCloser, web.File, error) {
	rc, f, err := x.m.OpenFile(ctx, id)
	if errors.Is(err, marti.ErrNotFound) {
		return nil, web.File{}, fmt.Errorf("%w: %w", web.ErrNoFile, err)
	}
	if err != nil {
		return nil, web.File{}, err
	}
	return rc, fileOf(f), nil
}
