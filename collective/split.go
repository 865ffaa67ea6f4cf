package collective

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"slices"
)

// Split partitions the communicator: ranks that pass the same color form a
// new communicator, ranked by key (ties broken by rank in c). A negative
// color means "in no new communicator": that rank gets nil. Every rank of c
// must call Split.
//
// The new communicator shares c's links and failure state (its messages
// carry their own communicator id, so traffic on c and on its parts never
// mixes); closing it does not close the links, closing the world
// communicator does. Its errors name ranks by their rank in it and, where
// that differs, their world rank: "rank 1 (world rank 3)"; a link failure
// it shares names a peer outside it by its world rank ("link to world rank
// 0"). PeerError's fields are world ranks.
func (c *Comm) Split(ctx context.Context, color, key int) (sub *Comm, err error) {
	cl, err := c.begin(ctx, "split")
	if err != nil {
		return nil, err
	}
	defer cl.finish(&err)
	cl.use(wireSplit, 0)
	var mine [16]byte
	binary.LittleEndian.PutUint64(mine[0:], uint64(int64(color)))
	binary.LittleEndian.PutUint64(mine[8:], uint64(int64(key)))
	all := [][]byte{mine[:]}
	if c.size > 1 {
		if all, err = cl.allgatherBruck(0, mine[:], nil); err != nil {
			return nil, err
		}
	}
	if color < 0 {
		return nil, nil
	}
	type member struct{ rank, key int }
	var members []member
	for r, b := range all {
		if len(b) != 16 {
			return nil, fmt.Errorf("%w: %s sent %d bytes, want 16", ErrMismatch, c.name(r), len(b))
		}
		if int(int64(binary.LittleEndian.Uint64(b))) == color {
			members = append(members, member{r, int(int64(binary.LittleEndian.Uint64(b[8:])))})
		}
	}
	slices.SortStableFunc(members, func(a, b member) int {
		if a.key != b.key {
			if a.key < b.key {
				return -1
			}
			return 1
		}
		return a.rank - b.rank
	})

	// The id: a hash of the parent's id, this call's sequence number in
	// the parent (64 bits: it never repeats) and the color. The ranks of
	// the new communicator agree on all three; no two communicators split
	// from one parent share an id, and communicators split from different
	// parents only by a 64-bit hash collision. An id is never reused, so a
	// link that drops the frames of a closed sub-communicator (closeComm)
	// drops nothing a live one is sent; should a collision make a new
	// communicator's id that of one closed on this rank, reopen below
	// keeps its traffic.
	h := fnv.New64a()
	var ids [24]byte
	binary.LittleEndian.PutUint64(ids[0:], c.id)
	binary.LittleEndian.PutUint64(ids[8:], cl.seq)
	binary.LittleEndian.PutUint64(ids[16:], uint64(int64(color)))
	h.Write(ids[:])
	id := h.Sum64()
	if id <= worldID {
		id += worldID + 1
	}

	sub = &Comm{t: c.t, id: id, size: len(members), mark: new(callMark)}
	sub.links = make([]*link, len(members))
	sub.world = make([]int, len(members))
	for i, m := range members {
		if m.rank == c.rank {
			sub.rank = i
		}
		sub.links[i] = c.links[m.rank]
		sub.world[i] = c.world[m.rank]
		sub.renumbered = sub.renumbered || sub.world[i] != i
	}
	sub.tuning.Store(cl.tun) // the tuning this call began with
	for _, l := range sub.links {
		l.reopen(id)
	}
	sub.watchCalls()
	return sub, nil
}
