package engine

import (
	"io"
	"sync"
)

// peerMetrics are the metrics writers of the engine's peers (Marti, the
// store, …), appended to the admin listener's /metrics: one scrape covers
// the process, and the engine imports none of them.
type peerMetrics struct {
	mu      sync.Mutex
	writers []func(io.Writer) error
}

// AddMetrics registers a peer's metrics writer; call it before Run.
func (s *Server) AddMetrics(write func(io.Writer) error) {
	s.peers.mu.Lock()
	s.peers.writers = append(s.peers.writers, write)
	s.peers.mu.Unlock()
}

func (s *Server) writePeerMetrics(w io.Writer) error {
	s.peers.mu.Lock()
	ws := append([]func(io.Writer) error(nil), s.peers.writers...)
	s.peers.mu.Unlock()
	for _, write := range ws {
		if err := write(w); err != nil {
			return err
		}
	}
	return nil
}
