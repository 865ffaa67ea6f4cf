package collective

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Randomized sequences: per seed, a rank count 1..9, a frame limit (often
// tiny, so messages travel as several frames), switch points and chunk
// sizes at random (0, 1, huge or in between), an algorithm forced or Auto
// per collective, and a script of collectives, point-to-point exchanges
// (several tags, RecvInto with a short buffer first, RecvFunc, posted
// receives, SendBuffers) and Splits (negative colors, equal keys, nested)
// whose parts run their own scripts concurrently. Every rank derives the
// same script from the seed and checks each result against a sequential
// oracle.

type rstep struct {
	kind   int
	root   int
	size   int // bytes (or elements for reductions)
	salt   int
	colors []int // Split: per rank
	keys   []int
	sub    map[int][]rstep // Split: per color
	tag    int
	shifts []int // p2p: each rank sends to rank+shift
}

const (
	rsBarrier = iota
	rsBcast
	rsBcastInto
	rsGather
	rsScatter
	rsAllgather
	rsAllgatherInto
	rsAlltoall
	rsAlltoallv
	rsAlltoallvInto
	rsAllreduceSum
	rsAllreduceMat
	rsAllreduceLast
	rsReduceMat
	rsReduceScatterMat
	rsReduceScatterSum
	rsP2P
	rsSplit
	rsKinds
)

func rsize(rng *rand.Rand, small bool) int {
	if small {
		return rng.IntN(300)
	}
	switch rng.IntN(6) {
	case 0:
		return 0
	case 1:
		return 1 + rng.IntN(3)
	case 2:
		return 5000 + rng.IntN(15000)
	default:
		return rng.IntN(700)
	}
}

func genScript(rng *rand.Rand, p, depth, n int, small bool) []rstep {
	var s []rstep
	for i := 0; i < n; i++ {
		st := rstep{kind: rng.IntN(rsKinds), root: rng.IntN(p), size: rsize(rng, small), salt: rng.IntN(1 << 20), tag: rng.IntN(5)}
		if st.kind == rsSplit {
			if depth >= 2 {
				st.kind = rsBarrier
			} else {
				st.sub = map[int][]rstep{}
				for r := 0; r < p; r++ {
					st.colors = append(st.colors, rng.IntN(4)-1)
					st.keys = append(st.keys, rng.IntN(3)-1)
				}
				for _, col := range st.colors {
					if col < 0 || st.sub[col] != nil {
						continue
					}
					m := 0
					for _, c2 := range st.colors {
						if c2 == col {
							m++
						}
					}
					st.sub[col] = genScript(rng, m, depth+1, 1+rng.IntN(5), small)
				}
			}
		}
		if st.kind == rsP2P {
			k := 1 + rng.IntN(3)
			for j := 0; j < k; j++ {
				st.shifts = append(st.shifts, rng.IntN(p))
			}
		}
		s = append(s, st)
	}
	return s
}

func rvsize(base, r, salt int) int {
	if base == 0 {
		return 0
	}
	return (base*((r+salt)%3))/2 + (r*5+salt)%4
}

// matOp4: 2x2 matrices of bytes mod 256, multiplied: associative, not
// commutative.
var matOp4 = NewBytesOp(4, func(acc, in []byte) {
	for i := 0; i+4 <= len(acc); i += 4 {
		a, b := acc[i:i+4], in[i:i+4]
		r0 := a[0]*b[0] + a[1]*b[2]
		r1 := a[0]*b[1] + a[1]*b[3]
		r2 := a[2]*b[0] + a[3]*b[2]
		r3 := a[2]*b[1] + a[3]*b[3]
		a[0], a[1], a[2], a[3] = r0, r1, r2, r3
	}
}, false)

func matFold(p int, data func(r int) []byte) []byte {
	acc := append([]byte(nil), data(0)...)
	for r := 1; r < p; r++ {
		matOp4.fn(acc, data(r))
	}
	return acc
}

func rvecI64(r, n, salt int) []int64 {
	b := makePayload(r, n*8, salt)
	v := make([]int64, n)
	for i := range v {
		v[i] = int64(int8(b[8*i])) // small: sums never overflow
	}
	return v
}

func countsFor(n, p, salt int) []int {
	counts := make([]int, p)
	left := n
	for i := 0; i < p-1; i++ {
		c := 0
		if left > 0 {
			c = (salt*(i+3) + i) % (left + 1)
			if (salt+i)%4 == 0 {
				c = 0
			}
		}
		counts[i] = c
		left -= c
	}
	counts[p-1] = left
	return counts
}

func runScript(ctx context.Context, c *Comm, script []rstep, path string, maxFrame int) error {
	p, me := c.Size(), c.Rank()
	for i, st := range script {
		where := fmt.Sprintf("%s/%d(kind %d)", path, i, st.kind)
		fail := func(format string, a ...any) error {
			return fmt.Errorf("%s rank %d of %d: %s", where, me, p, fmt.Sprintf(format, a...))
		}
		root := st.root % p
		switch st.kind {
		case rsBarrier:
			if err := c.Barrier(ctx); err != nil {
				return fail("%v", err)
			}
		case rsBcast, rsBcastInto:
			want := makePayload(root, st.size, st.salt)
			var got []byte
			var err error
			if st.kind == rsBcast {
				var in []byte
				if me == root {
					in = want
				}
				got, err = c.Bcast(ctx, root, in)
			} else {
				got = make([]byte, st.size)
				if me == root {
					copy(got, want)
				}
				err = c.BcastInto(ctx, root, got)
			}
			if err != nil {
				return fail("%v", err)
			}
			if !bytes.Equal(got, want) {
				return fail("bcast: wrong data")
			}
		case rsGather:
			got, err := c.Gather(ctx, root, makePayload(me, rvsize(st.size, me, st.salt), st.salt))
			if err != nil {
				return fail("%v", err)
			}
			if me == root {
				if len(got) != p {
					return fail("gather: %d parts", len(got))
				}
				for r := range p {
					if !bytes.Equal(got[r], makePayload(r, rvsize(st.size, r, st.salt), st.salt)) {
						return fail("gather: part %d wrong", r)
					}
				}
			}
		case rsScatter:
			var parts [][]byte
			if me == root {
				for r := range p {
					parts = append(parts, makePayload(r, rvsize(st.size, r, st.salt), st.salt))
				}
			}
			got, err := c.Scatter(ctx, root, parts)
			if err != nil {
				return fail("%v", err)
			}
			if !bytes.Equal(got, makePayload(me, rvsize(st.size, me, st.salt), st.salt)) {
				return fail("scatter: wrong part")
			}
		case rsAllgather:
			got, err := c.Allgather(ctx, makePayload(me, rvsize(st.size, me, st.salt), st.salt))
			if err != nil {
				return fail("%v", err)
			}
			for r := range p {
				if !bytes.Equal(got[r], makePayload(r, rvsize(st.size, r, st.salt), st.salt)) {
					return fail("allgather: part %d wrong (len %d)", r, len(got[r]))
				}
			}
		case rsAllgatherInto:
			out := make([]byte, p*st.size)
			if err := c.AllgatherInto(ctx, makePayload(me, st.size, st.salt), out); err != nil {
				return fail("%v", err)
			}
			for r := range p {
				if !bytes.Equal(out[r*st.size:(r+1)*st.size], makePayload(r, st.size, st.salt)) {
					return fail("allgatherinto: block %d wrong", r)
				}
			}
		case rsAlltoall:
			bs := st.size / 4
			got, err := c.Alltoall(ctx, makePayload(me, bs*p, st.salt))
			if err != nil {
				return fail("%v", err)
			}
			for r := range p {
				if !bytes.Equal(got[r*bs:(r+1)*bs], makePayload(r, bs*p, st.salt)[me*bs:(me+1)*bs]) {
					return fail("alltoall: block %d wrong", r)
				}
			}
		case rsAlltoallv, rsAlltoallvInto:
			part := func(from, to int) []byte {
				return makePayload(from*16+to, rvsize(st.size/2, from+to, st.salt), st.salt)
			}
			parts := make([][]byte, p)
			for r := range p {
				parts[r] = part(me, r)
			}
			var got [][]byte
			if st.kind == rsAlltoallv {
				var err error
				if got, err = c.Alltoallv(ctx, parts); err != nil {
					return fail("%v", err)
				}
			} else {
				got = make([][]byte, p)
				for r := range p {
					got[r] = make([]byte, len(part(r, me)))
				}
				if err := c.AlltoallvInto(ctx, parts, got); err != nil {
					return fail("%v", err)
				}
			}
			for r := range p {
				if !bytes.Equal(got[r], part(r, me)) {
					return fail("alltoallv: from %d wrong", r)
				}
			}
		case rsAllreduceSum, rsReduceScatterSum:
			n := st.size / 8
			want := make([]int64, n)
			for r := range p {
				for j, v := range rvecI64(r, n, st.salt) {
					want[j] += v
				}
			}
			if st.kind == rsAllreduceSum {
				got, err := Allreduce(ctx, c, rvecI64(me, n, st.salt), Sum[int64]())
				if err != nil {
					return fail("%v", err)
				}
				if !slicesEqual(got, want) {
					return fail("allreduce sum wrong")
				}
			} else {
				counts := countsFor(n, p, st.salt)
				got, err := ReduceScatter(ctx, c, rvecI64(me, n, st.salt), counts, Sum[int64]())
				if err != nil {
					return fail("%v", err)
				}
				off := 0
				for r := 0; r < me; r++ {
					off += counts[r]
				}
				if !slicesEqual(got, want[off:off+counts[me]]) {
					return fail("reduce-scatter sum wrong (counts %v)", counts)
				}
			}
		case rsAllreduceLast:
			n := st.size / 8
			last := NewOp(func(a, b int64) int64 { return b }, false)
			got, err := Allreduce(ctx, c, rvecI64(me, n, st.salt), last)
			if err != nil {
				return fail("%v", err)
			}
			if !slicesEqual(got, rvecI64(p-1, n, st.salt)) {
				return fail("allreduce take-last wrong")
			}
		case rsAllreduceMat, rsReduceMat, rsReduceScatterMat:
			n := st.size / 4 // elements
			data := func(r int) []byte { return makePayload(r, 4*n, st.salt) }
			want := matFold(p, data)
			switch st.kind {
			case rsAllreduceMat:
				got, err := AllreduceBytes(ctx, c, data(me), matOp4)
				if err != nil {
					return fail("%v", err)
				}
				if !bytes.Equal(got, want) {
					return fail("allreduce mat wrong")
				}
			case rsReduceMat:
				got, err := ReduceBytes(ctx, c, root, data(me), matOp4)
				if err != nil {
					return fail("%v", err)
				}
				if me == root && !bytes.Equal(got, want) {
					return fail("reduce mat wrong")
				}
			default:
				counts := countsFor(n, p, st.salt)
				got, err := ReduceScatterBytes(ctx, c, data(me), counts, matOp4)
				if err != nil {
					return fail("%v", err)
				}
				off := 0
				for r := 0; r < me; r++ {
					off += counts[r]
				}
				if !bytes.Equal(got, want[4*off:4*(off+counts[me])]) {
					return fail("reduce-scatter mat wrong (counts %v)", counts)
				}
			}
		case rsP2P:
			// Every rank sends, per shift j, one message to me+shift on
			// tag st.tag+j, then receives them from me-shift.
			msg := func(from, to, j int) []byte {
				return makePayload(from*32+to, min(maxFrame, rvsize(st.size, from+j, st.salt+j)), st.salt+j)
			}
			for j, sh := range st.shifts {
				to := (me + sh) % p
				m := msg(me, to, j)
				var err error
				if j%2 == 0 || len(m) < 2 {
					err = c.Send(ctx, to, st.tag+j, m)
				} else {
					err = c.SendBuffers(ctx, to, st.tag+j, [][]byte{m[:1], nil, m[1:]})
				}
				if err != nil {
					return fail("send: %v", err)
				}
			}
			for j, sh := range st.shifts {
				from := (me - sh + p) % p
				want := msg(from, me, j)
				tag := st.tag + j
				var got []byte
				switch (j + st.salt) % 3 {
				case 0:
					if len(want) > 0 {
						_, err := c.RecvInto(ctx, from, tag, make([]byte, len(want)-1))
						if !errors.Is(err, ErrBufferTooSmall) {
							return fail("recvinto short: %v", err)
						}
					}
					buf := make([]byte, len(want)+3)
					n, err := c.RecvInto(ctx, from, tag, buf)
					if err != nil {
						return fail("recvinto: %v", err)
					}
					got = buf[:n]
				case 1:
					var err error
					if got, err = c.RecvFunc(ctx, from, tag, func(n int) []byte { return make([]byte, n) }); err != nil {
						return fail("recvfunc: %v", err)
					}
				default:
					q, err := c.PostRecvFunc(from, tag, func(n int) []byte { return make([]byte, n) })
					if err != nil {
						return fail("post: %v", err)
					}
					if got, err = q.Wait(ctx); err != nil {
						return fail("wait: %v", err)
					}
				}
				if !bytes.Equal(got, want) {
					return fail("p2p from %d tag %d: wrong data (%d bytes, want %d)", from, tag, len(got), len(want))
				}
			}
		case rsSplit:
			color, key := st.colors[me%len(st.colors)], st.keys[me%len(st.keys)]
			if len(st.colors) != p {
				return fail("script built for %d ranks", len(st.colors))
			}
			sub, err := c.Split(ctx, color, key)
			if err != nil {
				return fail("%v", err)
			}
			if color < 0 {
				if sub != nil {
					return fail("split: negative color gave a communicator")
				}
				continue
			}
			// Oracle rank: order by (key, rank) among same color.
			wantRank, m := 0, 0
			for r := range p {
				if st.colors[r] != color {
					continue
				}
				m++
				if st.keys[r] < key || (st.keys[r] == key && r < me) {
					wantRank++
				}
			}
			if sub.Size() != m || sub.Rank() != wantRank {
				return fail("split: rank %d of %d, want %d of %d", sub.Rank(), sub.Size(), wantRank, m)
			}
			err = runScript(ctx, sub, st.sub[color], fmt.Sprintf("%s/c%d", where, color), maxFrame)
			if cerr := sub.Close(); err == nil && cerr != nil {
				err = fail("close sub: %v", cerr)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func slicesEqual(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func randomTuning(rng *rand.Rand) Tuning {
	t := DefaultTuning()
	pick := func() int {
		switch rng.IntN(5) {
		case 0:
			return 0
		case 1:
			return 1
		case 2:
			return math.MaxInt
		default:
			return rng.IntN(4096)
		}
	}
	t.BcastShort, t.BcastMinRanks = pick(), pick()
	t.AllgatherShortPow2, t.AllgatherShort = pick(), pick()
	t.AlltoallBruckMax, t.AlltoallBruckMinRanks, t.AlltoallScatteredMax = pick(), pick(), pick()
	t.AlltoallBatch = max(1, pick())
	t.ReduceShort, t.AllreduceShort, t.AllreduceRingMin, t.ReduceScatterShort = pick(), pick(), pick(), pick()
	t.ChunkSize = max(1, pick())
	for op := range numCollectives {
		if rng.IntN(2) == 0 {
			continue
		}
		as := Algorithms(op)
		t.Force[op] = as[rng.IntN(len(as))]
	}
	return t
}

func TestRandomSequences(t *testing.T) {
	seeds := 40 // FNMESH_RANDOM_SEEDS=n runs n (to hunt)
	if s := os.Getenv("FNMESH_RANDOM_SEEDS"); s != "" {
		seeds, _ = strconv.Atoi(s)
	}
	for seed := range seeds {
		rng := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
		p := 1 + rng.IntN(9)
		tun := randomTuning(rng)
		maxFrame := []int{1, 7, 64, 1000, 1 << 14, DefaultMaxFrame}[rng.IntN(6)]
		script := genScript(rng, p, 0, 6+rng.IntN(8), maxFrame < 64)
		kind := []meshKind{tcpMesh, pipeKind}[rng.IntN(2)]
		t.Run(fmt.Sprintf("seed=%d/p=%d/frame=%d/%s", seed, p, maxFrame, kind), func(t *testing.T) {
			comms := newComms(t, kind, p, WithTuning(tun), WithMaxFrame(maxFrame))
			errs := runAll(t, comms, 60*time.Second, func(ctx context.Context, c *Comm) error {
				return runScript(ctx, c, script, "", maxFrame)
			})
			for r, err := range errs {
				require.NoError(t, err, "rank %d, tuning %+v", r, tun)
			}
		})
	}
}

// noP2P turns the point-to-point steps of a script into barriers: a
// point-to-point call that fails does not poison the communicator, so
// its peer would wait for the message for ever (as in MPI).
func noP2P(s []rstep) []rstep {
	out := make([]rstep, len(s))
	for i, st := range s {
		if st.kind == rsP2P {
			st.kind = rsBarrier
		}
		if st.sub != nil {
			sub := map[int][]rstep{}
			for k, v := range st.sub {
				sub[k] = noP2P(v)
			}
			st.sub = sub
		}
		out[i] = st
	}
	return out
}

// TestRandomConcurrentParts: every rank splits the world twice (two
// overlapping partitions, negative colors, equal keys) and runs a random
// script on the world and on each of its two parts at once, from three
// goroutines. With cancel set, one rank's context is cancelled after a
// random delay: every goroutine of every rank must still return (with an
// error or with its script done, never waiting until the test's deadline),
// no result before the failure may be wrong, and no goroutine may outlive
// Close.
func TestRandomConcurrentParts(t *testing.T) {
	seeds := 60
	if raceEnabled {
		seeds = 40
	}
	if s := os.Getenv("FNMESH_RANDOM_SEEDS"); s != "" {
		seeds, _ = strconv.Atoi(s)
	}
	for seed := range seeds {
		rng := rand.New(rand.NewPCG(uint64(seed), 0xc0ffee))
		p := 1 + rng.IntN(9)
		tun := randomTuning(rng)
		maxFrame := []int{7, 64, 1000, 1 << 14, DefaultMaxFrame}[rng.IntN(5)]
		small := maxFrame < 64
		world := genScript(rng, p, 0, 3+rng.IntN(6), small)
		type part struct {
			colors, keys []int
			scripts      map[int][]rstep
		}
		var parts [2]part
		for i := range parts {
			pt := part{scripts: map[int][]rstep{}}
			for range p {
				pt.colors = append(pt.colors, rng.IntN(3)-1)
				pt.keys = append(pt.keys, rng.IntN(2))
			}
			for _, col := range pt.colors {
				if col >= 0 && pt.scripts[col] == nil {
					m := 0
					for _, c2 := range pt.colors {
						if c2 == col {
							m++
						}
					}
					pt.scripts[col] = genScript(rng, m, 1, 2+rng.IntN(5), small)
				}
			}
			parts[i] = pt
		}
		cancel := seed%2 == 1
		victim, delay := rng.IntN(p), time.Duration(rng.IntN(3000))*time.Microsecond
		if cancel {
			world = noP2P(world)
			for i := range parts {
				for k, v := range parts[i].scripts {
					parts[i].scripts[k] = noP2P(v)
				}
			}
		}
		kind := []meshKind{tcpMesh, pipeKind}[rng.IntN(2)]
		t.Run(fmt.Sprintf("seed=%d/p=%d/frame=%d/%s/cancel=%v", seed, p, maxFrame, kind, cancel), func(t *testing.T) {
			base := runtime.NumGoroutine()
			comms := newComms(t, kind, p, WithTuning(tun), WithMaxFrame(maxFrame))
			var mu sync.Mutex
			var failures []error
			errs := runAll(t, comms, 60*time.Second, func(ctx context.Context, c *Comm) error {
				me := c.Rank()
				if cancel && me == victim {
					var stop context.CancelFunc
					ctx, stop = context.WithCancel(ctx)
					timer := time.AfterFunc(delay, stop)
					defer timer.Stop()
					defer stop()
				}
				var subs [2]*Comm
				for i, pt := range parts {
					sub, err := c.Split(ctx, pt.colors[me], pt.keys[me])
					if err != nil {
						return err
					}
					subs[i] = sub
				}
				var wg sync.WaitGroup
				record := func(err error) {
					if err != nil {
						mu.Lock()
						failures = append(failures, fmt.Errorf("rank %d: %w", me, err))
						mu.Unlock()
					}
				}
				wg.Go(func() { record(runScript(ctx, c, world, "world", maxFrame)) })
				if !cancel {
					// Point-to-point traffic on the world communicator
					// alongside its collectives, from another goroutine,
					// on tags the scripts do not use.
					wg.Go(func() { record(p2pStorm(ctx, c, seed, maxFrame)) })
				}
				for i, sub := range subs {
					if sub == nil {
						continue
					}
					wg.Go(func() {
						record(runScript(ctx, sub, parts[i].scripts[parts[i].colors[me]], fmt.Sprintf("part%d", i), maxFrame))
					})
				}
				wg.Wait()
				for _, sub := range subs {
					if sub != nil {
						_ = sub.Close()
					}
				}
				return nil
			})
			for r, err := range errs {
				if !cancel {
					require.NoError(t, err, "rank %d", r)
				} else if err != nil {
					require.NotErrorIs(t, err, context.DeadlineExceeded, "rank %d waited until the deadline", r)
				}
			}
			for _, err := range failures {
				if !cancel {
					require.NoError(t, err)
				}
				require.NotErrorIs(t, err, context.DeadlineExceeded, "waited until the deadline")
				require.NotContains(t, err.Error(), "wrong", "wrong data")
				require.NotContains(t, err.Error(), "split: rank", "wrong split")
			}
			for _, c := range comms {
				_ = c.Close()
			}
			checkNoLeaks(t, base)
		})
	}
}

// p2pStorm: every rank sends a few numbered messages to every rank
// (itself too) on tags 1000..1002, then receives them all, checking order
// per source and tag.
func p2pStorm(ctx context.Context, c *Comm, seed, maxFrame int) error {
	p, me := c.Size(), c.Rank()
	msg := func(from, to, tag, i int) []byte {
		return makePayload(from*64+to*4+tag, min(maxFrame, (seed*31+from*7+to*3+i*11)%900), seed+i)
	}
	const k = 3
	for i := range k {
		for to := range p {
			for tag := 1000; tag < 1003; tag++ {
				if err := c.Send(ctx, to, tag, msg(me, to, tag, i)); err != nil {
					return err
				}
			}
		}
	}
	for i := range k {
		for from := range p {
			for tag := 1000; tag < 1003; tag++ {
				got, err := c.Recv(ctx, from, tag)
				if err != nil {
					return err
				}
				if !bytes.Equal(got, msg(from, me, tag, i)) {
					return fmt.Errorf("p2p storm: rank %d: message %d from %d tag %d wrong", me, i, from, tag)
				}
			}
		}
	}
	return nil
}
