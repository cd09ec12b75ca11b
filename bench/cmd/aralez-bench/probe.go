package main

import (
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// probe measures how fast one CPU runs a fixed integer loop, a few times a
// second, from a thread pinned to that CPU. The host of a shared VM can
// slow a vCPU down for tens of seconds without reporting steal time; a
// window during which a CPU ran much slower than its best is flagged and
// repeated. It costs about 0.1 % of that CPU.
type probe struct {
	cpu  int
	stop chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex // guards samples
	samples []probeSample
}

type probeSample struct {
	at    time.Time
	speed float64 // loop iterations per microsecond
}

const probeIters = 100_000

// startProbe starts sampling CPU cpu every interval until close.
func startProbe(cpu int, interval time.Duration) *probe {
	p := &probe{cpu: cpu, stop: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		// The thread stays locked until the goroutine exits, so the Go
		// runtime discards it afterwards and no other goroutine ever runs
		// with this CPU mask (threads it would start are made by the
		// runtime's template thread instead).
		runtime.LockOSThread()
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return
		}
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
			t0 := time.Now()
			spin(probeIters)
			el := time.Since(t0)
			if el <= 0 {
				continue
			}
			p.mu.Lock()
			p.samples = append(p.samples, probeSample{at: t0, speed: probeIters / float64(el.Microseconds()+1)})
			p.mu.Unlock()
		}
	}()
	return p
}

//go:noinline
func spin(n int) uint64 {
	x := uint64(88172645463325252)
	for range n {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	return x
}

// speed returns the median loop speed sampled between from and to, or 0
// when there was no sample.
func (p *probe) speed(from, to time.Time) float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var xs []float64
	for _, s := range p.samples {
		if !s.at.Before(from) && !s.at.After(to) {
			xs = append(xs, s.speed)
		}
	}
	if len(xs) == 0 {
		return 0
	}
	return median(xs)
}

// close stops the probe and waits for its goroutine.
func (p *probe) close() {
	close(p.stop)
	p.wg.Wait()
}
