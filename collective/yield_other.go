//go:build !linux

package collective

// osYield is a no-op where sched_yield(2) is not wired up; polling then
// yields only to this process's goroutines.
func osYield() {}
