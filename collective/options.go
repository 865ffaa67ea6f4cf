package collective

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/fnmesh/fnmesh/rendezvous"
)

// Tuning holds the switch points between algorithms and the algorithms
// forced per collective. Every rank of a communicator must use the same
// Tuning (the choice of algorithm has to agree), except where a field says
// otherwise. DefaultTuning returns MPICH-like defaults.
type Tuning struct {
	// Force, indexed by Collective, forces an algorithm of that
	// collective; Auto (the zero value) selects by the thresholds below.
	Force [numCollectives]Algorithm

	// Bcast: binomial tree when the payload is at most BcastShort bytes or
	// there are fewer than BcastMinRanks ranks; scatter + ring allgather
	// otherwise. For Bcast only the root's setting (and Force[OpBcast])
	// matters: it tells the others. BcastInto sends no preamble, so every
	// rank picks from its own setting and length: they must agree there
	// (ranks that pick differently get ErrMismatch).
	BcastShort    int
	BcastMinRanks int

	// Allgather (total bytes over all ranks): with p a power of two,
	// recursive doubling below AllgatherShortPow2, else ring; otherwise
	// Bruck below AllgatherShort, else ring. AllgatherInto, whose blocks
	// are contiguous in out, runs recursive doubling in place at every
	// size when p is a power of two (AllgatherShortPow2 does not apply to
	// it), and otherwise picks by AllgatherShort as Allgather does.
	AllgatherShortPow2 int
	AllgatherShort     int

	// Alltoall (bytes per destination): Bruck at or below AlltoallBruckMax
	// when p >= AlltoallBruckMinRanks; scattered at or below
	// AlltoallScatteredMax; pairwise above. Alltoallv picks scattered or
	// pairwise by its own average part size against AlltoallScatteredMax;
	// ranks may differ there.
	AlltoallBruckMax      int
	AlltoallBruckMinRanks int
	AlltoallScatteredMax  int
	// AlltoallBatch is how many peers the scattered exchange has in flight
	// (at least 1; a value of Size()-1 or more, up to math.MaxInt, means
	// every peer at once).
	AlltoallBatch int

	// Reduce: binomial at or below ReduceShort bytes (or for fewer
	// elements than the largest power of two <= p), reduce-scatter +
	// gather above.
	ReduceShort int

	// Allreduce: recursive doubling at or below AllreduceShort bytes (or
	// for fewer elements than the largest power of two <= p); ring at or
	// above AllreduceRingMin bytes with a commutative op when p is not a
	// power of two; Rabenseifner otherwise.
	AllreduceShort   int
	AllreduceRingMin int

	// ReduceScatter (total bytes): recursive halving at or below
	// ReduceScatterShort with a commutative op, pairwise above (and for
	// non-commutative ops).
	ReduceScatterShort int

	// ChunkSize is the pipelining unit of the ring reductions: each ring
	// step is sent as chunks of ChunkSize bytes (rounded down to whole
	// elements) plus one element, and a last, shorter one (empty when the
	// step's block is a multiple of that size), each reduced as it
	// arrives. The last chunk always being the shortest is what lets a
	// rank tell a peer that disagrees about the vector's length; the one
	// extra element keeps a block of exactly ChunkSize bytes one chunk.
	// Chunks stay below the frame limit.
	ChunkSize int
}

// DefaultTuning returns the default switch points (after MPICH's, with the
// ring allreduce from 256 KiB when p is not a power of two and the
// scattered exchange up to 4 MiB per peer, as measured with fnmesh bench;
// see docs/collectives.md).
func DefaultTuning() Tuning {
	return Tuning{
		BcastShort:            12 << 10,
		BcastMinRanks:         8,
		AllgatherShortPow2:    512 << 10,
		AllgatherShort:        80 << 10,
		AlltoallBruckMax:      256,
		AlltoallBruckMinRanks: 8,
		AlltoallScatteredMax:  4 << 20, // measured: scattered beats pairwise up to here at p = 4 (MPICH: 32 KiB for alltoall)
		AlltoallBatch:         32,
		ReduceShort:           2 << 10,
		AllreduceShort:        2 << 10,
		AllreduceRingMin:      256 << 10, // p not a power of two: the ring from here
		ReduceScatterShort:    512 << 10,
		ChunkSize:             256 << 10,
	}
}

// Validate reports whether every forced algorithm belongs to its collective
// and the sizes make sense.
func (t *Tuning) Validate() error {
	for op, a := range t.Force {
		if a == Auto {
			continue
		}
		if got, ok := a.Collective(); !ok || got != Collective(op) {
			return fmt.Errorf("collective: tuning: %v is not an algorithm of %v", a, Collective(op))
		}
	}
	if t.AlltoallBatch < 1 {
		return fmt.Errorf("collective: tuning: AlltoallBatch %d < 1", t.AlltoallBatch)
	}
	if t.ChunkSize < 1 {
		return fmt.Errorf("collective: tuning: ChunkSize %d < 1", t.ChunkSize)
	}
	return nil
}

type config struct {
	joinOpts []rendezvous.Option
	checksum bool
	maxFrame int
	spin     time.Duration
	log      *slog.Logger
	tuning   Tuning
}

// DefaultMaxFrame is the default limit on one message's size.
const DefaultMaxFrame = 1 << 30

// Option configures a communicator.
type Option func(*config)

// WithChecksum turns the CRC32C checksum of every payload this rank sends
// on (the default) or off. The receiver verifies what the sender computed;
// frame headers are always checksummed.
func WithChecksum(on bool) Option { return func(c *config) { c.checksum = on } }

// WithMaxFrame sets the largest frame payload this rank sends or accepts,
// at most 4 GiB - 1 (default DefaultMaxFrame); every rank must use the
// same. A Send or SendBuffers of more fails with ErrFrameTooLarge before
// anything is written; a frame header announcing more than the limit is
// ErrFrameTooLarge on the receiving side and breaks the link. Collectives
// send every message that reaches the limit as several frames (see
// docs/collectives.md), so they work with any limit and any sizes.
func WithMaxFrame(n int) Option { return func(c *config) { c.maxFrame = n } }

// DefaultSpin is how long a rank polls a TCP link's socket by default before
// sleeping, when it waits to read from it or to write to it (see WithSpin).
const DefaultSpin = 50 * time.Microsecond

// WithSpin sets how long a rank polls a TCP link's socket, when it waits for
// data or for room to write, before it sleeps until the kernel wakes it
// (default DefaultSpin; 0: never poll). Polling spends CPU to save the
// wake-up, which costs tens of microseconds on many machines (virtual ones
// especially): it is what makes small messages fast and keeps a large
// transfer streaming, as MPI's TCP transport does by polling all the time.
// Lower it where ranks share CPUs with more work than the CPUs can run.
func WithSpin(d time.Duration) Option { return func(c *config) { c.spin = max(d, 0) } }

// WithLogger sets the logger for link failures and diagnostics (default:
// discard).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithTuning replaces the switch points and forced algorithms.
func WithTuning(t Tuning) Option { return func(c *config) { c.tuning = t } }

// WithAlgorithm forces algorithm a for its collective (Auto is ignored).
func WithAlgorithm(a Algorithm) Option {
	return func(c *config) {
		if op, ok := a.Collective(); ok {
			c.tuning.Force[op] = a
		}
	}
}

func buildConfig(opts []Option) (*config, error) {
	cfg := &config{checksum: true, maxFrame: DefaultMaxFrame, spin: DefaultSpin, tuning: DefaultTuning()}
	for _, o := range opts {
		o(cfg)
	}
	if cfg.log == nil {
		cfg.log = slog.New(slog.DiscardHandler)
	}
	if cfg.maxFrame < 1 || int64(cfg.maxFrame) > 1<<32-1 {
		return nil, fmt.Errorf("collective: max frame %d out of range 1..4GiB-1", cfg.maxFrame)
	}
	if err := cfg.tuning.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}
