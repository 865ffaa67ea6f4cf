package collective

import (
	"context"
	"fmt"
	"sync"
)

// Alltoallv sends parts[i] to rank i and returns what every rank sent this
// one: result[j] came from rank j (result[Rank()] is parts[Rank()] itself).
// parts must have Size() entries; they may differ in size, including zero.
//
// Algorithms: scattered (receives and sends posted for batches of
// Tuning.AlltoallBatch peers at a time, rank r sending to r+1, r+2, ... so
// that no rank is everybody's first target) and pairwise (p-1 steps, in
// step s send to r+s and receive from r-s). Both use the same messages, so
// each rank may choose by its own average part size: ranks need not agree.
func (c *Comm) Alltoallv(ctx context.Context, parts [][]byte) (out [][]byte, err error) {
	cl, err := c.begin(ctx, "alltoallv")
	if err != nil {
		return nil, err
	}
	defer cl.finish(&err)
	cl.use(wire(AlltoallvScattered), 0) // for pairwise too: each rank picks its own
	if len(parts) != c.size {
		return nil, fmt.Errorf("%w: %d parts for %d ranks", ErrMismatch, len(parts), c.size)
	}
	out = make([][]byte, c.size)
	out[c.rank] = parts[c.rank]
	err = cl.exchange(parts, out, nil, 0, cl.alltoallvBatch(parts))
	return out, err
}

// AlltoallvInto is Alltoallv into the caller's buffers, as MPI_Alltoallv:
// out[j] receives what rank j sends this one and must have exactly its
// length (every rank knows what it receives, as in MPI, where the counts
// are exchanged beforehand when they are not known). out[Rank()] gets a
// copy of parts[Rank()] unless they are the same memory. Each message is
// read straight into its out buffer; nothing is allocated per message. The
// out buffers may be slices of one large buffer (counts and
// displacements). A message of another length is an error (ErrMismatch).
func (c *Comm) AlltoallvInto(ctx context.Context, parts, out [][]byte) (err error) {
	cl, err := c.begin(ctx, "alltoallv")
	if err != nil {
		return err
	}
	defer cl.finish(&err)
	cl.use(wire(AlltoallvScattered), 0) // as Alltoallv: the same messages
	if len(parts) != c.size || len(out) != c.size {
		return fmt.Errorf("%w: %d parts and %d out buffers for %d ranks", ErrMismatch, len(parts), len(out), c.size)
	}
	me, mine := out[c.rank], parts[c.rank]
	if len(me) != len(mine) {
		return fmt.Errorf("%w: out[%d] has %d bytes for a part of %d", ErrMismatch, c.rank, len(me), len(mine))
	}
	if len(me) > 0 && &me[0] != &mine[0] {
		copy(me, mine)
	}
	return cl.exchange(parts, nil, out, 0, cl.alltoallvBatch(parts))
}

// alltoallvBatch is the number of peers in flight for this rank's parts:
// scattered (Tuning.AlltoallBatch) for small parts, pairwise (1) for large.
func (cl *call) alltoallvBatch(parts [][]byte) int {
	t := cl.tun
	algo := t.Force[OpAlltoallv]
	if algo == Auto {
		total := 0
		for _, b := range parts {
			total += len(b)
		}
		algo = AlltoallvScattered
		if total/cl.c.size > t.AlltoallScatteredMax {
			algo = AlltoallvPairwise
		}
	}
	if algo == AlltoallvPairwise {
		return 1
	}
	return t.AlltoallBatch
}

// exchange sends parts[(r+s)%p] to rank r+s and receives from rank r-s, for
// s = 1..p-1, in batches of `batch` peers: all receives of a batch are
// posted, then its sends made, then its receives awaited. With dst nil the
// received messages go to out in new buffers; otherwise each is read into
// dst[j], which must be exactly its size.
func (cl *call) exchange(parts, out, dst [][]byte, step, batch int) error {
	c := cl.c
	p, r := c.size, c.rank
	// A batch of more than p-1 peers is all of them. (Clamped here, so
	// that lo+batch cannot overflow for a Tuning.AlltoallBatch near
	// math.MaxInt.)
	batch = min(batch, max(p-1, 1))
	var rs recvs
	rs.reqs = make([]*request, 0, batch)
	for lo := 1; lo < p; lo += batch {
		hi := min(lo+batch, p)
		rs.reset()
		for s := lo; s < hi; s++ {
			from := (r - s + p) % p
			if dst == nil {
				rs.fresh(cl, from, step)
			} else {
				rs.exact(cl, from, step, dst[from])
			}
		}
		if err := cl.sendBatch(parts, lo, hi, step); err != nil {
			rs.abandonFrom(cl, err, 0)
			return err
		}
		for s := lo; s < hi; s++ {
			from := (r - s + p) % p
			if dst != nil {
				if err := rs.wait(cl, s-lo); err != nil {
					return err
				}
				continue
			}
			b, err := cl.recvFresh(rs.first(s-lo), from, step)
			if err != nil {
				rs.afterFirst(cl, err, s-lo)
				return err
			}
			out[from] = b
		}
	}
	return nil
}

// parallelSendMin is the batch size in bytes from which exchange sends to
// several peers at once: a large write to one peer then does not hold up
// the others (MPI posts its sends non-blocking for the same reason).
const (
	parallelSendMin = 1 << 20
	maxSenders      = 4
)

// sendBatch sends parts[(r+s)%p] to rank r+s for s in [lo, hi), in order,
// or from up to maxSenders goroutines when the batch is large.
func (cl *call) sendBatch(parts [][]byte, lo, hi, step int) error {
	p, r := cl.c.size, cl.c.rank
	total := 0
	for s := lo; s < hi; s++ {
		total += len(parts[(r+s)%p])
	}
	if hi-lo == 1 || total < parallelSendMin {
		for s := lo; s < hi; s++ {
			to := (r + s) % p
			if err := cl.sendMsg(to, step, parts[to]); err != nil {
				return err
			}
		}
		return nil
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = lo
	)
	for range min(maxSenders, hi-lo) {
		wg.Go(func() {
			for {
				mu.Lock()
				s := next
				next++
				stop := first != nil
				mu.Unlock()
				if stop || s >= hi {
					return
				}
				to := (r + s) % p
				if err := cl.sendMsg(to, step, parts[to]); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

// Alltoall sends block i of data to rank i and returns the blocks received,
// block j from rank j. len(data) must be the same multiple of Size() on
// every rank; the block size is len(data)/Size().
//
// Algorithms: Bruck (ceil(lg p) rounds, each moving about half the blocks;
// for small blocks on many ranks), scattered and pairwise (as Alltoallv,
// reading each block straight into the result).
func (c *Comm) Alltoall(ctx context.Context, data []byte) (out []byte, err error) {
	cl, err := c.begin(ctx, "alltoall")
	if err != nil {
		return nil, err
	}
	defer cl.finish(&err)
	p := c.size
	if len(data)%p != 0 {
		return nil, fmt.Errorf("%w: %d bytes is not a multiple of %d ranks", ErrInvalidArgument, len(data), p)
	}
	bs := len(data) / p
	t := cl.tun
	algo := t.Force[OpAlltoall]
	if algo == Auto {
		switch {
		case bs <= t.AlltoallBruckMax && p >= t.AlltoallBruckMinRanks:
			algo = AlltoallBruck
		case bs <= t.AlltoallScatteredMax:
			algo = AlltoallScattered
		default:
			algo = AlltoallPairwise
		}
	}
	cl.use(wireOf(algo), sizeIdent(bs))
	out = make([]byte, len(data))
	if algo == AlltoallBruck {
		return out, cl.alltoallBruck(data, out, bs)
	}
	parts := make([][]byte, p)
	dst := make([][]byte, p)
	for i := range parts {
		parts[i] = data[i*bs : (i+1)*bs]
		dst[i] = out[i*bs : (i+1)*bs]
	}
	copy(dst[c.rank], parts[c.rank])
	batch := t.AlltoallBatch
	if algo == AlltoallPairwise {
		batch = 1
	}
	return out, cl.exchange(parts, nil, dst, 0, batch)
}

// alltoallBruck: blocks are first indexed by destination relative to this
// rank (tmp[i] goes to r+i); in round k every block whose index has bit k
// set moves to rank r+2^k, which puts it at the same index. At the end
// tmp[i] holds the block from rank r-i.
func (cl *call) alltoallBruck(data, out []byte, bs int) error {
	c := cl.c
	p, r := c.size, c.rank
	tmp := make([][]byte, p)
	for i := range tmp {
		j := (r + i) % p
		tmp[i] = data[j*bs : (j+1)*bs]
	}
	var idx []int
	bufs := make([][]byte, 0, p)
	for k, d := 0, 1; d < p; k, d = k+1, d*2 {
		idx, bufs = idx[:0], bufs[:0]
		for i := d; i < p; i++ {
			if i&d != 0 {
				idx = append(idx, i)
				bufs = append(bufs, tmp[i])
			}
		}
		b := make([]byte, len(idx)*bs)
		if err := cl.sendrecvExact((r+d)%p, (r-d+p)%p, k, b, bufs...); err != nil {
			return err
		}
		for n, i := range idx {
			tmp[i] = b[n*bs : (n+1)*bs]
		}
	}
	for i, b := range tmp {
		j := (r - i + p) % p
		copy(out[j*bs:(j+1)*bs], b)
	}
	return nil
}
