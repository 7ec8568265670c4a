package configs

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestStoreDefaults(t *testing.T) {
	s := Default().Store
	checks := []struct {
		name      string
		got, want any
	}{
		{"store.enabled", s.Enabled, true},
		{"store.path", s.Path, "cotd-data/cotd.db"},
		{"store.url", s.URL, ""},
		{"store.archive", s.Archive, true},
		{"store.offline_chat", s.OfflineChat, true},
		{"store.queue_size", s.QueueSize, 65536},
		{"store.batch_size", s.BatchSize, 2000},
		{"store.drain_timeout", s.DrainTimeout.Duration, 5 * time.Second},
		{"store.pool_size", s.PoolSize, 4},
		{"store.prune_interval", s.PruneInterval.Duration, time.Minute},
		{"store.prune_batch", s.PruneBatch, 1000},
		{"store.retention.events", s.Retention.Events.Duration, 720 * time.Hour},
		{"store.retention.chat", s.Retention.Chat.Duration, 2160 * time.Hour},
		{"store.retention.files", s.Retention.Files.Duration, time.Duration(0)},
		{"store.retention.connections", s.Retention.Connections.Duration, 2160 * time.Hour},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
}

func TestStoreProblemsReportedTogether(t *testing.T) {
	_, err := Parse([]byte(`
[store]
url = "mysql://root:hunter2@db/cotd"
queue_size = 8
batch_size = 0
pool_size = 0
prune_batch = 0
drain_timeout = "0s"
[store.retention]
events = "-1h"
`))
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"store.url must start with postgres://", "store.queue_size", "store.batch_size",
		"store.pool_size", "store.prune_batch", "store.drain_timeout", "store.retention.events"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("the error shows the password: %v", err)
	}
}

func TestStoreOffSkipsChecks(t *testing.T) {
	if _, err := Parse([]byte("[store]\nenabled = false\npath = \"\"\nqueue_size = 0\n")); err != nil {
		t.Errorf("a disabled store is validated: %v", err)
	}
	if _, err := Parse([]byte("[store]\nurl = \"postgres://cotd:pw@db.example:5432/cotd\"\npath = \"\"\n")); err != nil {
		t.Errorf("postgres URL refused: %v", err)
	}
	if _, err := Parse([]byte("[store]\npath = \"\"\n")); err == nil || !strings.Contains(err.Error(), "store.path") {
		t.Errorf("empty path: %v", err)
	}
}
