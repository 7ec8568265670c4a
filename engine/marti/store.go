package marti

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"time"

	"cotd/engine/store"
)

// storeHistory is History over engine/store: what survives a restart and
// is filtered and bounded in SQL. The store is fed by whoever archives the
// routed events and connection changes (the store feed), not by Marti.
type storeHistory struct{ st store.Store }

func scope(groups []string) store.Scope { return store.Scope{Groups: groups} }

func recordOf(e store.EventRecord) Record {
	doc := e.XML()
	// The store rebuilds the event with a declaration; Marti adds its own.
	if i := bytes.Index(doc, []byte("<event")); i > 0 {
		doc = doc[i:]
	}
	return Record{At: e.ServerTime, UID: e.UID, Type: e.Type, Callsign: e.SenderCallsign,
		Lat: e.Lat, Lon: e.Lon, HAE: e.HAE, Groups: e.Groups, XML: doc}
}

func (h storeHistory) Latest(ctx context.Context, uid string, groups []string) (Record, bool, error) {
	e, err := h.st.LatestEvent(ctx, uid, scope(groups))
	if errors.Is(err, store.ErrNotFound) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, err
	}
	return recordOf(e), true, nil
}

func (h storeHistory) Events(ctx context.Context, q Query) ([]Record, error) {
	eq := store.EventQuery{UID: q.UID, From: q.From, To: q.To, Scope: scope(q.Groups), Limit: q.Limit}
	if eq.Limit <= 0 {
		eq.Limit = maxEvents
	}
	if !eq.To.IsZero() {
		eq.To = eq.To.Add(time.Nanosecond) // the store's To is exclusive, Marti's inclusive
	}
	if q.SAOnly {
		eq.TypePrefix = "a-"
	}
	evs, err := h.st.Events(ctx, eq)
	out := make([]Record, 0, len(evs))
	for _, e := range evs {
		out = append(out, recordOf(e))
	}
	return out, err
}

func (h storeHistory) Disconnected(ctx context.Context, since time.Time, groups []string) ([]Endpoint, error) {
	eps, err := h.st.ClientEndpoints(ctx, store.EndpointQuery{Since: since, Scope: scope(groups)})
	var out []Endpoint
	for _, e := range eps {
		if e.LastStatus != store.StatusDisconnected {
			continue // who is connected now comes from the engine
		}
		out = append(out, Endpoint{UID: e.UID, Callsign: e.Callsign, Identity: e.User, Team: e.Team, Role: e.Role,
			Groups: e.Groups, At: e.LastEventTime})
	}
	slices.SortFunc(out, func(a, b Endpoint) int { return a.At.Compare(b.At) })
	return out, err
}

// storeFiles is FileIndex over engine/store's resource table.
type storeFiles struct{ st store.Store }

func metaOf(f store.FileRecord) FileMeta {
	return FileMeta{Hash: f.Hash, UID: f.UID, Name: f.Name, MIMEType: f.MIMEType, Keywords: f.Keywords, Tool: f.Tool,
		Submitter: f.Submitter, CreatorUID: f.CreatorUID, Size: f.Size, Submitted: f.Created, Groups: f.Groups, PrimaryKey: f.ID}
}

func (x storeFiles) Put(ctx context.Context, m FileMeta) (FileMeta, error) {
	f, err := x.st.PutFile(ctx, store.FileRecord{Hash: m.Hash, UID: m.UID, Name: m.Name, Filename: m.Name,
		MIMEType: m.MIMEType, Size: m.Size, Keywords: m.Keywords, Submitter: m.Submitter, CreatorUID: m.CreatorUID,
		Tool: m.Tool, Groups: m.Groups, Created: m.Submitted})
	if err != nil {
		return FileMeta{}, err
	}
	return metaOf(f), nil
}

func (x storeFiles) ByHash(ctx context.Context, hash string) (FileMeta, bool, error) {
	f, err := x.st.File(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return FileMeta{}, false, nil
	}
	if err != nil {
		return FileMeta{}, false, err
	}
	return metaOf(f), true, nil
}

// ByUID scans the newest files: the store has no lookup by uid yet, and
// only content?uid= (rare; ATAK uses hashes) needs it.
func (x storeFiles) ByUID(ctx context.Context, uid string) (FileMeta, bool, error) {
	fs, err := x.st.SearchFiles(ctx, store.FileQuery{Scope: store.Everything})
	for _, f := range fs {
		if f.UID == uid {
			return metaOf(f), true, nil
		}
	}
	return FileMeta{}, false, err
}

func (x storeFiles) SetTool(ctx context.Context, hash, tool string) error {
	err := x.st.SetFileTool(ctx, hash, tool)
	if errors.Is(err, store.ErrNotFound) {
		return ErrNotFound
	}
	return err
}

func (x storeFiles) All(ctx context.Context) ([]FileMeta, error) {
	fs, err := x.st.SearchFiles(ctx, store.FileQuery{Scope: store.Everything})
	out := make([]FileMeta, 0, len(fs))
	for i := len(fs) - 1; i >= 0; i-- { // the store answers newest first
		out = append(out, metaOf(fs[i]))
	}
	return out, err
}

// RemoveFile deletes a stored file's bytes; the store calls it (through
// its OnFilePruned option) after retention removed the file's metadata.
func (s *Server) RemoveFile(hash string) error {
	if !validHash(hash) {
		return ErrNotFound
	}
	return s.blobs.remove(hash)
}
