//go:build race

package netcore_test

// raceEnabled: the race detector is on (its threads and memory make the
// largest tests smaller).
const raceEnabled = true
