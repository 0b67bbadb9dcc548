package main

import "testing"

func TestFormat(t *testing.T) {
	for _, c := range []struct {
		v    float64
		unit string
		want string
	}{
		{0.75, "percentunit", "75%"},
		{16 << 20, "bytes", "16 MiB"},
		{1536, "Bps", "1.5 KiB/s"},
		{2500, "ops", "2.5K ops/s"},
		{90, "s", "1m30s"},
		{1024, "short", "1K"},
	} {
		if got := format(c.v, c.unit); got != c.want {
			t.Errorf("format(%v, %q) = %q, want %q", c.v, c.unit, got, c.want)
		}
	}
}

func TestBytesTicksAreRoundInBinaryUnits(t *testing.T) {
	for _, tick := range unitTicks("bytes").Ticks(0, 20<<20) {
		if tick.Label != "" && tick.Value != float64(int64(tick.Value)>>20<<20) {
			t.Errorf("tick %q at %v is not a whole number of MiB", tick.Label, tick.Value)
		}
	}
}
