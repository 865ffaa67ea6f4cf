package osu

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// Comm is what the engine needs from a communicator. fnmesh's
// *collective.Comm implements it.
type Comm interface {
	Rank() int
	Size() int
	Barrier(ctx context.Context) error
	Send(ctx context.Context, dst, tag int, data []byte) error
	Recv(ctx context.Context, src, tag int) ([]byte, error)
}

// intoReceiver is implemented by communicators that receive into a buffer
// the caller owns (fnmesh's RecvInto). Latency and bw use it when there, as
// OSU receives into preallocated buffers; otherwise they use Recv.
type intoReceiver interface {
	RecvInto(ctx context.Context, src, tag int, buf []byte) (int, error)
}

// recv receives the next message from src with tag into buf if c can,
// and returns its length.
func recv(ctx context.Context, c Comm, src, tag int, buf []byte) (int, error) {
	if ri, ok := c.(intoReceiver); ok {
		return ri.RecvInto(ctx, src, tag, buf)
	}
	b, err := c.Recv(ctx, src, tag)
	return len(b), err
}

// Tags the engine uses for its own point-to-point messages.
const (
	tagStats = 0x05a0 + iota
	tagPing
	tagStream
	tagAck
)

// Case is one collective at one size, ready to call repeatedly.
type Case struct {
	// Call runs the collective once. Buffers are prepared beforehand, so
	// that only the collective itself is timed.
	Call func(ctx context.Context) error
	// Check, if set, verifies the result of the latest Call on this rank
	// against what the collective must have produced. The engine runs it
	// after the first warm-up call, outside the timed part.
	Check func() error
}

// Benchmark is one operation of a run: a collective timed call by call, or
// one of the point-to-point tests (latency, bw).
type Benchmark struct {
	// Name is the operation's name in results: "allreduce", "latency", ...
	Name string
	// MinSize is the smallest size the operation is measured at (allreduce
	// of float32 starts at 4 bytes); sizes below it are skipped.
	MinSize int
	// Sizeless operations (barrier) run once, at size 0.
	Sizeless bool
	// PointToPoint operations involve only ranks 0 and 1 and are skipped
	// on a single rank.
	PointToPoint bool

	measure func(ctx context.Context, c Comm, cfg Config, size int) (Result, error)
}

// Collective is a benchmark of a collective: prepare builds the Case for a
// size (on every rank; allocate buffers there, not in Call).
func Collective(name string, minSize int, prepare func(size int) (Case, error)) Benchmark {
	return Benchmark{Name: name, MinSize: minSize,
		measure: func(ctx context.Context, c Comm, cfg Config, size int) (Result, error) {
			cs, err := prepare(size)
			if err != nil {
				return Result{}, err
			}
			iters, warmup := cfg.Counts(size)
			return timeCalls(ctx, c, name, size, iters, warmup, cs, true)
		}}
}

// Barrier is the benchmark of a barrier: each call is timed, with no extra
// barrier between calls.
func Barrier(call func(ctx context.Context) error) Benchmark {
	return Benchmark{Name: "barrier", Sizeless: true,
		measure: func(ctx context.Context, c Comm, cfg Config, _ int) (Result, error) {
			iters, warmup := cfg.Counts(0)
			return timeCalls(ctx, c, "barrier", 0, iters, warmup, Case{Call: call}, false)
		}}
}

// Latency is osu_latency: a ping-pong of size bytes between ranks 0 and 1;
// the result is the one-way time, half the average round trip. Other ranks
// wait.
func Latency() Benchmark {
	return Benchmark{Name: "latency", PointToPoint: true, MinSize: 1, measure: latency}
}

// Bandwidth is osu_bw: rank 0 sends Window messages of size bytes to rank 1,
// which answers with a 4-byte acknowledgement, repeated; the result's MBps
// is the bytes moved per second and AvgUs the time per message.
func Bandwidth() Benchmark {
	return Benchmark{Name: "bw", PointToPoint: true, MinSize: 1, measure: bandwidth}
}

// Step is one measurement of a run: a benchmark at one size.
type Step struct {
	Bench *Benchmark
	Size  int
}

// Steps lays out a run over ranks processes: every benchmark at every size
// of cfg it applies to, in order.
func Steps(cfg Config, ranks int, benches []Benchmark) []Step {
	var steps []Step
	for i := range benches {
		b := &benches[i]
		switch {
		case b.PointToPoint && ranks < 2:
		case b.Sizeless:
			steps = append(steps, Step{Bench: b})
		default:
			for _, s := range cfg.Sizes() {
				if s >= b.MinSize {
					steps = append(steps, Step{Bench: b, Size: s})
				}
			}
		}
	}
	return steps
}

// Run measures steps in order on every rank of c; every rank must call it
// with the same steps. On rank 0, report (if set) receives each result as
// soon as it is known, and Run returns them all; other ranks get nil.
func Run(ctx context.Context, c Comm, cfg Config, steps []Step, report func(Result)) ([]Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var out []Result
	for _, st := range steps {
		r, err := st.Bench.measure(ctx, c, cfg, st.Size)
		if err != nil {
			return out, fmt.Errorf("osu: rank %d: %s at %d B: %w", c.Rank(), st.Bench.Name, st.Size, err)
		}
		if c.Rank() == 0 {
			out = append(out, r)
			if report != nil {
				report(r)
			}
		}
	}
	return out, nil
}

// timeCalls times cs.Call iters times after warmup untimed calls, each call
// on its own, with a barrier after each one when barrierBetween is set.
func timeCalls(ctx context.Context, c Comm, name string, size, iters, warmup int, cs Case, barrierBetween bool) (Result, error) {
	if err := c.Barrier(ctx); err != nil {
		return Result{}, fmt.Errorf("barrier before: %w", err)
	}
	var total time.Duration
	for i := range iters + warmup {
		t0 := time.Now()
		err := cs.Call(ctx)
		dt := time.Since(t0)
		if err != nil {
			return Result{}, fmt.Errorf("call %d: %w", i, err)
		}
		if i >= warmup {
			total += dt
		}
		if i == 0 && cs.Check != nil {
			if err := cs.Check(); err != nil {
				return Result{}, fmt.Errorf("wrong result: %w", err)
			}
		}
		if barrierBetween {
			if err := c.Barrier(ctx); err != nil {
				return Result{}, fmt.Errorf("barrier after call %d: %w", i, err)
			}
		}
	}
	mine := micros(total) / float64(iters)
	avg, lo, hi, err := overRanks(ctx, c, mine)
	if err != nil {
		return Result{}, err
	}
	r := Result{Op: name, Ranks: c.Size(), Size: size, Iterations: iters, AvgUs: avg, MinUs: lo, MaxUs: hi}
	if size > 0 && avg > 0 {
		r.MBps = float64(size) / avg
	}
	return r, nil
}

// overRanks collects every rank's value at rank 0 and returns their
// average, minimum and maximum there (zeros elsewhere).
func overRanks(ctx context.Context, c Comm, mine float64) (avg, lo, hi float64, err error) {
	if c.Rank() != 0 {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], math.Float64bits(mine))
		if err := c.Send(ctx, 0, tagStats, b[:]); err != nil {
			return 0, 0, 0, fmt.Errorf("sending timings to rank 0: %w", err)
		}
		return 0, 0, 0, nil
	}
	sum, lo, hi := mine, mine, mine
	for src := 1; src < c.Size(); src++ {
		b, err := c.Recv(ctx, src, tagStats)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("timings from rank %d: %w", src, err)
		}
		if len(b) != 8 {
			return 0, 0, 0, fmt.Errorf("timings from rank %d: %d bytes, want 8", src, len(b))
		}
		v := math.Float64frombits(binary.LittleEndian.Uint64(b))
		sum += v
		lo, hi = min(lo, v), max(hi, v)
	}
	return sum / float64(c.Size()), lo, hi, nil
}

func latency(ctx context.Context, c Comm, cfg Config, size int) (Result, error) {
	iters, warmup := cfg.Counts(size)
	msg, buf := pattern(size, c.Rank()), make([]byte, size)
	if err := c.Barrier(ctx); err != nil {
		return Result{}, fmt.Errorf("barrier before: %w", err)
	}
	var t0 time.Time
	for i := range iters + warmup {
		switch c.Rank() {
		case 0:
			if i == warmup {
				t0 = time.Now()
			}
			if err := c.Send(ctx, 1, tagPing, msg); err != nil {
				return Result{}, fmt.Errorf("ping %d: %w", i, err)
			}
			n, err := recv(ctx, c, 1, tagPing, buf)
			if err != nil {
				return Result{}, fmt.Errorf("pong %d: %w", i, err)
			}
			if n != size {
				return Result{}, fmt.Errorf("pong %d: %d bytes, want %d", i, n, size)
			}
		case 1:
			n, err := recv(ctx, c, 0, tagPing, buf)
			if err != nil {
				return Result{}, fmt.Errorf("ping %d: %w", i, err)
			}
			if n != size {
				return Result{}, fmt.Errorf("ping %d: %d bytes, want %d", i, n, size)
			}
			if err := c.Send(ctx, 0, tagPing, msg); err != nil {
				return Result{}, fmt.Errorf("pong %d: %w", i, err)
			}
		}
	}
	var r Result
	if c.Rank() == 0 {
		us := micros(time.Since(t0)) / (2 * float64(iters))
		r = Result{Op: "latency", Ranks: c.Size(), Size: size, Iterations: iters,
			AvgUs: us, MinUs: us, MaxUs: us, MBps: float64(size) / us}
	}
	if err := c.Barrier(ctx); err != nil {
		return Result{}, fmt.Errorf("barrier after: %w", err)
	}
	return r, nil
}

func bandwidth(ctx context.Context, c Comm, cfg Config, size int) (Result, error) {
	iters, warmup := cfg.bwCounts(size)
	w := cfg.Window
	msg, buf := pattern(size, c.Rank()), make([]byte, max(size, 4))
	ack := make([]byte, 4)
	if err := c.Barrier(ctx); err != nil {
		return Result{}, fmt.Errorf("barrier before: %w", err)
	}
	var t0 time.Time
	for i := range iters + warmup {
		switch c.Rank() {
		case 0:
			if i == warmup {
				t0 = time.Now()
			}
			for j := range w {
				if err := c.Send(ctx, 1, tagStream, msg); err != nil {
					return Result{}, fmt.Errorf("iteration %d message %d: %w", i, j, err)
				}
			}
			if _, err := recv(ctx, c, 1, tagAck, buf); err != nil {
				return Result{}, fmt.Errorf("iteration %d acknowledgement: %w", i, err)
			}
		case 1:
			for j := range w {
				n, err := recv(ctx, c, 0, tagStream, buf)
				if err != nil {
					return Result{}, fmt.Errorf("iteration %d message %d: %w", i, j, err)
				}
				if n != size {
					return Result{}, fmt.Errorf("iteration %d message %d: %d bytes, want %d", i, j, n, size)
				}
			}
			if err := c.Send(ctx, 0, tagAck, ack); err != nil {
				return Result{}, fmt.Errorf("iteration %d acknowledgement: %w", i, err)
			}
		}
	}
	var r Result
	if c.Rank() == 0 {
		secs := time.Since(t0).Seconds()
		per := secs * 1e6 / float64(iters*w)
		r = Result{Op: "bw", Ranks: c.Size(), Size: size, Iterations: iters,
			AvgUs: per, MinUs: per, MaxUs: per, MBps: float64(size) * float64(iters*w) / secs / 1e6}
	}
	if err := c.Barrier(ctx); err != nil {
		return Result{}, fmt.Errorf("barrier after: %w", err)
	}
	return r, nil
}

// Pattern returns size bytes that depend on the byte index and seed, the
// payload the benchmarks send and check.
func Pattern(size, seed int) []byte { return pattern(size, seed) }

func pattern(size, seed int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i*31 + seed*7 + 1)
	}
	return b
}

// ErrMismatch is wrapped by Check errors of the built-in checks.
var ErrMismatch = errors.New("result differs from the expected bytes")

// CheckBytes reports where got differs from want, if it does.
func CheckBytes(what string, got, want []byte) error {
	if len(got) != len(want) {
		return fmt.Errorf("%s: %d bytes, want %d: %w", what, len(got), len(want), ErrMismatch)
	}
	for i := range got {
		if got[i] != want[i] {
			return fmt.Errorf("%s: byte %d is %#x, want %#x: %w", what, i, got[i], want[i], ErrMismatch)
		}
	}
	return nil
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
