// Package bench is cotbench's load-generation library: it plays thousands of simulated TAK
// end-user devices (EUDs) against any CoT streaming server on loopback and reports like a lab.
//
// A run (Run) takes a Scenario (a TOML file in configs/bench, see the Scenario type for every
// key) and a target: addresses of any TAK server, or a cotd that Run spawns itself
// (StartCotd: build, config with port 0 listeners whose bound ports cotd's ready line
// names, certificates for TLS, readiness, stop). Each
// simulated EUD connects over TCP, crypto/tls or utls (the Android 11 OkHttp parrot, TLS
// 1.2), sends its SA at the scenario's rate with jitter, chats to All Chat Rooms and to a
// callsign (<marti><dest callsign=…/>), places markers, pings after 15 s of silence as
// commo does, and reads everything with cot.XMLFramer and cot.ScanHeader. Stalled clients
// connect and send nothing or half a ClientHello; reconnect storms drop a fraction of the
// clients together and bring them back.
//
// Every event an EUD sends carries <__cotbench ts seq src k dst/> in its detail, which a
// server forwards untouched: the receiver computes the end-to-end latency from ts and knows
// sender, kind and intended destination. Loss is computed per recipient by the Ledger from
// what the scenario's routing owes it; deliveries nobody was owed (a directed chat at the
// wrong client, an echo, a duplicate) are counted as unexpected.
//
// The pieces, one file per noun: scenario.go and decode.go (strict decoding, every problem
// at once), eud.go (one EUD: its goroutine reads, its sends run on a shared scheduler in
// scheduler.go, not a timer per client), message.go, dial.go, pki.go, ledger.go,
// histogram.go (log-bucketed, bounded memory), stats.go and monitor.go (per-second series,
// /proc sampling in procstat.go, the progress line), cost.go (server CPU per delivery),
// serverdelay.go (the server's own delivery delay, from its /metrics histogram), spawn.go,
// run.go, and the outputs: report.go (table and JSON), html.go (one self-contained page
// with inline SVG charts) and compare.go.
//
// From the project, bench imports only cotd/cot, cotd/cot/takproto, cotd/configs and
// cotd/tlsstate/pki; it never imports the engine (engine/deps_test.go checks that), so
// the same harness measures cotd and any other TAK server alike.
package bench
