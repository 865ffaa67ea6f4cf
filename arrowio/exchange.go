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
			if err := receiveStream(ctx, comm, from, tag, in); err != nil {
				fail(err)
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

// receiveStream receives and decodes the stream from rank `from` until its end-of-stream marker,
// keeping a receive posted ahead of the one it waits for: the next message is read straight into a
// cached buffer even while this goroutine decodes, or waits to be scheduled, instead of being queued
// by whoever reads the link and copied later. The tag is this exchange's own, so the receive left
// posted at the end matches nothing and is cancelled cleanly.
func receiveStream(ctx context.Context, comm *collective.Comm, from, tag int, in *inStream) error {
	post := func() (*collective.Request, error) { return comm.PostRecvFunc(from, tag, recvBuffers.get) }
	next, err := post()
	if err != nil {
		return fmt.Errorf("receiving from rank %d: %w", from, err)
	}
	defer func() { next.Cancel() }()
	for !in.dec.eos {
		cur := next
		if next, err = post(); err != nil {
			cur.Cancel()
			return fmt.Errorf("receiving from rank %d: %w", from, err)
		}
		b, err := cur.Wait(ctx)
		if err != nil {
			return fmt.Errorf("receiving from rank %d: %w", from, err)
		}
		if len(b) == 0 {
			return fmt.Errorf("rank %d sent an empty message mid-stream", from)
		}
		in.feed(cachedChunk(b))
	}
	return nil
}
