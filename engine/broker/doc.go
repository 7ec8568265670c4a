// Package broker routes CoT frames between connected clients.
//
// The event loops hand each decoded frame to one of N shard goroutines; the
// shard is chosen by the sending connection, so one sender's frames are
// routed in the order they arrived. A shard reads recipients from an
// immutable snapshot of the registry, which is rebuilt only when clients come
// or go, and hands each recipient the same encoded bytes: a message is
// encoded once, whatever the number of recipients.
//
// The broker never blocks an event loop: Publish is a non-blocking send into
// a bounded inbox whose overflow is counted, and recipients apply their own
// back-pressure in Outbox.Deliver, reporting each drop so it is counted here.
package broker
