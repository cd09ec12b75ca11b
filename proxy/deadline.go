package proxy

import "time"

// This file holds coarse deadlines: a connection's read or write deadline
// is moved only when the one in force no longer fits the one asked for.
//
// Both front ends and the upstream connections ask for a new deadline on
// every request, most of them on every read and write (fasthttp's idle,
// read and write timeouts; upstream_timeout per operation). Each one
// costs a clock read, a lock on the socket's poll descriptor and a move
// of a runtime timer, about 5 % of the proxy's CPU per request under load
// (bench/RESULTS.md, issue 16), while the deadline asked for is almost
// always a few microseconds after the one already set. A coarse deadline
// lets a timeout fire up to an eighth of its length late (nginx's
// timer_resolution trades precision the same way), never early.

// coarseDeadline is the deadline in force on one direction of a
// connection, as set through it. The zero value has none in force. It is
// not safe for concurrent use: each direction is set by one goroutine at
// a time.
type coarseDeadline struct {
	at   int64 // the deadline in force, Unix nanoseconds; 0: none
	span int64 // how far ahead of the clock it was set, nanoseconds
}

// next reports the deadline to set on the connection when t (zero: none)
// is asked for, and ok=false when the one in force already serves: it is
// not before t and at most an eighth of its own span after it. A
// deadline that is set gets a sixteenth of its remaining time on top, so
// that the same timeout asked for again soon after keeps fitting. now is
// called only when a deadline is set (the clock costs ~150 ns in some
// virtual machines). A t at or before the clock is set as it is (it must
// fire at once).
func (d *coarseDeadline) next(t time.Time, now func() time.Time) (set time.Time, ok bool) {
	if t.IsZero() {
		if d.at == 0 {
			return time.Time{}, false
		}
		d.at = 0
		return time.Time{}, true
	}
	at, ok := d.nextNanos(t.UnixNano(), func() int64 { return now().UnixNano() })
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(0, at), true
}

// nextNanos is next on one clock's nanoseconds (want > 0; the Unix
// clock for next, the monotonic one of monoNanos for the upstream
// connections): the deadline to set, or ok=false when the one in force
// serves.
func (d *coarseDeadline) nextNanos(want int64, now func() int64) (set int64, ok bool) {
	if d.at >= want && d.at-want <= d.span/8 {
		return 0, false
	}
	left := want - now()
	if left <= 0 {
		d.at, d.span = want, 0
		return want, true
	}
	d.at, d.span = want+left/16, left+left/16
	return d.at, true
}

// monoBase is the origin of monoNanos.
var monoBase = time.Now()

// monoNanos is the monotonic clock in nanoseconds since monoBase: one
// clock read, where time.Now makes two (wall and monotonic).
func monoNanos() int64 { return int64(time.Since(monoBase)) }

// monoTime is the time at monotonic nanoseconds m, for a socket deadline
// (which measures it on the monotonic clock too).
func monoTime(m int64) time.Time { return monoBase.Add(time.Duration(m)) }

// forget records that the deadline in force is unknown (it was set
// around this coarseDeadline), so that the next call of next sets one.
func (d *coarseDeadline) forget() { d.at, d.span = -1, 0 }
