//go:build race

package tlsstate

// raceEnabled: the race detector's runtime allocates beside the code under
// test, so memory budgets are looser with it.
const raceEnabled = true
