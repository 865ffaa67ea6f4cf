package rendezvous

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
)

// afterReady is a relay connection that has read relay-ready, as the end to
// end handshake reads it: the first two bytes after relay-ready tell the
// peer's handshake from a frame of the server's, and are then handed on.
//
// Once both sides are told relay-ready, the server writes nothing of its
// own: the next byte is the peer's, and the stream is bit-transparent. But
// the server tells the two sides one after the other (Server.connectPair);
// when it told this side and then could not tell the peer, it follows
// relay-ready with an error frame (relay, naming the peer), or closes. The
// two cannot be mistaken for each other: every frame of this protocol
// begins with the magic "FM" (0x46 0x4D), every frame of the link handshake
// (punch.Handshake, any version or kind) with "FNMH" (0x46 0x4E 0x4D 0x48),
// and a peer's first bytes are its hello. So the second byte decides: "FM"
// is read as the server's frame, whole (it cannot be the peer's), anything
// else is given back to the handshake untouched, which checks it. A peer
// that sends "FM" itself (it holds the secret) only fails its own link, as
// it could anyway.
type afterReady struct {
	net.Conn
	peer    int
	checked bool
	head    []byte // the bytes read to check, not yet handed on
	err     error  // what the check found, returned by every read
}

// relayAborted is the server's error frame in place of the peer's
// handshake: it could not set the relay up after telling this side.
type relayAborted struct{ err error }

func (e *relayAborted) Error() string { return e.err.Error() }
func (e *relayAborted) Unwrap() error { return e.err }

func (a *afterReady) Read(p []byte) (int, error) {
	if !a.checked {
		a.checked = true
		a.err = a.check()
	}
	if a.err != nil {
		return 0, a.err
	}
	if len(a.head) > 0 {
		n := copy(p, a.head)
		a.head = a.head[n:]
		return n, nil
	}
	return a.Conn.Read(p)
}

// check reads the first two bytes after relay-ready: the peer's (kept in
// head) or the start of the server's frame (read whole, returned as a
// *relayAborted).
func (a *afterReady) check() error {
	var b [2]byte
	n, err := io.ReadFull(a.Conn, b[:])
	switch {
	case n == 0 && errors.Is(err, io.EOF):
		return &relayAborted{fmt.Errorf("the relay closed before rank %d's handshake came (rank %d hung up, or the server could not set the relay up): %w",
			a.peer, a.peer, io.ErrUnexpectedEOF)}
	case err != nil:
		return err
	case b[0] != frameMagic0 || b[1] != frameMagic1:
		a.head = b[:]
		return nil
	}
	msg, err := readMessage(io.MultiReader(bytes.NewReader(b[:]), a.Conn), maxClientLoad)
	switch m := msg.(type) {
	case nil:
		if bad := badFrame(err); bad != nil {
			err = bad
		}
		return &relayAborted{fmt.Errorf("after relay-ready, in place of rank %d's handshake: %w", a.peer, err)}
	case errorMsg:
		return &relayAborted{fmt.Errorf("the server could not set the relay up after saying relay-ready: %w",
			&Error{Code: m.Code, Rank: m.Rank, Msg: m.Msg})}
	default:
		return &relayAborted{unexpected(m, "the peer's handshake after relay-ready")}
	}
}

// handedOn reports whether every byte the check read has gone to the
// handshake: the connection itself is then the relayed stream.
func (a *afterReady) handedOn() bool { return a.checked && a.err == nil && len(a.head) == 0 }
