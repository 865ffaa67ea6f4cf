// Package osu is the measurement engine behind `fnmesh bench`: it times
// collectives and point-to-point transfers the way the OSU micro-benchmarks
// do, and reads, writes, compares and plots the results.
//
// The method, shared with the Open MPI harness in bench/mpi/osu.c so that the
// two can be put side by side:
//
//   - sizes double from Config.MinSize to Config.MaxSize (1 B to 16 MiB);
//   - each size runs warm-up calls, then timed calls (1000 after 100 warm-up
//     up to 8 KiB, 100 after 10 above);
//   - a collective is timed call by call, with a barrier after each call
//     outside the timed part; each rank averages its calls and the result
//     row holds the average, minimum and maximum of those per-rank averages;
//   - latency is a ping-pong between ranks 0 and 1 (one-way time = half the
//     round trip); bw streams a window of messages from rank 0 to rank 1 and
//     waits for a 4-byte acknowledgement (osu_bw).
//
// The engine knows nothing about fnmesh's communicator: it drives anything
// that implements [Comm], and the caller supplies each collective as a
// [Case] factory. It lives under internal/ because its only users are the
// fnmesh command and its tests; it imports no fnmesh package.
package osu
