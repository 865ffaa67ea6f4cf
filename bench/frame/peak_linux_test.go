package main

import (
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// resetPeakRSS forgets an earlier peak; peakRSS then sees a new one.
func TestPeakRSS(t *testing.T) {
	touch := func(n int) []byte {
		b := make([]byte, n)
		for i := 0; i < n; i += 4096 {
			b[i] = 1
		}
		return b
	}
	b := touch(96 << 20)
	runtime.KeepAlive(b)
	before := peakRSS()
	require.GreaterOrEqual(t, before, int64(96<<20), "the 96 MiB touched")
	b = nil
	runtime.GC()
	debug.FreeOSMemory()
	require.True(t, resetPeakRSS(), "/proc/self/clear_refs")
	after := peakRSS()
	assert.Less(t, after, before-64<<20, "reset: %d MiB, was %d MiB", after>>20, before>>20)
	// Other tests run alongside: the peak may have grown a little since.
	assert.InDelta(t, after, runPeak(true), 16<<20, "runPeak reads the peak after a reset")
	assert.Zero(t, runPeak(false), "no reset: not measured")
	b = touch(64 << 20)
	runtime.KeepAlive(b)
	assert.GreaterOrEqual(t, peakRSS(), after+60<<20, "a new peak")
}
