package directory

// The cluster's side of the engine. A node of a cluster sees the clients of
// the other nodes as one more kind of recipient: the engine forwards to a
// Forwarder what they may hear (once per group for a broadcast, once per
// client for a directed message), and the cluster link hands back through
// Remote what they sent and who they are. Both sides queue or refuse at
// once; neither waits on the other.

// Origin is who sent a message, as the nodes of a cluster name it.
type Origin struct {
	// Node is the sender's node; "" for this one.
	Node string
	// ConnID is the sender's connection on its node.
	ConnID uint64
	// Server marks a server-side sender (Directory.Publish on its node):
	// it never joins and has no connection; Identity names it.
	Server   bool
	Identity string
	// In and Out are the sender's groups (sorted) when it sent: In decides
	// who may hear the message; Out keeps the ghost's membership current.
	In, Out []string
}

// Outgoing is a message of this node bound for others. XML is shared and
// read-only.
type Outgoing struct {
	XML []byte
	// Recv is when this node read it (unix nanos; 0 for a replayed SA).
	Recv int64
	From Origin
}

// Forwarder takes what the engine routes to other nodes: the cluster link
// implements it. Both methods are called from broker shards: they must
// queue or refuse at once (false: refused, and counted by the engine as a
// drop), never wait.
type Forwarder interface {
	// ToGroup: m was broadcast into group, which a client of another
	// node hears. A message into several such groups comes once per group.
	ToGroup(group string, m Outgoing) bool
	// ToClient: m is directed to connection conn of node, whose device uid
	// is uid.
	ToClient(node string, conn uint64, uid string, m Outgoing) bool
}

// Remote is the engine's side of a cluster link (the engine's Link hands
// it out). The link calls it from its own goroutines; none of the methods
// waits on a client.
type Remote interface {
	// RemoteJoin makes a client of another node known (c.Node, c.ConnID,
	// UID, Callsign, In, Out), or updates what is known of it: directed
	// messages to its uid or callsign then go to its node, and this node
	// forwards the broadcasts of its groups.
	RemoteJoin(c Client)
	// RemoteLeave forgets a client of another node; local clients that
	// heard it are sent its t-x-d-d.
	RemoteLeave(node string, conn uint64)
	// RemoteNode lists the clients of node this side knows.
	RemoteNode(node string) []uint64
	// RemotePublish routes what a client of another node sent (a complete
	// <event>, <marti> already applied) to the local clients that may hear
	// it, or only to the local device toUID when it is not "". Nothing it
	// routes is forwarded again. It returns ErrInvalid (wrapped) or
	// ErrBusy like Publish.
	RemotePublish(from Origin, doc []byte, toUID string) error
}
