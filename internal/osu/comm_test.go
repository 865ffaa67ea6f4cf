package osu

import (
	"context"
	"fmt"
	"sync"
)

// chanComm is an in-process communicator for testing the engine: one
// buffered channel per (source, destination, tag).
type chanComm struct {
	rank int
	net  *chanNet
}

type chanNet struct {
	size  int
	mu    sync.Mutex
	boxes map[[3]int]chan []byte
}

func newChanNet(size int) []*chanComm {
	n := &chanNet{size: size, boxes: map[[3]int]chan []byte{}}
	cs := make([]*chanComm, size)
	for i := range cs {
		cs[i] = &chanComm{rank: i, net: n}
	}
	return cs
}

func (n *chanNet) box(src, dst, tag int) chan []byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := [3]int{src, dst, tag}
	if n.boxes[k] == nil {
		n.boxes[k] = make(chan []byte, 256)
	}
	return n.boxes[k]
}

func (c *chanComm) Rank() int { return c.rank }
func (c *chanComm) Size() int { return c.net.size }

func (c *chanComm) Send(ctx context.Context, dst, tag int, data []byte) error {
	if dst < 0 || dst >= c.net.size {
		return fmt.Errorf("no rank %d", dst)
	}
	select {
	case c.net.box(c.rank, dst, tag) <- append([]byte(nil), data...):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *chanComm) Recv(ctx context.Context, src, tag int) ([]byte, error) {
	select {
	case b := <-c.net.box(src, c.rank, tag):
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

const tagBarrier = 1

func (c *chanComm) Barrier(ctx context.Context) error {
	for p := range c.net.size {
		if p != c.rank {
			if err := c.Send(ctx, p, tagBarrier, nil); err != nil {
				return err
			}
		}
	}
	for p := range c.net.size {
		if p != c.rank {
			if _, err := c.Recv(ctx, p, tagBarrier); err != nil {
				return err
			}
		}
	}
	return nil
}

// allgather is a naive allgather over chanComm, the collective the engine
// tests measure.
func (c *chanComm) allgather(ctx context.Context, data []byte) ([][]byte, error) {
	const tag = 2
	out := make([][]byte, c.net.size)
	out[c.rank] = data
	for p := range c.net.size {
		if p != c.rank {
			if err := c.Send(ctx, p, tag, data); err != nil {
				return nil, err
			}
		}
	}
	for p := range c.net.size {
		if p != c.rank {
			b, err := c.Recv(ctx, p, tag)
			if err != nil {
				return nil, err
			}
			out[p] = b
		}
	}
	return out, nil
}
