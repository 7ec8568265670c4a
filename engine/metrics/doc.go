// Package metrics holds the lock-free counters cotd updates on its hot paths
// and a writer for the Prometheus text exposition format.
//
// Counters are plain atomics so that an event loop can count without taking
// a lock; label sets are small fixed enums owned by the packages that count
// them, so a vector is an array indexed by the enum rather than a map.
package metrics
