package marti

import (
	"io"
	"strconv"
	"sync/atomic"

	"cotd/engine/metrics"
)

// route names an endpoint in cotd_http_requests_total.
type route uint8

// The routes, one per endpoint; routeUnknown is everything else.
const (
	routeUnknown route = iota
	routeVersion
	routeVersionConfig
	routeClientEndPoints
	routeGroupsAll
	routeGroupsActive
	routeGroupsActiveBits
	routeGroupCacheEnabled
	routeProfileConnection
	routeContactsAll
	routeCotXML
	routeCotXMLAll
	routeCotSA
	routeMissionQuery
	routeMissionUpload
	routeSyncUpload
	routeContent
	routeSearch
	routeMetadataTool
	routeExportKML
	routeMissions
	routeMissionSubscription
	routeMissionContents
	numRoutes
)

var routeNames = [numRoutes]string{
	"unknown", "version", "version_config", "client_endpoints", "groups_all", "groups_active",
	"groups_activebits", "group_cache_enabled", "profile_connection", "contacts_all",
	"cot_xml", "cot_xml_all", "cot_sa", "missionquery", "missionupload", "sync_upload",
	"content", "search", "metadata_tool", "export_kml", "missions", "mission_subscription", "mission_contents",
}

func (r route) String() string {
	if r < numRoutes {
		return routeNames[r]
	}
	return "unknown"
}

// The status codes counted one by one; anything else is "other".
var countedCodes = [...]int{200, 204, 206, 304, 400, 403, 404, 405, 408, 413, 416, 500, 503}

const numCodes = len(countedCodes) + 1

func codeIndex(code int) int {
	for i, c := range countedCodes {
		if c == code {
			return i
		}
	}
	return len(countedCodes)
}

// requestStats counts requests by route and status, and what files moved.
type requestStats struct {
	requests      [numRoutes][numCodes]atomic.Uint64
	uploadBytes   atomic.Uint64
	downloadBytes atomic.Uint64
	published     atomic.Uint64 // control events handed to the engine
	publishFailed atomic.Uint64 // refused by the engine (queue full, invalid)
	refusedConns  atomic.Uint64 // closed at accept: max_connections reached
}

func newRequestStats() *requestStats { return &requestStats{} }

func (s *requestStats) count(r route, code int) { s.requests[r][codeIndex(code)].Add(1) }

// Requests reads one counter, for tests.
func (s *Server) Requests(r string, code int) uint64 {
	for i := range numRoutes {
		if i.String() == r {
			return s.stats.requests[i][codeIndex(code)].Load()
		}
	}
	return 0
}

// WriteMetrics writes the Marti counters in the Prometheus text format (the
// admin listener's /metrics appends them).
func (s *Server) WriteMetrics(w io.Writer) error {
	mw := metrics.NewWriter(w)
	mw.Family("cotd_http_requests_total", "Marti API requests by route and status code.", "counter")
	for r := range numRoutes {
		for i := range numCodes {
			v := s.stats.requests[r][i].Load()
			if v == 0 {
				continue
			}
			code := "other"
			if i < len(countedCodes) {
				code = strconv.Itoa(countedCodes[i])
			}
			mw.Sample("cotd_http_requests_total", float64(v), "route", r.String(), "code", code)
		}
	}
	mw.One("cotd_http_upload_bytes_total", "Bytes of files stored by Marti uploads.", "counter", float64(s.stats.uploadBytes.Load()))
	mw.One("cotd_http_download_bytes_total", "Bytes of files served by Marti content downloads.", "counter", float64(s.stats.downloadBytes.Load()))
	mw.One("cotd_http_published_total", "Control events Marti handed to the engine.", "counter", float64(s.stats.published.Load()))
	mw.One("cotd_http_publish_failed_total", "Control events the engine refused (queue full or invalid).", "counter", float64(s.stats.publishFailed.Load()))
	if s.memHist != nil {
		mw.One("cotd_http_history_dropped_total", "Events the in-memory history (no store) did not keep: its uid or byte bound was reached.", "counter", float64(s.memHist.refuse.Load()))
	}
	mw.One("cotd_http_connections_refused_total", "Connections closed at accept because marti.max_connections were open.", "counter", float64(s.stats.refusedConns.Load()))
	return mw.Flush()
}

// RefusedConnections counts connections closed at accept (max_connections).
func (s *Server) RefusedConnections() uint64 { return s.stats.refusedConns.Load() }

// countRefusedConn is the connection limiter's hook: it runs before the
// refused connection is closed, so a client that sees the close can read
// the count.
func (s *Server) countRefusedConn() { s.stats.refusedConns.Add(1) }
