package marti

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// blobStore keeps files by their SHA-256 under dir/<first two hex>/<hash>.
// A file is written to dir/.tmp, hashed as it streams, synced, and renamed
// into place: a name under dir always holds the complete content with that
// hash, whatever crashed when.
type blobStore struct {
	dir, tmp string
}

func newBlobStore(dir string) (*blobStore, error) {
	b := &blobStore{dir: dir, tmp: filepath.Join(dir, ".tmp")}
	if err := os.MkdirAll(b.tmp, 0o750); err != nil {
		return nil, fmt.Errorf("marti: files_dir: %w", err)
	}
	// Leftovers of uploads cut short by a crash: never renamed, never
	// referenced.
	if ents, err := os.ReadDir(b.tmp); err == nil {
		for _, e := range ents {
			_ = os.Remove(filepath.Join(b.tmp, e.Name()))
		}
	}
	return b, nil
}

// validHash reports whether h is a lowercase SHA-256 in hex: the only names
// that ever reach the file system, so a hash parameter cannot name a path.
func validHash(h string) bool {
	if len(h) != sha256.Size*2 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func (b *blobStore) path(hash string) string { return filepath.Join(b.dir, hash[:2], hash) }

// put streams r to disk, at most max bytes (more is ErrTooLarge), and
// returns its hash and size. Memory use is one copy buffer.
func (b *blobStore) put(r io.Reader, max int64) (hash string, size int64, err error) {
	f, err := os.CreateTemp(b.tmp, "up-*")
	if err != nil {
		return "", 0, fmt.Errorf("%w: %w", errStorage, err)
	}
	done := false
	defer func() {
		if !done {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	h := sha256.New()
	buf := make([]byte, 256<<10)
	size, err = io.CopyBuffer(io.MultiWriter(diskWriter{f}, h), io.LimitReader(r, max+1), buf)
	if err != nil {
		return "", size, err
	}
	if size > max {
		return "", size, ErrTooLarge
	}
	// On disk before the rename publishes it: a hash that names a file
	// must name all of it.
	if err := f.Sync(); err != nil {
		return "", size, fmt.Errorf("%w: %w", errStorage, err)
	}
	if err := f.Close(); err != nil {
		return "", size, fmt.Errorf("%w: %w", errStorage, err)
	}
	hash = hex.EncodeToString(h.Sum(nil))
	final := b.path(hash)
	if err := os.MkdirAll(filepath.Dir(final), 0o750); err != nil {
		return "", size, fmt.Errorf("%w: %w", errStorage, err)
	}
	if err := os.Rename(f.Name(), final); err != nil {
		return "", size, fmt.Errorf("%w: %w", errStorage, err)
	}
	done = true
	return hash, size, nil
}

// open opens the file with hash; fs.ErrNotExist when there is none.
func (b *blobStore) open(hash string) (*os.File, error) {
	if !validHash(hash) {
		return nil, fs.ErrNotExist
	}
	return os.Open(b.path(hash))
}

func (b *blobStore) has(hash string) bool {
	if !validHash(hash) {
		return false
	}
	_, err := os.Stat(b.path(hash))
	return err == nil
}

func (b *blobStore) remove(hash string) error {
	_ = os.Remove(b.path(hash) + ".json")
	return os.Remove(b.path(hash))
}

// diskWriter marks its errors as the server's (errStorage), so that a full
// disk is a 500 and not blamed on the client's upload.
type diskWriter struct{ f *os.File }

func (d diskWriter) Write(p []byte) (int, error) {
	n, err := d.f.Write(p)
	if err != nil {
		err = fmt.Errorf("%w: %w", errStorage, err)
	}
	return n, err
}
