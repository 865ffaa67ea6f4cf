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
// later call returns the first such error.
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
	rank int
	op   string
	err  error
}

func (e *localError) Error() string {
	if e.op == "" {
		return fmt.Sprintf("rank %d: %v", e.rank, e.err)
	}
	return fmt.Sprintf("rank %d: %s: %v", e.rank, e.op, e.err)
}

func (e *localError) Unwrap() error { return e.err }
