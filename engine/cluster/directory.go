package cluster

import "cotd/engine/directory"

// Directory is the engine's Directory seen cluster-wide: Clients and
// Client add other nodes' clients (Client.Node set, LastSA nil, traffic
// counters zero: their node keeps those), so that contact lists and the
// admin API show the whole cluster. Everything else is this node's:
// Connection ids are per node, Publish routes from here (and reaches
// other nodes like any local message), Disconnect and SetActiveGroups act
// on this node's connections.
func (n *Node) Directory() directory.Directory {
	return clusterDirectory{Directory: n.o.Directory, n: n}
}

type clusterDirectory struct {
	directory.Directory
	n *Node
}

// Clients implements directory.Directory: this node's, then the others'.
func (d clusterDirectory) Clients() []directory.Client {
	return append(d.Directory.Clients(), d.n.remoteClients("")...)
}

// Client implements directory.Directory.
func (d clusterDirectory) Client(uid string) []directory.Client {
	if uid == "" {
		return nil
	}
	return append(d.Directory.Client(uid), d.n.remoteClients(uid)...)
}
