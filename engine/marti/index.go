package marti

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// FileMeta describes one stored file (TAK Server's resource row).
type FileMeta struct {
	Hash       string    `json:"hash"`
	UID        string    `json:"uid"`
	Name       string    `json:"name"`
	MIMEType   string    `json:"mimeType"`
	Keywords   []string  `json:"keywords"`
	Tool       string    `json:"tool"`
	Submitter  string    `json:"submitter"`
	CreatorUID string    `json:"creatorUid"`
	Size       int64     `json:"size"`
	Submitted  time.Time `json:"submitted"`
	// Groups are the uploaders' IN groups: the file is visible to whoever
	// receives from one of them.
	Groups     []string `json:"groups"`
	PrimaryKey int64    `json:"primaryKey"`
}

// FileIndex keeps file metadata. engine/store will implement it; until
// then sidecarIndex does, with a JSON file beside each stored file.
type FileIndex interface {
	// Put records m. A hash already known keeps its UID and PrimaryKey,
	// takes m's other fields and adds m's groups to its own.
	Put(ctx context.Context, m FileMeta) (FileMeta, error)
	ByHash(ctx context.Context, hash string) (FileMeta, bool, error)
	ByUID(ctx context.Context, uid string) (FileMeta, bool, error)
	// SetTool changes the tool (public, private); ErrNotFound when unknown.
	SetTool(ctx context.Context, hash, tool string) error
	// All lists every file, oldest first (search filters them).
	All(ctx context.Context) ([]FileMeta, error)
}

// sidecarIndex keeps metadata in memory and in <hash>.json next to each
// file, written atomically, read back at start.
type sidecarIndex struct {
	blobs  *blobStore
	mu     sync.RWMutex
	byHash map[string]*FileMeta
	nextPK int64
}

func openSidecarIndex(b *blobStore) (*sidecarIndex, error) {
	x := &sidecarIndex{blobs: b, byHash: map[string]*FileMeta{}, nextPK: 1}
	err := filepath.WalkDir(b.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(path, ".json") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var m FileMeta
		if err := json.Unmarshal(data, &m); err != nil || !validHash(m.Hash) {
			return fmt.Errorf("%s: not file metadata: %v", path, err)
		}
		x.byHash[m.Hash] = &m
		x.nextPK = max(x.nextPK, m.PrimaryKey+1)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("marti: files_dir: %w", err)
	}
	return x, nil
}

func (x *sidecarIndex) Put(_ context.Context, m FileMeta) (FileMeta, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if old, ok := x.byHash[m.Hash]; ok {
		m.UID, m.PrimaryKey = old.UID, old.PrimaryKey
		m.Groups = union(old.Groups, m.Groups)
	} else {
		m.PrimaryKey = x.nextPK
	}
	if err := x.writeLocked(&m); err != nil {
		return FileMeta{}, err
	}
	if m.PrimaryKey == x.nextPK {
		x.nextPK++
	}
	x.byHash[m.Hash] = &m
	return m, nil
}

func (x *sidecarIndex) writeLocked(m *FileMeta) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	final := x.blobs.path(m.Hash) + ".json"
	tmp, err := os.CreateTemp(x.blobs.tmp, "meta-*")
	if err != nil {
		return fmt.Errorf("marti: metadata: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("marti: metadata: %w", err)
	}
	if err := tmp.Close(); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("marti: metadata: %w", err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("marti: metadata: %w", err)
	}
	return nil
}

func (x *sidecarIndex) ByHash(_ context.Context, hash string) (FileMeta, bool, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	m, ok := x.byHash[hash]
	if !ok {
		return FileMeta{}, false, nil
	}
	return *m, true, nil
}

func (x *sidecarIndex) ByUID(_ context.Context, uid string) (FileMeta, bool, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for _, m := range x.byHash {
		if m.UID == uid {
			return *m, true, nil
		}
	}
	return FileMeta{}, false, nil
}

func (x *sidecarIndex) SetTool(_ context.Context, hash, tool string) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	m, ok := x.byHash[hash]
	if !ok {
		return ErrNotFound
	}
	c := *m
	c.Tool = tool
	if err := x.writeLocked(&c); err != nil {
		return err
	}
	*m = c
	return nil
}

func (x *sidecarIndex) All(context.Context) ([]FileMeta, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]FileMeta, 0, len(x.byHash))
	for _, m := range x.byHash {
		out = append(out, *m)
	}
	slices.SortFunc(out, func(a, b FileMeta) int { return int(a.PrimaryKey - b.PrimaryKey) })
	return out, nil
}

func union(a, b []string) []string {
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}
