package main

import (
	"io"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"-rows", "5000", "-skip", "latency, pgbench", "-latency-duration", "2s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.rows != 5000 || !o.skip["latency"] || !o.skip["pgbench"] || o.skip["throughput"] || o.latencyDuration != 2*time.Second {
		t.Errorf("parsed %+v", o)
	}
	for _, args := range [][]string{
		{"-skip", "nope"},
		{"-rows", "0"},
		{"-latency-rate", "150"},
		{"extra"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) accepted", args)
		}
	}
}

func TestPercentiles(t *testing.T) {
	xs := make([]float64, 0, 100)
	for i := 100; i >= 1; i-- {
		xs = append(xs, float64(i))
	}
	got := percentilesOf(xs)
	want := percentiles{Count: 100, Mean: 50.5, P50: 50, P95: 95, P99: 99, Max: 100}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if got := percentilesOf(nil); got != (percentiles{}) {
		t.Errorf("empty: %+v", got)
	}
}

func TestPgbenchOutput(t *testing.T) {
	out := []byte("number of failed transactions: 0 (0.000%)\nlatency average = 3.456 ms\n" +
		"initial connection time = 5.1 ms\ntps = 1157.123456 (without initial connection time)\n")
	if m := tpsRE.FindSubmatch(out); m == nil || string(m[1]) != "1157.123456" {
		t.Errorf("tps: %q", m)
	}
	if m := latencyRE.FindSubmatch(out); m == nil || string(m[1]) != "3.456" {
		t.Errorf("latency: %q", m)
	}
}
