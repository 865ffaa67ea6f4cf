//go:build unix

package main

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
)

// The peak memory the benchmark reports is that of the timed run alone:
// resetPeakRSS before it, peakRSS after. A process's lifetime peak (what
// getrusage's ru_maxrss says) is no use: the raw all-to-all that measures
// the loopback ceiling, run before the timed part by every worker of a job
// of more than one, touches 128 MiB of source and 128 MiB per peer, and set
// every later figure of those workers (541 MiB for a join of 1000 rows).
// getrusage cannot be reset, and a process started by vfork+exec, as Go
// starts its children, also inherits its parent's peak in it.

// resetPeakRSS makes this process's peak resident set size (VmHWM) its
// current resident set size, and reports whether it could: Linux 4.0 and
// later through /proc/self/clear_refs; elsewhere it cannot.
func resetPeakRSS() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// peakRSS is this process's peak resident set size since the last
// resetPeakRSS (VmHWM in /proc/self/status), in bytes; 0 when unknown.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		v, ok := bytes.CutPrefix(sc.Bytes(), []byte("VmHWM:"))
		if !ok {
			continue
		}
		v = bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(v), []byte("kB")))
		kib, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil || kib < 0 {
			return 0
		}
		return kib << 10
	}
	return 0
}

// runPeak is peakRSS when reset says the peak was reset before the run, and
// 0 (not measured) when it could not be: a lifetime peak would be taken for
// the run's.
func runPeak(reset bool) int64 {
	if !reset {
		return 0
	}
	return peakRSS()
}
