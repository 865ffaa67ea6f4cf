package arrowio

import (
	"context"
	"fmt"
	"sync"

	"github.com/fnmesh/fnmesh/collective"
)

// exchange runs the streams of an all-to-all point to point on c's duplicate (see private.go): outs[j]
// goes to rank j, and ins[i] receives what rank i sends, until its end-of-stream marker (nil entries
// are skipped). Every rank's streams to every other rank must be present: each rank sends every
// other rank at least one message (the schema and end of stream), and receives at least one from each.
//
// This rank sends to rank me+1, me+2, ... in turn from the calling goroutine (so that no rank is
// everybody's first target) while one goroutine per peer receives and decodes. A stream that fails
// to decode is drained to its end, so the exchange always ends with every message received. Any
// other failure (a dead peer, an ended context) fails the communicator, as a failed collective does,
// so that it ends the exchange on every rank.
func exchange(ctx context.Context, c *collective.Comm, outs []*outStream, ins []*inStream) error {
	p, err := privateOf(ctx, c)
	if err != nil {
		return err
	}
	tag, err := p.begin()
	if err != nil {
		return err
	}
	defer p.end()
	comm := p.comm
	me, size := comm.Rank(), comm.Size()

	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
		}
		mu.Unlock()
	}
	for s := 1; s < size; s++ {
		from := (me - s + size) % size
		in := ins[from]
		if in == nil {
			continue
		}
		wg.Go(func() {
			for !in.dec.eos {
				chunk, err := recvChunk(ctx, comm, from, tag)
				if err != nil {
					fail(fmt.Errorf("receiving from rank %d: %w", from, err))
					return
				}
				if chunk.Len() == 0 {
					chunk.Release()
					fail(fmt.Errorf("rank %d sent an empty message mid-stream", from))
					return
				}
				in.feed(chunk)
			}
		})
	}
	var serr error
	for s := 1; s < size && serr == nil; s++ {
		to := (me + s) % size
		out := outs[to]
		if out == nil {
			continue
		}
		for w := out.nextWire(); w != nil && serr == nil; w = out.nextWire() {
			if err := comm.SendBuffers(ctx, to, tag, w.parts); err != nil {
				serr = fmt.Errorf("sending to rank %d: %w", to, err)
			}
		}
	}
	if serr != nil {
		fail(serr)
		p.abort() // the receivers, here and on the other ranks, must not wait for what will not come
	}
	wg.Wait()
	if first != nil {
		// As a failed collective does: fail the communicator, so that no rank waits for messages
		// of this exchange that will not come, and none is left queued.
		p.abort()
	}
	return first
}
