// Package netlimit caps the connections a net.Listener holds open. The
// enrollment server and the Marti API each cap their HTTPS connections the
// same way, so the one implementation lives here, a leaf that imports only
// the standard library and can be used by any engine peer without tying the
// peers to each other.
package netlimit
