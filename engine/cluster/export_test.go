package cluster

// Kill stops the node without a goodbye, as a kill -9 would: the embedded
// NATS server goes away first, so nothing more leaves this node.
func (n *Node) Kill() {
	n.shutdownServer()
	n.Close()
}
