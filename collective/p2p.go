package collective

import (
	"context"
	"fmt"
)

func (c *Comm) checkPeer(op string, peer, tag int) error {
	if peer < 0 || peer >= c.size {
		return c.describe(op, fmt.Errorf("%w: peer %d out of range 0..%d", ErrInvalidArgument, peer, c.size-1))
	}
	if tag < 0 || tag > MaxTag {
		return c.describe(op, fmt.Errorf("%w: tag %d out of range 0..%d", ErrInvalidArgument, tag, MaxTag))
	}
	if err := c.checkUsable(); err != nil {
		return c.describeEarlier(op, err)
	}
	return nil
}

// p2pErr wraps the error of a point-to-point call to or from peer so that
// it says who, then what, then why, as every call's error does (see
// describe): "collective: rank 1: recv from rank 0: context deadline
// exceeded", "collective: rank 1: recv from rank 0: link to rank 0: peer
// closed the link". In a sub-communicator whose ranks are numbered
// otherwise than the world's, each rank is named by both numbers:
// "collective: rank 1 (world rank 3): recv from rank 0 (world rank 1):
// ...".
func (c *Comm) p2pErr(what string, peer int, err error) error {
	return c.describe(what+" "+c.name(peer), err)
}

// Send sends data to rank dst with a user tag (0..MaxTag). It returns once
// data has been handed to the link, so the caller may reuse data. Messages
// from one rank to another with the same tag arrive in the order sent.
// Sending to one's own rank is allowed (the message is copied).
//
// If ctx ends before any byte is written (also while Send waits for
// another Send on the same link to finish), Send returns ctx's error and
// the communicator stays usable; if it ends mid-message the link is broken
// and the communicator is poisoned.
func (c *Comm) Send(ctx context.Context, dst, tag int, data []byte) error {
	if err := c.checkPeer("send", dst, tag); err != nil {
		return err
	}
	bufs := [1][]byte{data}
	if err := c.links[dst].send(ctx, key{c.id, uint64(tag)}, bufs[:]); err != nil {
		return c.p2pErr("send to", dst, err)
	}
	return nil
}

// SendBuffers sends the concatenation of bufs to rank dst as one message
// with a user tag, as Send does, without first copying the pieces into one
// buffer: they go out in one vectored write (writev) straight from where
// they are, with one CRC32C over all of them. The receiver sees a single
// message of the total length. bufs and the slices in it are not modified
// and may be reused once SendBuffers returns.
func (c *Comm) SendBuffers(ctx context.Context, dst, tag int, bufs [][]byte) error {
	if err := c.checkPeer("send", dst, tag); err != nil {
		return err
	}
	if err := c.links[dst].send(ctx, key{c.id, uint64(tag)}, bufs); err != nil {
		return c.p2pErr("send to", dst, err)
	}
	return nil
}

// Recv receives the next message from rank src with tag tag and returns
// it in a new buffer the caller owns. If ctx ends first Recv returns ctx's
// error; no message is lost (one that was arriving stays queued for the
// next Recv).
func (c *Comm) Recv(ctx context.Context, src, tag int) ([]byte, error) {
	if err := c.checkPeer("recv", src, tag); err != nil {
		return nil, err
	}
	b, err := c.recvUser(ctx, src, tag, modeFresh, nil)
	if err != nil {
		return nil, c.p2pErr("recv from", src, err)
	}
	return b, nil
}

// RecvFunc receives the next message from rank src with tag tag into the
// buffer alloc returns for its length n, and returns that buffer: the way
// to receive into memory the caller manages (a pool, an arena) without a
// copy when the receive is posted before the message arrives. alloc must
// return a slice of length exactly n, or nil to refuse the message, which
// is then consumed and reported as ErrMismatch (an empty message cannot be
// refused: nil is a slice of length 0, and it is accepted). alloc is called once, on
// whichever goroutine delivers the message (possibly not the caller's),
// before RecvFunc returns; it must not call into c. If alloc panics, the
// message is consumed and the receive fails with ErrPanic (the
// communicator stays usable).
//
// If ctx ends while the message is being read into alloc's buffer, the link
// is aborted, as for RecvInto.
func (c *Comm) RecvFunc(ctx context.Context, src, tag int, alloc func(n int) []byte) ([]byte, error) {
	q, err := c.postRecvFunc(src, tag, alloc)
	if err != nil {
		return nil, err
	}
	return q.Wait(ctx)
}

// RecvInto receives the next message from rank src with tag tag into buf
// and returns its length. A message longer than buf is ErrBufferTooSmall
// (the error gives its length) and stays queued, whole, for the next
// receive from src with tag; the communicator stays usable. RecvInto
// allocates nothing.
//
// If ctx ends while the message is being read into buf, the link is aborted
// (the communicator is poisoned): the reader cannot otherwise be stopped
// from writing into buf after RecvInto returned.
func (c *Comm) RecvInto(ctx context.Context, src, tag int, buf []byte) (int, error) {
	if err := c.checkPeer("recv", src, tag); err != nil {
		return 0, err
	}
	b, err := c.recvUser(ctx, src, tag, modeUpTo, buf)
	if err != nil {
		return 0, c.p2pErr("recv from", src, err)
	}
	return len(b), nil
}

func (c *Comm) recvUser(ctx context.Context, src, tag int, mode recvMode, dst []byte) ([]byte, error) {
	l := c.links[src]
	r := l.post(key{c.id, uint64(tag)}, mode, dst)
	c.closedAfterPost(l)
	if err := l.wait(ctx, r); err != nil {
		return nil, err
	}
	b, err := r.buf, r.err
	r.recycle()
	return b, err
}
