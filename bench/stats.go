package main

import (
	"math"
	"slices"
)

// percentiles summarises a distribution of durations in milliseconds.
type percentiles struct {
	Count int     `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P95   float64 `json:"p95"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

// percentilesOf sorts xs (in place) and reads the percentiles off it with
// the nearest-rank method.
func percentilesOf(xs []float64) percentiles {
	if len(xs) == 0 {
		return percentiles{}
	}
	slices.Sort(xs)
	var sum float64
	for _, x := range xs {
		sum += x
	}
	rank := func(p float64) float64 {
		i := int(math.Ceil(p/100*float64(len(xs)))) - 1
		return xs[max(0, min(i, len(xs)-1))]
	}
	return percentiles{Count: len(xs), Mean: sum / float64(len(xs)), P50: rank(50), P95: rank(95), P99: rank(99), Max: xs[len(xs)-1]}
}

// ratio is a / b, or 0 when b is not positive (JSON has no infinities).
func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}
