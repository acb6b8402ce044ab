//go:build race

package main

// raceEnabled: the soak runs under the race detector (its own tests).
const raceEnabled = true
