// Package admin is cotd's admin HTTP API: health and readiness probes,
// Prometheus metrics, the connected clients and their disconnection, and
// optionally pprof; and, behind the same auth, whatever cmd/cotd mounts
// at "/" (the web console, handed in as an http.Handler so that this
// package does not import it).
//
// It sees the engine only through directory.Directory and the few things
// cmd/cotd hands it in Options (a metrics writer, a readiness check, the
// basic-auth check), so that the API can change without touching the hot
// path, and so that `cotd clients` can share its JSON types without
// linking the engine. It serves no socket itself: the caller mounts the
// handler (the engine serves it on admin.addr, with TLS when configured).
package admin
