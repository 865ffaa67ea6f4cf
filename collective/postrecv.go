package collective

import (
	"context"
	"errors"
	"fmt"
)

// A Request is a receive posted with PostRecvFunc that has not been waited
// for yet (MPI's MPI_Irecv and MPI_Wait). It belongs to the goroutine that
// posted it; every Request ends with Wait or Cancel.
type Request struct {
	c   *Comm // for errors
	src int
	l   *link
	r   *request
}

// errRequestUsed: Wait or Cancel was called on a request that already ended.
var errRequestUsed = errors.New("request already waited for or cancelled")

// PostRecvFunc posts a receive from rank src with tag tag, as RecvFunc
// does, and returns at once: a message that arrives while the caller does
// something else is read straight into the buffer alloc returns instead of
// being queued and copied later. Receives posted for the same source and
// tag are filled in the order they were posted, so a stream of messages is
// received without a gap by keeping one receive posted ahead of the one
// being waited for. alloc follows RecvFunc's rules.
func (c *Comm) PostRecvFunc(src, tag int, alloc func(n int) []byte) (*Request, error) {
	q, err := c.postRecvFunc(src, tag, alloc)
	if err != nil {
		return nil, err
	}
	return &q, nil
}

func (c *Comm) postRecvFunc(src, tag int, alloc func(n int) []byte) (Request, error) {
	if err := c.checkPeer("recv", src, tag); err != nil {
		return Request{}, err
	}
	if alloc == nil {
		return Request{}, c.p2pErr("recv from", src, fmt.Errorf("%w: nil alloc", ErrInvalidArgument))
	}
	l := c.links[src]
	q := Request{c: c, src: src, l: l, r: l.postReq(l.newReq(key{c.id, uint64(tag)}, modeFunc, nil, alloc))}
	c.closedAfterPost(l)
	return q, nil
}

// Wait waits for q's message and returns the buffer alloc gave for it. If
// ctx ends first, Wait returns ctx's error and q is withdrawn: a message
// not yet begun stays queued for a later receive; one being read into
// alloc's buffer aborts the link, as for RecvInto.
func (q *Request) Wait(ctx context.Context) ([]byte, error) {
	r := q.r
	if r == nil {
		return nil, q.c.p2pErr("recv from", q.src, errRequestUsed)
	}
	q.r = nil
	if err := q.l.wait(ctx, r); err != nil {
		return nil, q.c.p2pErr("recv from", q.src, err)
	}
	b, err := r.buf, r.err
	r.recycle()
	if err != nil {
		return nil, q.c.p2pErr("recv from", q.src, err)
	}
	return b, nil
}

// Cancel withdraws q if it has not been waited for: a receive still waiting
// for its message leaves no trace (the next message stays for a later
// receive), a message already delivered into alloc's buffer is dropped, and
// one being read into it aborts the link (the communicator is poisoned), as
// a cancelled RecvInto does. Cancelling an ended (or nil) request does
// nothing.
func (q *Request) Cancel() {
	if q == nil || q.r == nil {
		return
	}
	r := q.r
	q.r = nil
	if !q.l.cancel(r, fmt.Errorf("receive from rank %d cancelled", q.src)) {
		r.recycle() // it was complete: its message is dropped
	}
}
