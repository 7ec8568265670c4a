// Package cluster makes several cotd nodes one server through NATS
// (ARCHITECTURE.md §11): an embedded nats-server whose routes join the
// nodes, or an existing NATS cluster by URL.
//
// It sees the engine only through engine/directory: the Directory (who is
// connected here), and the Remote the engine's Link hands back (other
// nodes' clients as recipients and senders). The engine forwards to it,
// through a bounded queue that drops and counts when full, what other
// nodes' clients may hear; one goroutine publishes, another handles
// everything that arrives. A NATS outage or a partition degrades to
// local-only routing and heals by itself.
//
// With cluster.cert set, routes are mutual TLS and each node presents that
// one certificate whether it dials or accepts, so Start (and CheckFiles,
// for `cotd config check`) refuses, with ErrCert, a certificate without
// both serverAuth and clientAuth or one cluster.ca does not verify: the
// peers' handshakes would refuse it, and nats-server would only log that.
//
// Subjects (group names escaped to one subject token each):
//
//	cotd.g.<group>  a broadcast into group, once per group; a node
//	                subscribes to the groups its clients hear
//	cotd.n.<node>   messages for one node: directed messages, SA replay
//	cotd.p.<node>   node's presence: clients joining, changing, leaving
//	cotd.hb.<node>  node's heartbeat: a count and digest of its presence
//	cotd.sync.<node> ask node for its whole presence and latest SAs
//	cotd.q.sa       ask every node for the latest SAs of some groups
package cluster
