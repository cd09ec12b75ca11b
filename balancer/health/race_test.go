//go:build race

package health

// raceEnabled is true under the race detector, which slows probes several
// times over; wall-clock bounds are then only logged.
const raceEnabled = true
