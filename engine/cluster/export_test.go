package cluster

import "cotd/engine/directory"

// Kill stops the node without a goodbye, as a kill -9 would: the embedded
// NATS server goes away first, so nothing more leaves this node.
func (n *Node) Kill() {
	n.shutdownServer()
	n.Close()
}

// Remote is the engine side of the node's link, for tests that play a
// misbehaving or racing peer.
func (n *Node) Remote() directory.Remote { return n.remote }
