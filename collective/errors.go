package collective

import (
	"errors"
	"fmt"
)

// Errors that calls return, wrapped with where they happened. Test for them
// with errors.Is; errors.As with *PeerError finds the peer a link failure
// concerns.
var (
	// ErrClosed: the communicator was closed.
	ErrClosed = errors.New("communicator closed")
	// ErrCorrupt: a frame failed its header or payload checksum, or its
	// header is malformed.
	ErrCorrupt = errors.New("corrupted frame")
	// ErrTruncated: the link ended in the middle of a frame.
	ErrTruncated = errors.New("truncated frame")
	// ErrPeerClosed: the peer closed the link (or its process ended).
	ErrPeerClosed = errors.New("peer closed the link")
	// ErrPeerFailed: the peer's communicator failed, and the peer said so
	// before closing the link (the error's text follows; errors.Is also
	// matches ErrMismatch when the peer failed because the ranks
	// disagree).
	ErrPeerFailed = errors.New("peer failed")
	// ErrFrameTooLarge: a message exceeds the frame size limit (WithMaxFrame).
	ErrFrameTooLarge = errors.New("frame too large")
	// ErrMismatch: ranks disagree about a collective: a message of another
	// size than the algorithm expects, or of another collective or
	// algorithm than this rank runs, or different arguments.
	ErrMismatch = errors.New("ranks disagree")
	// ErrInvalidArgument: a call was made with an argument that is wrong
	// on this rank alone. A collective's (a root out of range, a zero Op,
	// a negative count) still counts as this rank's collective: it
	// poisons the communicator, so that the other ranks, which run it,
	// fail too instead of waiting for this one. A point-to-point call's (a
	// peer or tag out of range, a nil alloc) does nothing: the
	// communicator stays usable.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrBufferTooSmall: RecvInto's buffer is shorter than the message
	// (MPI's MPI_ERR_TRUNCATE). The message stays queued, whole, for the
	// next receive on its source and tag; the error's text gives its
	// length.
	ErrBufferTooSmall = errors.New("receive buffer too small")
	// ErrBusy: a collective was called while another collective was running
	// on the same communicator. Collectives on one communicator must be
	// called one at a time, in the same order on every rank.
	ErrBusy = errors.New("another collective is running on this communicator")
	// ErrPanic: a function the caller supplied (an Op's or BytesOp's
	// function, RecvFunc's or PostRecvFunc's alloc) panicked. In a
	// reduction it fails the collective on this rank and poisons the
	// communicator, as any failure does; in a receive it fails that
	// receive.
	ErrPanic = errors.New("user function panicked")
)

// PeerError is a failure of the link between this rank and Peer (both world
// ranks). Once a link fails the communicator is unusable: every pending and
// later call returns the first such error. Its text names world ranks; a
// sub-communicator whose ranks are numbered otherwise reports it with both
// numbers ("rank 1 (world rank 3): link to rank 0 (world rank 1): ..."),
// and errors.As still finds the PeerError, with world ranks.
type PeerError struct {
	Rank int   // this process's world rank
	Peer int   // the rank at the other end of the link
	Err  error // what happened
}

// Error says which rank's link to which peer failed, and how.
func (e *PeerError) Error() string {
	return fmt.Sprintf("rank %d: link to rank %d: %v", e.Rank, e.Peer, e.Err)
}

// Unwrap returns what happened to the link, for errors.Is (ErrCorrupt,
// ErrTruncated, ErrPeerClosed, ErrMismatch, ...).
func (e *PeerError) Unwrap() error { return e.Err }

// localError is a failure that started on this rank (a cancelled context, a
// bad argument that poisoned a collective, Close).
type localError struct {
	rank  int // this rank in the communicator the failure began on
	world int // this rank in the world communicator
	op    string
	err   error
}

func (e *localError) Error() string { return e.as(rankName(e.rank, e.world)) }

// as is the error's text with this rank named who.
func (e *localError) as(who string) string {
	if e.op == "" {
		return fmt.Sprintf("%s: %v", who, e.err)
	}
	return fmt.Sprintf("%s: %s: %v", who, e.op, e.err)
}

func (e *localError) Unwrap() error { return e.err }

// rankName names the rank that is rank r of a communicator and rank w of
// the world communicator: "rank 1 (world rank 3)", or "rank 3" when the
// numbers are the same.
func rankName(r, w int) string {
	if r == w {
		return fmt.Sprintf("rank %d", r)
	}
	return fmt.Sprintf("rank %d (world rank %d)", r, w)
}

// viewError is a failure of the links (a *PeerError, which names world
// ranks, or a *localError, which names this rank as the communicator it
// began on numbers it), told in the numbering of the sub-communicator that
// reports it (see Comm.view), or a call's error as Comm.describe words it.
// errors.Is and errors.As see the failure itself.
type viewError struct {
	err  error
	text string
}

func (e *viewError) Error() string { return e.text }
func (e *viewError) Unwrap() error { return e.err }

// NamesRank reports whether the text of err names this rank already
// because it wraps the error of a call on a communicator (or a
// *PeerError): "collective: rank 3: allgather: ...", "rank 3: link to rank
// 5: ...". A layer that wraps such an error (arrowio, frame) need not name
// the rank again. It follows err's chain of wrapped errors and, in an
// error that joins several, the first of them, whose text comes first:
// errors.Join(errors.New("x.csv: bad row"), callErr) does not name the
// rank on its first line, and NamesRank reports false. An error of
// another package that names the rank itself says so with a method
// NamesRank() bool (arrowio's "arrowio: rank 3: allgather: nil table"
// does).
func NamesRank(err error) bool {
	for range 10_000 { // a chain longer than this is not one of ours
		switch e := err.(type) {
		case nil:
			return false
		case *viewError, *localError, *PeerError:
			return true
		case interface{ NamesRank() bool }:
			return e.NamesRank()
		case interface{ Unwrap() []error }:
			errs := e.Unwrap()
			if len(errs) == 0 {
				return false
			}
			err = errs[0]
		case interface{ Unwrap() error }:
			err = e.Unwrap()
		default:
			return false
		}
	}
	return false
}

// describe is the error a call returns: err, what failed call what of this
// rank, worded in one order whatever the failure, who then what then the
// cause: "collective: rank 1: allreduce: context canceled", "collective:
// rank 1: allreduce: link to rank 0: truncated frame: ...", "collective:
// rank 1: recv from rank 0: link to rank 2: peer closed the link". A
// *PeerError or *localError is worded from its fields, not from its text
// (which names this rank again); in a sub-communicator each rank is named
// as view does. A *localError of another call (one that ran at the same
// time on a communicator sharing the links) names that call after this
// one: "collective: rank 1: bcast: split: context canceled".
func (c *Comm) describe(what string, err error) error {
	return c.wording(what, err, true)
}

// describeEarlier is describe for a call that did not start because the
// communicator had failed before it: the failure, a *localError, always
// names the call it began in, also one of the same name ("collective:
// rank 1: bcast: allreduce: context canceled", "collective: rank 1:
// barrier: barrier: context canceled").
func (c *Comm) describeEarlier(what string, err error) error {
	return c.wording(what, err, false)
}

func (c *Comm) wording(what string, err error, sameCall bool) error {
	var rest string
	switch e := err.(type) {
	case nil:
		return nil
	case *PeerError:
		rest = fmt.Sprintf("link to %s: %v", c.peerName(e.Peer), e.Err)
	case *localError:
		if e.op == "" || (sameCall && e.op == what) {
			rest = e.err.Error()
		} else {
			rest = fmt.Sprintf("%s: %v", e.op, e.err)
		}
	default:
		rest = err.Error()
	}
	return &viewError{err: err, text: fmt.Sprintf("collective: %s: %s: %s", c.who(), what, rest)}
}
