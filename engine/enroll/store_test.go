package enroll_test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"cotd/engine/directory"
	"cotd/engine/enroll"
	"cotd/tlsstate/pki"
)

// Of many concurrent signings with one token, exactly one gets it.
func TestTokenIsConsumedOnceUnderConcurrency(t *testing.T) {
	st := enroll.NewFileStore(filepath.Join(t.TempDir(), "enrollment.json"))
	now := time.Now()
	token, err := enroll.NewToken(st, "dave", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := st.ConsumeToken("dave", token, now)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Errorf("%d consumers won, want 1", wins)
	}
	if s, _ := st.CheckToken("dave", token, now.Add(11*time.Minute)); s != enroll.TokenInvalid {
		t.Errorf("a used token 11 minutes later: %v", s)
	}
}

// disconnects records what the watcher asks the engine to close.
type disconnects struct {
	mu   sync.Mutex
	sels []directory.Selector
}

func (d *disconnects) Disconnect(sel directory.Selector, reason directory.Reason) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if reason == directory.ReasonRevoked {
		d.sels = append(d.sels, sel)
	}
	return 1
}

// A CRL that the CA did not sign is not applied; a good one is, once.
func TestWatcherAppliesOnlyTheCAsCRL(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.CreateCA(filepath.Join(dir, "ca"), "Team CA", pki.KeyECDSAP256, 0)
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.NewCA("Other CA", pki.KeyECDSAP256, 0)
	if err != nil {
		t.Fatal(err)
	}
	caPath, _ := pki.Paths(filepath.Join(dir, "ca"), pki.CAName)
	crl := filepath.Join(dir, "crl.pem")
	st := enroll.NewFileStore(filepath.Join(dir, "enrollment.json"))
	if err := st.RecordCert(enroll.CertRecord{User: "alice", Serial: "12345", Issued: time.Now()}); err != nil {
		t.Fatal(err)
	}
	reloads := 0
	var d disconnects
	var stats enroll.Stats
	w, err := enroll.NewWatcher(crl, caPath, st, func() error { reloads++; return nil }, &d, &stats, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	w.Check() // no CRL yet: nothing to apply
	if _, err := st.Revoke(enroll.RevokeSelector{User: "alice"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := enroll.WriteCRL(st, other, crl, time.Now()); err == nil {
		// WriteCRL signs with the bundle it is given: a foreign CRL.
		w.Check()
	} else {
		t.Fatal(err)
	}
	if reloads != 0 || len(d.sels) != 0 || stats.CRLApplied.Value() != 0 {
		t.Fatalf("a CRL from another CA was applied: reloads %d, disconnects %v", reloads, d.sels)
	}
	if err := os.Remove(crl); err != nil {
		t.Fatal(err)
	}
	if err := enroll.WriteCRL(st, ca, crl, time.Now()); err != nil {
		t.Fatal(err)
	}
	w.Check()
	w.Check() // unchanged: not applied twice
	if reloads != 1 || len(d.sels) != 1 || d.sels[0].Identity != "alice" || stats.CRLApplied.Value() != 1 {
		t.Errorf("reloads %d, disconnects %+v, applied %d", reloads, d.sels, stats.CRLApplied.Value())
	}
}
