package collective

import "syscall"

// osYield gives the CPU to another runnable thread of the machine, if any
// (sched_yield(2)). A polling rank calls it between polls so that, with more
// ranks than CPUs on a host, the rank it waits for gets to run; on an idle
// CPU it returns at once. Open MPI's progress loop does the same when
// oversubscribed (mpi_yield_when_idle).
func osYield() { syscall.RawSyscall(syscall.SYS_SCHED_YIELD, 0, 0, 0) }
