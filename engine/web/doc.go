// Package web is cotd's browser console: a live map of every connected
// client (position, callsign, team colour, course, speed, short trails), the
// client table with disconnect, charts of the last hour, the users file's
// users and groups, data packages, and GeoChat from the browser.
//
// It is a peer of the streaming engine (ARCHITECTURE.md §10) and sees it only
// through a directory.Directory: two subscriptions (the picture, and routed
// messages for the chat) feed a hub goroutine that encodes each update once
// and offers the bytes to every viewer's bounded queue. A browser that falls
// behind loses updates (counted in cotd_web_dropped_total) and is sent a
// fresh snapshot when it catches up; nothing a browser does can slow an
// event loop or a broker shard.
//
// The Handler is mounted by the admin listener at "/", behind its auth; it
// serves the page at "/" and everything else under "/web/". Assets are
// embedded (assets/, Leaflet vendored at a pinned version, see
// assets/README.md); nothing is built at run time and, with tiles = "",
// nothing is fetched from anywhere but cotd.
//
// Wiring (cmd/cotd/web.go), with cfg.Web.Enabled and the admin listener
// on: New on the engine's Directory, with Counters from the engine's and
// the broker's stats, Users from the users file as the engine last loaded
// it, Files from Marti's store, and the signal context, so that browsers
// get a close frame on shutdown. admin.Options.Console mounts it at "/"
// inside the admin API's authenticated mux; its WriteMetrics joins the
// admin listener's /metrics.
//
// The package imports only the standard library, cot, configs,
// engine/directory, coder/websocket and zerolog.
package web
