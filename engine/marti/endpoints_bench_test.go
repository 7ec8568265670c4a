package marti

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"cotd/configs"
	"cotd/cot"
	"cotd/engine/directory"
)

// snapshotDir is a Directory whose Clients is a fixed snapshot: the
// benchmark measures Marti's share of clientEndPoints (filtering by groups,
// merging history, encoding), not the engine's snapshot.
type snapshotDir struct {
	directory.Directory
	clients []directory.Client
}

func (d snapshotDir) Clients() []directory.Client { return d.clients }

// BenchmarkClientEndPoints5000: clientEndPoints with 5,000 connected
// clients in 50 groups, for a caller in 5 of them (500 listed).
//
//	go test ./engine/marti -run '^$' -bench ClientEndPoints -benchtime 200x
func BenchmarkClientEndPoints5000(b *testing.B) {
	var clients []directory.Client
	for i := range 5000 {
		g := []string{fmt.Sprintf("g%02d", i%50)}
		uid := fmt.Sprintf("ANDROID-%05d", i)
		h := &cot.Header{UID: uid, Type: "a-f-G-U-C", Callsign: fmt.Sprintf("CS%05d", i), GroupName: "Cyan", GroupRole: "Team Member"}
		clients = append(clients, directory.Client{ConnID: uint64(i + 1), Identity: fmt.Sprintf("user%d", i), UID: uid,
			Callsign: h.Callsign, In: g, Out: g, LastSeen: time.Now(), LastSA: &directory.Message{Header: h}})
	}
	cfg := configs.Default()
	cfg.Marti.HTTPSAddr = ""
	cfg.Marti.HTTPAddr = "127.0.0.1:0"
	cfg.Marti.FilesDir = filepath.Join(b.TempDir(), "files")
	cfg.TCP.Groups = []string{"g00", "g01", "g02", "g03", "g04"}
	s, err := New(Options{Config: cfg, Dir: snapshotDir{clients: clients}, Log: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	h := s.Handler()
	req := httptest.NewRequest("GET", "/Marti/api/clientEndPoints", nil).WithContext(context.Background())
	req.TLS = nil
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || rec.Body.Len() < 500*100 {
			b.Fatalf("%d, %d bytes", rec.Code, rec.Body.Len())
		}
	}
}
