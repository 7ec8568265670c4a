//go:build !race

package takproto

// raceEnabled: the race detector changes what allocates, so exact allocation counts are
// checked only without it.
const raceEnabled = false
