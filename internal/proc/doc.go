// Package proc ties the processes a program starts to its own life, for the
// tools that start workers (fnmesh bench, the frame benchmark, the namespace
// lab): a worker left running after its parent was killed would keep
// loading the machine the next measurement runs on. It also reads /proc for
// the tests that check this. Internal; it imports nothing of fnmesh's.
package proc
