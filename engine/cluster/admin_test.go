package cluster_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/rs/zerolog"

	"cotd/engine/admin"
)

// The admin API on the cluster-wide Directory lists other nodes' clients
// with their node.
func TestAdminListsTheCluster(t *testing.T) {
	ns := startCluster(t, nil, nil)
	dial(t, ns[0], "alpha")
	dial(t, ns[1], "bravo")
	knows(t, ns[1], "alpha", "n0")
	srv := httptest.NewServer(admin.New(admin.Options{Directory: ns[1].dir, Log: zerolog.Nop()}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/clients")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list []admin.ClientInfo
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	nodes := map[string]string{}
	for _, c := range list {
		nodes[c.UID] = c.Node
	}
	if len(list) != 2 || nodes["alpha"] != "n0" || nodes["bravo"] != "" {
		t.Errorf("/api/clients on n1 = %+v, want bravo (here) and alpha on n0", list)
	}
}
