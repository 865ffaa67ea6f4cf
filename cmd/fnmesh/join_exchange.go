package main

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"
)

// The exchange that verifies a link. Each side sends, on its own direction
// of the link:
//
//	header   magic "FNMX", version (uint16), sender rank, receiver rank
//	         (uint32 each), payload length (uint64), seed (32 bytes)
//	payload  length bytes of the AES-128-CTR keystream keyed by the seed
//	         (key: its first 16 bytes, IV: the last 16)
//	verdict  one byte, sent once it has checked the peer's payload:
//	         0 = every byte arrived as sent, 1 = it did not
//
// The seed is fresh random bytes per direction, so the payload is random,
// and the receiver regenerates the stream from the header's seed and compares
// every byte: a flipped, lost, duplicated or reordered byte, a payload from
// the wrong rank or a truncated stream is caught and located. Waiting for the
// peer's verdict before closing also proves that the peer received all of
// this side's bytes, so a link closed right after the exchange loses nothing.

const (
	exchangeVersion = 1
	headerSize      = 4 + 2 + 4 + 4 + 8 + 32
	chunkSize       = 64 << 10
)

var exchangeMagic = [4]byte{'F', 'N', 'M', 'X'}

// exchangeResult is the outcome of the exchange with one peer.
type exchangeResult struct {
	// Verified is how many bytes from the peer arrived exactly as sent.
	Verified int64
	// PeerVerified reports whether the peer confirmed our bytes.
	PeerVerified bool
	// Elapsed is the exchange's duration, both directions.
	Elapsed time.Duration
	// Err says what went wrong; nil when both directions verified.
	Err error
}

// exchange sends n random bytes to peer over c and checks the n bytes peer
// sends back, both directions at once. self and peer are the two ranks. It
// returns when both verdicts are known, the link fails, or ctx ends.
func exchange(ctx context.Context, c net.Conn, self, peer int, n int64) exchangeResult {
	start := time.Now()
	// When ctx ends or either direction fails, close the link: that unblocks
	// the other direction here and tells the peer at once, instead of leaving
	// it waiting for bytes that will never come.
	abort := func() { _ = c.Close() }
	stop := context.AfterFunc(ctx, abort)
	defer stop()

	var seed [32]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return exchangeResult{Err: fmt.Errorf("seed: %w", err)}
	}
	verdict := make(chan bool, 1) // our verdict on the peer's bytes, from the reader to the writer
	sendErr := make(chan error, 1)
	headerSent := make(chan struct{})
	var lingering atomic.Bool // the reader closes the link, after a linger
	go func() {
		err := sendHeader(c, self, peer, n, seed)
		close(headerSent)
		if err == nil {
			err = sendBody(c, n, seed)
		}
		ok := <-verdict
		if err == nil {
			err = writeVerdict(c, ok)
		}
		if err != nil && !lingering.Load() {
			abort()
		}
		sendErr <- err
	}()

	verified, recvErr := recvPayload(c, self, peer, n)
	verdict <- recvErr == nil
	peerOK := false
	var mismatch *mismatchError
	var badHeader *headerError
	if errors.As(recvErr, &badHeader) {
		// The peer was started with other settings (--bytes) or is not the
		// rank expected. It is about to find the same in this side's
		// header: closing now would reset the link and wipe that header
		// from its receive buffer, so that it could only report "connection
		// reset". Finish the header, stop the payload, and let the peer
		// read and hang up first.
		lingering.Store(true)
		<-headerSent
		_ = c.SetWriteDeadline(time.Now())
		<-sendErr // stopped by the deadline; its error is this one's consequence
		sendErr <- nil
		linger(c)
		abort()
	} else if recvErr == nil || errors.As(recvErr, &mismatch) {
		// The stream is still in step: the peer's verdict comes next.
		var err error
		if peerOK, err = readVerdict(c); err != nil && recvErr == nil {
			recvErr = err
		}
	} else {
		abort()
	}
	wErr := <-sendErr
	res := exchangeResult{Verified: verified, PeerVerified: peerOK, Elapsed: time.Since(start)}
	switch {
	case recvErr != nil:
		res.Err = recvErr
		if mismatch != nil && !peerOK {
			res.Err = fmt.Errorf("%w; and rank %d reports the same of the bytes rank %d sent", recvErr, peer, self)
		}
	case wErr != nil:
		res.Err = fmt.Errorf("sending: %w", wErr)
	case !peerOK:
		res.Err = fmt.Errorf("rank %d reports that the bytes it received from rank %d were not the bytes sent", peer, self)
	}
	if res.Err != nil && ctx.Err() != nil {
		res.Err = fmt.Errorf("%w (%w)", res.Err, context.Cause(ctx))
	}
	return res
}

// lingerTime bounds how long a side that found the peer's header wrong
// waits for the peer to read its own header and hang up.
const lingerTime = time.Second

// linger half-closes c where it can (the peer reads EOF after this side's
// header), then discards what the peer still sends until it hangs up or
// lingerTime passes: closing with unread bytes would reset the link.
func linger(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = c.SetReadDeadline(time.Now().Add(lingerTime))
	_, _ = io.Copy(io.Discard, c)
}

// headerError says that the peer's header arrived whole but does not fit
// this side's exchange.
type headerError struct{ msg string }

func (e *headerError) Error() string { return "header: " + e.msg }

// sendHeader writes the header.
func sendHeader(w io.Writer, self, peer int, n int64, seed [32]byte) error {
	var h [headerSize]byte
	copy(h[:4], exchangeMagic[:])
	binary.BigEndian.PutUint16(h[4:], exchangeVersion)
	binary.BigEndian.PutUint32(h[6:], uint32(self))
	binary.BigEndian.PutUint32(h[10:], uint32(peer))
	binary.BigEndian.PutUint64(h[14:], uint64(n))
	copy(h[22:], seed[:])
	if _, err := w.Write(h[:]); err != nil {
		return fmt.Errorf("header: %w", err)
	}
	return nil
}

// sendBody writes the payload.
func sendBody(w io.Writer, n int64, seed [32]byte) error {
	stream, err := payloadStream(seed)
	if err != nil {
		return err
	}
	buf := make([]byte, min(n, chunkSize))
	for sent := int64(0); sent < n; {
		b := buf[:min(n-sent, int64(len(buf)))]
		stream.fill(b)
		if _, err := w.Write(b); err != nil {
			return fmt.Errorf("after %d of %d bytes: %w", sent, n, err)
		}
		sent += int64(len(b))
	}
	return nil
}

// recvPayload reads the peer's header and payload and compares the payload
// with the stream the header's seed generates. It returns how many bytes
// verified: all n, or 0 with an error.
func recvPayload(r io.Reader, self, peer int, n int64) (int64, error) {
	var h [headerSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, fmt.Errorf("reading header: %w", err)
	}
	if !bytes.Equal(h[:4], exchangeMagic[:]) {
		return 0, &headerError{fmt.Sprintf("bad magic %q", h[:4])}
	}
	if v := binary.BigEndian.Uint16(h[4:]); v != exchangeVersion {
		return 0, &headerError{fmt.Sprintf("version %d, want %d", v, exchangeVersion)}
	}
	if from, to := binary.BigEndian.Uint32(h[6:]), binary.BigEndian.Uint32(h[10:]); int64(from) != int64(peer) || int64(to) != int64(self) {
		return 0, &headerError{fmt.Sprintf("bytes from rank %d to rank %d on the link between %d and %d", from, to, peer, self)}
	}
	if got := binary.BigEndian.Uint64(h[14:]); got != uint64(n) {
		return 0, &headerError{fmt.Sprintf("rank %d sends %d bytes, this rank expects %d (use the same --bytes on every rank)", peer, got, n)}
	}
	stream, err := payloadStream([32]byte(h[22:]))
	if err != nil {
		return 0, err
	}
	got := make([]byte, min(n, chunkSize))
	want := make([]byte, len(got))
	firstBad, bad := int64(-1), int64(0)
	for off := int64(0); off < n; {
		k := min(n-off, int64(len(got)))
		if _, err := io.ReadFull(r, got[:k]); err != nil {
			return 0, fmt.Errorf("payload: after %d of %d bytes: %w", off, n, err)
		}
		stream.fill(want[:k])
		if !bytes.Equal(got[:k], want[:k]) {
			for i := range k {
				if got[i] != want[i] {
					if firstBad < 0 {
						firstBad = off + i
					}
					bad++
				}
			}
		}
		off += k
	}
	if bad > 0 {
		return 0, &mismatchError{peer: peer, n: n, bad: bad, first: firstBad}
	}
	return n, nil
}

// keystream is the pseudo-random payload of one direction.
type keystream struct{ cipher.Stream }

// payloadStream returns the payload stream for seed: AES-128-CTR, which runs
// at gigabytes per second with AES instructions, so that generating and
// checking the bytes never limits what the exchange measures.
func payloadStream(seed [32]byte) (keystream, error) {
	block, err := aes.NewCipher(seed[:16])
	if err != nil {
		return keystream{}, fmt.Errorf("payload stream: %w", err)
	}
	return keystream{cipher.NewCTR(block, seed[16:])}, nil
}

// fill overwrites b with the next len(b) bytes of the stream.
func (k keystream) fill(b []byte) {
	clear(b)
	k.XORKeyStream(b, b)
}

// mismatchError reports a payload that arrived whole but not as sent; the
// stream is still in step after it.
type mismatchError struct {
	peer          int
	n, bad, first int64
}

func (e *mismatchError) Error() string {
	return fmt.Sprintf("payload: %d of %d bytes differ from what rank %d sent, the first at offset %d", e.bad, e.n, e.peer, e.first)
}

func writeVerdict(w io.Writer, ok bool) error {
	b := []byte{1}
	if ok {
		b[0] = 0
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("verdict: %w", err)
	}
	return nil
}

func readVerdict(r io.Reader) (bool, error) {
	var b [1]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return false, fmt.Errorf("reading the peer's verdict: %w", err)
	}
	switch b[0] {
	case 0:
		return true, nil
	case 1:
		return false, nil
	}
	return false, errors.New("peer's verdict: bad byte")
}
