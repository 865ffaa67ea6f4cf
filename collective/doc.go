// Package collective is fnmesh's communicator: MPI-style point-to-point
// messages and collective operations over a mesh of per-peer links.
//
// It sits above the transport layers (punch makes the links, rendezvous
// assembles them into a mesh) and below arrowio and frame, which move
// Arrow tables with it. A communicator can be built from any set of
// reliable byte streams, one per peer: punched or relayed TCP (FromMesh,
// Join), netsim connections in tests, or in-process links (Local).
//
// # Transport
//
// Every message is one frame: a 32-byte header (communicator id, tag,
// length, CRC32C of the payload and of the header) and the payload, written
// by the sending goroutine with one vectored write. Receivers read their
// links themselves: a goroutine that waits for a message takes the link's
// read token when nobody holds it and reads frames, handing each to the
// receive posted for its tag (large payloads straight into the receiver's
// buffer) or queueing it, until its own message is complete. One drain
// goroutine per link takes the token when nobody else reads (a write has
// been in progress for a while, a receiver left a frame half read, the link
// has gone unread), so a peer's sends complete while this rank is busy
// elsewhere and simultaneous large sends in both directions cannot
// deadlock; it gives the token back as soon as a receiver wants it. On
// Linux, TCP links are read and written with non-blocking system calls made
// by the calling goroutine, which polls briefly (WithSpin) before sleeping.
// A corrupted or truncated frame is an error naming the peer, never wrong
// data.
//
// # Collectives
//
// Barrier, Bcast, Gather, Scatter, Allgather, Alltoall, Alltoallv, Reduce,
// Allreduce, ReduceScatter and Split, with typed reductions (Sum, Prod,
// Min, Max, NewOp) over Go numeric types and a byte-slice form (BytesOp).
// Each collective has several algorithms, chosen by message size and rank
// count with MPICH-like switch points (Tuning) or forced (WithAlgorithm);
// every algorithm works for every rank count, and non-commutative
// reductions keep rank order.
//
// # Failures
//
// Every call takes a context. A collective that fails on one rank (its
// context ends, a peer dies, a frame is corrupted, an argument is bad, the
// ranks disagree about the call, a user function panics) poisons the
// communicator: it tells its peers why (ErrPeerFailed) and closes its
// links, so the other ranks' calls fail promptly with an error naming the
// peer, and every later call returns the first error. Every message of a
// collective carries the call's sequence number, its algorithm and what
// else the ranks must agree on (the root, the op's commutativity, a hash
// of the sizes), and every message of a known length must come with
// exactly that length, so ranks that disagree get ErrMismatch rather than
// each other's data or a hang. A user function that panics (an op, a
// receive's alloc) is an error (ErrPanic), not a crash. A collective's
// message that reaches the frame limit travels as several frames. No
// goroutine outlives Close.
//
// Errors name who, then what, then the cause, each once: "collective:
// rank 2: allreduce: context canceled", "collective: rank 2: allreduce:
// link to rank 5: truncated frame: unexpected EOF", "collective: rank 1:
// recv from rank 0: ...". errors.Is finds the sentinels (ErrMismatch,
// ErrPeerFailed, ..., the context's error) and errors.As the *PeerError.
//
// docs/collectives.md describes the algorithms, their costs and tuning.
package collective
