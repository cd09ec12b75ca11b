package main

import (
	"math"
	"slices"
)

// median returns the median of xs (the mean of the middle two for an even
// count), or NaN for an empty slice. xs is not modified.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// minMax returns the smallest and largest of xs, or NaN, NaN when empty.
func minMax(xs []float64) (lo, hi float64) {
	if len(xs) == 0 {
		return math.NaN(), math.NaN()
	}
	return slices.Min(xs), slices.Max(xs)
}

// spread returns (max - min) / median of xs as a fraction: 0.2 means the
// values span 20 % of their median. It is 0 for one value and NaN when
// empty or when the median is not positive.
func spread(xs []float64) float64 {
	m := median(xs)
	if len(xs) == 0 || !(m > 0) {
		return math.NaN()
	}
	lo, hi := minMax(xs)
	return (hi - lo) / m
}

// ratios returns num[r] / den[r] for every round r present in both maps
// with a positive denominator, in round order. Taking ratios inside a round
// (where both targets ran back to back) and then the median cancels slow
// drift of the machine's speed.
func ratios(num, den map[int]float64) []float64 {
	var rounds []int
	for r := range num {
		if d, ok := den[r]; ok && d > 0 {
			rounds = append(rounds, r)
		}
	}
	slices.Sort(rounds)
	out := make([]float64, 0, len(rounds))
	for _, r := range rounds {
		out = append(out, num[r]/den[r])
	}
	return out
}

// bestPerRound returns, for every round, the largest value any of the
// given series has in that round.
func bestPerRound(series ...map[int]float64) map[int]float64 {
	best := map[int]float64{}
	for _, s := range series {
		for r, v := range s {
			if cur, ok := best[r]; !ok || v > cur {
				best[r] = v
			}
		}
	}
	return best
}
