package enroll

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"cotd/engine/directory"
	"cotd/tlsstate/pki"
)

// Revoke marks what sel picks as revoked in store and rewrites the CRL at
// crlPath, signed by ca: every revoked record, plus whatever the previous
// CRL listed (so nothing is ever un-revoked by accident). It returns the
// records it revoked now. A running server applies the new CRL within
// enroll.crl_check (see Watcher).
func Revoke(store Store, ca *pki.Bundle, crlPath string, sel RevokeSelector, now time.Time) ([]CertRecord, error) {
	if crlPath == "" {
		return nil, ErrNoCRL
	}
	revoked, err := store.Revoke(sel, now)
	if err != nil {
		return nil, err
	}
	return revoked, WriteCRL(store, ca, crlPath, now)
}

// WriteCRL rewrites the CRL at crlPath from the store's revoked records
// and the previous CRL's entries, numbered one above the previous.
func WriteCRL(store Store, ca *pki.Bundle, crlPath string, now time.Time) error {
	if crlPath == "" {
		return ErrNoCRL
	}
	entries := map[string]pki.Revoked{}
	number := big.NewInt(1)
	prev, err := pki.ReadCRL(crlPath, ca.Cert)
	switch {
	case err == nil:
		for _, e := range prev.RevokedCertificateEntries {
			entries[e.SerialNumber.String()] = pki.Revoked{Serial: e.SerialNumber, At: e.RevocationTime}
		}
		if prev.Number != nil {
			number.Add(prev.Number, big.NewInt(1))
		}
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	recs, err := store.RevokedCerts()
	if err != nil {
		return err
	}
	for _, r := range recs {
		n, ok := new(big.Int).SetString(r.Serial, 10)
		if !ok {
			return fmt.Errorf("%w: serial %q is not a decimal number", ErrState, r.Serial)
		}
		if _, had := entries[r.Serial]; !had {
			entries[r.Serial] = pki.Revoked{Serial: n, At: r.Revoked}
		}
	}
	list := make([]pki.Revoked, 0, len(entries))
	for _, e := range entries {
		list = append(list, e)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Serial.Cmp(list[j].Serial) < 0 })
	pemCRL, err := ca.CreateCRL(list, number, now)
	if err != nil {
		return err
	}
	return pki.WriteFileAtomic(crlPath, pemCRL, 0o644)
}

// ParseSerial reads a serial number as `cotd` prints it (decimal) or as
// openssl does (hex, with or without colons, "0x" prefixed or not when it
// has hex letters). It returns the decimal form.
func ParseSerial(s string) (string, bool) {
	if n, ok := new(big.Int).SetString(s, 10); ok && n.Sign() > 0 {
		return n.String(), true
	}
	h := s
	if len(h) > 2 && (h[:2] == "0x" || h[:2] == "0X") {
		h = h[2:]
	}
	clean := make([]byte, 0, len(h))
	for i := 0; i < len(h); i++ {
		if h[i] != ':' {
			clean = append(clean, h[i])
		}
	}
	if n, ok := new(big.Int).SetString(string(clean), 16); ok && n.Sign() > 0 {
		return n.String(), true
	}
	return "", false
}

// Watcher applies a changed CRL to the running server: it reloads the
// stream listener's TLS (new handshakes refuse the revoked certificates)
// and closes the connections of the users whose certificates were newly
// revoked. It polls the file because `cotd certs revoke` runs in another
// process.
type Watcher struct {
	path, caPath string
	store        Store
	reload       func() error
	dir          Disconnecter
	stats        *Stats
	log          zerolog.Logger

	mu    sync.Mutex
	key   fileKey
	known map[string]bool // serials already applied
}

// NewWatcher reads the current CRL (if any) as already applied.
func NewWatcher(path, caPath string, store Store, reload func() error, dir Disconnecter, stats *Stats, log zerolog.Logger) (*Watcher, error) {
	w := &Watcher{path: path, caPath: caPath, store: store, reload: reload, dir: dir, stats: stats, log: log,
		known: map[string]bool{}}
	serials, key, err := w.read()
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	w.key = key
	for s := range serials {
		w.known[s] = true
	}
	return w, nil
}

// read returns the CRL's revoked serials, checked against the CA file
// (which may hold several CAs) as the stream listener checks them.
func (w *Watcher) read() (map[string]bool, fileKey, error) {
	key, err := statKey(w.path)
	if err != nil {
		return nil, fileKey{}, err
	}
	caPEM, err := os.ReadFile(w.caPath)
	if err != nil {
		// Not wrapped: fs.ErrNotExist from here would read as "no CRL yet".
		return nil, key, fmt.Errorf("%w: CA file: %v", pki.ErrCRL, err)
	}
	serials, err := pki.RevokedSerials(w.path, caPEM)
	return serials, key, err
}

// Run checks every interval until ctx ends.
func (w *Watcher) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.Check()
		}
	}
}

// Check applies the CRL if it changed since the last look.
func (w *Watcher) Check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	key, err := statKey(w.path)
	if err != nil || key == w.key {
		return
	}
	serials, key, err := w.read()
	if err != nil {
		w.log.Error().Err(err).Str("crl", w.path).Msg("changed CRL not applied")
		w.key = key // logged once per change, not every poll
		return
	}
	w.key = key
	var fresh []string
	for s := range serials {
		if !w.known[s] {
			w.known[s] = true
			fresh = append(fresh, s)
		}
	}
	sort.Strings(fresh)
	w.stats.CRLApplied.Inc()
	if w.reload != nil {
		if err := w.reload(); err != nil {
			w.log.Error().Err(err).Msg("tls reload after a CRL change failed")
		}
	}
	users := w.usersOf(fresh)
	closed := 0
	if w.dir != nil {
		for _, u := range users {
			n := w.dir.Disconnect(directory.Selector{Identity: u}, directory.ReasonRevoked)
			closed += n
			w.stats.Revoked.Add(uint64(n))
		}
	}
	w.log.Info().Str("crl", w.path).Int("revoked", len(serials)).Strs("new_serials", fresh).
		Strs("users", users).Int("connections_closed", closed).Msg("CRL applied")
}

// usersOf maps serials to the users they were issued to.
func (w *Watcher) usersOf(serials []string) []string {
	if len(serials) == 0 || w.store == nil {
		return nil
	}
	recs, err := w.store.RevokedCerts()
	if err != nil {
		w.log.Error().Err(err).Msg("cannot read certificate records: revoked connections stay open until they reconnect")
		return nil
	}
	want := map[string]bool{}
	for _, s := range serials {
		want[s] = true
	}
	seen := map[string]bool{}
	var out []string
	for _, r := range recs {
		if want[r.Serial] && r.User != "" && !seen[r.User] {
			seen[r.User] = true
			out = append(out, r.User)
		}
	}
	sort.Strings(out)
	return out
}
