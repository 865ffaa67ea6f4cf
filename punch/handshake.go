package punch

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"time"
)

// The link handshake, version 2. Every message is a frame:
//
//	magic "FNMH" (4) | version 2 (1) | kind (1) | body length, big endian (2) | body
//
// Both ends send a hello at once (no end waits for the other to speak first,
// so who dialed does not matter):
//
//	hello body (72): deployment tag (16) | job tag (16) | own rank (4) | expected peer rank (4) | random nonce (32)
//
// where the tags are derived from the secret (see helloTags): a hello tells
// nothing about its job to whoever lacks the secret. (Version 1 carried an
// unkeyed SHA-256 of the job ID, which anyone who connected to a punch port
// got back and could test guesses of the job ID against.)
//
// then, having checked the peer's hello, a proof:
//
//	proof body (32): HMAC-SHA256(K, label | prover's rank (4) | hello of the lower rank | hello of the higher rank)
//
// where K = HKDF-SHA256(secret, label | job ID) and the hellos are the whole
// frames as sent. The transcript is ordered by rank, not by who dialed, so
// both ends compute the same one; each proof covers its prover's rank, so a
// proof cannot be reflected back. Fresh nonces make every transcript unique,
// so a recorded handshake cannot be replayed. Proofs are compared in constant
// time. Punch adds two frames after the handshake to agree on one link when
// several pass (select and ack, empty bodies); see Port.Punch.
const (
	frameMagic      = "FNMH"
	handshakeV      = 2
	headerLen       = 8
	helloBodyLen    = tagLen + tagLen + 4 + 4 + 32
	proofBodyLen    = sha256.Size
	helloFrameLen   = headerLen + helloBodyLen
	maxFrameBodyLen = helloBodyLen // the largest body of version 2
)

type frameKind byte

const (
	kindHello  frameKind = 1
	kindProof  frameKind = 2
	kindSelect frameKind = 3 // Punch: the lower rank keeps this link
	kindAck    frameKind = 4 // Punch: the higher rank agrees
)

func (k frameKind) String() string {
	switch k {
	case kindHello:
		return "hello"
	case kindProof:
		return "proof"
	case kindSelect:
		return "select"
	case kindAck:
		return "ack"
	}
	return fmt.Sprintf("kind %d", byte(k))
}

func (k frameKind) bodyLen() int {
	switch k {
	case kindHello:
		return helloBodyLen
	case kindProof:
		return proofBodyLen
	}
	return 0
}

// Errors a handshake fails with, wrapped with what happened and where; test
// with errors.Is.
var (
	// ErrMalformed: the peer sent bytes that are not a handshake frame of
	// the expected kind (another protocol, garbage, a wrong length or an
	// oversized frame).
	ErrMalformed = errors.New("malformed handshake")
	// ErrVersion: the peer speaks another version of the handshake.
	ErrVersion = errors.New("unsupported handshake version")
	// ErrForeignJob: the peer belongs to another job (of the same
	// deployment: it holds the same secret).
	ErrForeignJob = errors.New("peer belongs to another job")
	// ErrWrongRank: the peer is not the rank expected, or expects another.
	ErrWrongRank = errors.New("wrong rank")
	// ErrBadProof: the peer does not hold the job secret: its hello names
	// another deployment, or its proof does not verify (or the bytes were
	// altered on the way).
	ErrBadProof = errors.New("bad proof: peer does not hold the job secret")
	// ErrSelfConnect: the connection reached this very socket (a TCP
	// self-connect, e.g. to a peer's private endpoint that equals ours).
	ErrSelfConnect = errors.New("connected to itself")
)

// IsRejection reports whether err is a handshake that the peer failed (a
// protocol, job, rank or proof error), as opposed to an I/O error or a
// deadline: retrying the same endpoint will not help.
func IsRejection(err error) bool {
	for _, e := range []error{ErrMalformed, ErrVersion, ErrForeignJob, ErrWrongRank, ErrBadProof, ErrSelfConnect} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// hello is the decoded body of a hello frame.
type hello struct {
	deployment [tagLen]byte
	job        [tagLen]byte
	rank       uint32 // the sender's rank
	peer       uint32 // the rank the sender expects at the other end
	nonce      [32]byte
}

func (h *hello) marshal() []byte {
	b := make([]byte, helloFrameLen)
	putHeader(b, kindHello, helloBodyLen)
	body := b[headerLen:]
	copy(body[0:tagLen], h.deployment[:])
	copy(body[tagLen:32], h.job[:])
	binary.BigEndian.PutUint32(body[32:36], h.rank)
	binary.BigEndian.PutUint32(body[36:40], h.peer)
	copy(body[40:72], h.nonce[:])
	return b
}

func putHeader(b []byte, kind frameKind, n int) {
	copy(b[0:4], frameMagic)
	b[4] = handshakeV
	b[5] = byte(kind)
	binary.BigEndian.PutUint16(b[6:8], uint16(n))
}

// parseHeader checks a frame header and returns the length of its body.
func parseHeader(h []byte, want frameKind) (int, error) {
	if len(h) < headerLen {
		return 0, fmt.Errorf("%w: %d-byte header, want %d", ErrMalformed, len(h), headerLen)
	}
	if string(h[0:4]) != frameMagic {
		return 0, fmt.Errorf("%w: not an fnmesh link (first bytes %q%s)", ErrMalformed, h[0:headerLen], sniff(h))
	}
	if h[4] != handshakeV {
		return 0, fmt.Errorf("%w %d (this end speaks %d)", ErrVersion, h[4], handshakeV)
	}
	kind, n := frameKind(h[5]), int(binary.BigEndian.Uint16(h[6:8]))
	if kind != want {
		return 0, fmt.Errorf("%w: got %v frame, want %v", ErrMalformed, kind, want)
	}
	if n > maxFrameBodyLen {
		return 0, fmt.Errorf("%w: oversized %v frame of %d bytes (at most %d)", ErrMalformed, kind, n, maxFrameBodyLen)
	}
	if n != want.bodyLen() {
		return 0, fmt.Errorf("%w: %v frame of %d bytes, want %d", ErrMalformed, kind, n, want.bodyLen())
	}
	return n, nil
}

// sniff names the protocol a stray connection seems to speak, for the error.
func sniff(h []byte) string {
	switch {
	case len(h) >= 8 && binary.BigEndian.Uint32(h[4:8]) == 0x2112A442:
		return ": a STUN message"
	case len(h) >= 3 && h[0] == 0x16 && h[1] == 0x03:
		return ": a TLS handshake"
	case len(h) >= 4 && (string(h[:4]) == "GET " || string(h[:4]) == "POST" || string(h[:4]) == "HEAD" || string(h[:4]) == "HTTP"):
		return ": HTTP"
	case len(h) >= 4 && string(h[:4]) == "SSH-":
		return ": SSH"
	}
	return ""
}

// parseHello decodes a whole hello frame.
func parseHello(frame []byte) (hello, error) {
	var h hello
	n, err := parseHeader(frame, kindHello)
	if err != nil {
		return h, err
	}
	if len(frame) != headerLen+n {
		return h, fmt.Errorf("%w: hello frame of %d bytes, want %d", ErrMalformed, len(frame), headerLen+n)
	}
	body := frame[headerLen:]
	copy(h.deployment[:], body[0:tagLen])
	copy(h.job[:], body[tagLen:32])
	h.rank = binary.BigEndian.Uint32(body[32:36])
	h.peer = binary.BigEndian.Uint32(body[36:40])
	copy(h.nonce[:], body[40:72])
	return h, nil
}

// readFrame reads one whole frame of kind want from r.
func readFrame(r io.Reader, want frameKind) ([]byte, error) {
	frame := make([]byte, headerLen+maxFrameBodyLen)
	if _, err := io.ReadFull(r, frame[:headerLen]); err != nil {
		return nil, fmt.Errorf("reading %v: %w", want, noEOF(err))
	}
	n, err := parseHeader(frame[:headerLen], want)
	if err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(r, frame[headerLen:headerLen+n]); err != nil {
		return nil, fmt.Errorf("reading %v: %w", want, noEOF(err))
	}
	return frame[:headerLen+n], nil
}

// noEOF turns a clean EOF into an unexpected one: the peer hung up mid
// handshake.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Handshake authenticates the link c with the peer of rank peer before any
// other byte is exchanged: both ends prove they belong to the same job, hold
// its secret and are the ranks they claim (see the frame layout above). It is
// symmetric: both ends call Handshake with each other's rank, whichever
// dialed, so it works on punched links, accepted ones and links relayed end
// to end through a server.
//
// Handshake honours ctx's deadline and cancellation; give it a deadline, or a
// peer that never answers holds it as long as ctx lives. It returns nil when
// the peer is proven, with c's deadlines cleared. On error, c is in an
// undefined state and should be closed; the error says why (test with
// errors.Is against ErrMalformed, ErrVersion, ErrForeignJob, ErrWrongRank,
// ErrBadProof, ErrSelfConnect, io.ErrUnexpectedEOF, context.DeadlineExceeded).
func Handshake(ctx context.Context, c net.Conn, id Identity, peer int) error {
	switch {
	case ctx == nil:
		return errors.New("handshake: nil context")
	case c == nil:
		return errors.New("handshake: nil connection")
	}
	if err := id.Validate(); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	if err := validRank("handshake: peer rank", peer); err != nil {
		return err
	}
	if peer == id.Rank {
		return fmt.Errorf("handshake: peer rank %d is our own rank", peer)
	}
	if _, err := handshake(ctx, c, id, peer); err != nil {
		return fmt.Errorf("handshake with rank %d: %w", peer, err)
	}
	return nil
}

// anyRank, as the peer of handshake, accepts whatever rank the peer claims
// and proves: the accepting side of a Port learns the rank from the hello.
const anyRank = -1

// handshake runs the link handshake on c with peer (or anyRank) and returns
// the proven rank of the peer. id must be valid. Errors do not say with whom:
// the caller knows.
func handshake(ctx context.Context, c net.Conn, id Identity, peer int) (int, error) {
	release := watchConn(ctx, c)
	defer release()
	fail := func(err error) (int, error) { return 0, ctxErr(ctx, err) }

	mine := hello{rank: uint32(id.Rank)}
	var err error
	if mine.deployment, mine.job, err = helloTags(id.Secret, id.Job); err != nil {
		return fail(err)
	}
	if _, err := rand.Read(mine.nonce[:]); err != nil {
		return fail(fmt.Errorf("nonce: %w", err))
	}
	var myFrame, theirFrame []byte
	var theirs hello
	parsed := false
	readHello := func() error {
		f, err := readFrame(c, kindHello)
		if err != nil {
			return err
		}
		h, err := parseHello(f)
		if err != nil {
			return err
		}
		theirFrame, theirs, parsed = f, h, true
		return checkHello(id, peer, &mine, &theirs)
	}
	if peer == anyRank {
		// The accepting side learns whom to expect from the peer's
		// hello; the dialer has sent its hello without waiting, so
		// reading first cannot deadlock.
		if err := readHello(); err != nil {
			if parsed {
				// An fnmesh peer with the wrong job or rank: answer
				// with our hello so that it learns why, too.
				mine.peer = theirs.rank
				_ = exchange(c, mine.marshal(), func() error { return err })
			}
			return fail(err)
		}
		peer = int(theirs.rank)
		mine.peer = theirs.rank
		myFrame = mine.marshal()
		if err := exchange(c, myFrame, nil); err != nil {
			return fail(err)
		}
	} else {
		mine.peer = uint32(peer)
		myFrame = mine.marshal()
		if err := exchange(c, myFrame, readHello); err != nil {
			return fail(err)
		}
	}

	key, err := linkKey(id.Secret, id.Job)
	if err != nil {
		return fail(err)
	}
	lo, hi := myFrame, theirFrame
	if peer < id.Rank {
		lo, hi = theirFrame, myFrame
	}
	myProof := make([]byte, headerLen+proofBodyLen)
	putHeader(myProof, kindProof, proofBodyLen)
	copy(myProof[headerLen:], proof(key, id.Rank, lo, hi))
	var theirProof []byte
	readProof := func() error {
		f, err := readFrame(c, kindProof)
		theirProof = f
		return err
	}
	if err := exchange(c, myProof, readProof); err != nil {
		return fail(err)
	}
	if !hmac.Equal(theirProof[headerLen:], proof(key, peer, lo, hi)) {
		return fail(ErrBadProof)
	}
	return peer, nil
}

// checkHello checks the peer's hello against ours and against the rank
// expected (anyRank: any rank but ours; never ours). The tags are compared in variable
// time: ours goes out in clear in our own hello.
func checkHello(id Identity, peer int, mine, theirs *hello) error {
	switch {
	case theirs.deployment != mine.deployment:
		return fmt.Errorf("%w (its hello names another deployment)", ErrBadProof)
	case theirs.job != mine.job:
		return ErrForeignJob
	case theirs.nonce == mine.nonce:
		return ErrSelfConnect
	case theirs.rank > math.MaxInt32:
		return fmt.Errorf("%w: peer claims rank %d, out of range", ErrWrongRank, theirs.rank)
	case int64(theirs.rank) == int64(id.Rank):
		// Checked before what the peer expects: a connection that reached
		// this very port by another of its addresses (or through a NAT
		// that hairpins) is no self-connect, and both of its ends would
		// otherwise blame a wrong rank.
		return fmt.Errorf("%w: peer claims this end's own rank %d "+
			"(a connection to this very port, by another of its addresses or through a NAT that hairpins?)",
			ErrWrongRank, theirs.rank)
	case int64(theirs.peer) != int64(id.Rank):
		return fmt.Errorf("%w: peer expects rank %d, this end is rank %d", ErrWrongRank, theirs.peer, id.Rank)
	case peer != anyRank && int64(theirs.rank) != int64(peer):
		return fmt.Errorf("%w: peer claims rank %d, want %d", ErrWrongRank, theirs.rank, peer)
	}
	return nil
}

// proof is the MAC by which rank prover shows it holds key, over the
// rank-ordered transcript of hellos.
func proof(key []byte, prover int, lo, hi []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(labelProof))
	var r [4]byte
	binary.BigEndian.PutUint32(r[:], uint32(prover))
	m.Write(r[:])
	m.Write(lo)
	m.Write(hi)
	return m.Sum(nil)
}

// writeGrace is how long a handshake that failed reading still waits for
// its own frame to be written.
const writeGrace = 500 * time.Millisecond

// exchange writes out while read (if not nil) reads, so that two ends that
// both write first never wait on each other, even over an unbuffered pipe.
func exchange(c net.Conn, out []byte, read func() error) error {
	if read == nil {
		if _, err := c.Write(out); err != nil {
			return fmt.Errorf("writing: %w", err)
		}
		return nil
	}
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(out)
		werr <- err
	}()
	if err := read(); err != nil {
		// Let our frame go out (so the peer learns why, e.g. which job we
		// are in) unless the peer does not take it promptly.
		t := time.NewTimer(writeGrace)
		select {
		case <-werr:
		case <-t.C:
			_ = c.SetDeadline(aLongTimeAgo) // unblock the writer
			<-werr
		}
		t.Stop()
		return err
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("writing: %w", err)
	}
	return nil
}

// sendFrame and recvFrame carry the empty select and ack frames of Punch.
func sendFrame(ctx context.Context, c net.Conn, kind frameKind) error {
	release := watchConn(ctx, c)
	defer release()
	b := make([]byte, headerLen)
	putHeader(b, kind, 0)
	if _, err := c.Write(b); err != nil {
		return ctxErr(ctx, fmt.Errorf("writing %v: %w", kind, err))
	}
	return nil
}

func recvFrame(ctx context.Context, c net.Conn, kind frameKind) error {
	release := watchConn(ctx, c)
	defer release()
	_, err := readFrame(c, kind)
	return ctxErr(ctx, err)
}

// ctxErr puts ctx's cause first in err when ctx has ended: an I/O error
// from a deadline is then also context.DeadlineExceeded (or Canceled). A
// connection deadline set to ctx's may fire a moment before ctx itself
// reports the end; a timeout at or past ctx's deadline counts as its end.
func ctxErr(ctx context.Context, err error) error {
	if err == nil || IsRejection(err) || errors.Is(err, context.Cause(ctx)) {
		return err
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", context.Cause(ctx), err)
	}
	if d, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(d) {
		return fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
	}
	return err
}
