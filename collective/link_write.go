package collective

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/fnmesh/fnmesh/internal/crc32c"
)

// Writing a link: the calling goroutine writes, holding the write token
// (wsem).

// writeStarts counts a write of n bytes in progress: if nobody reads the
// link, the drain goroutine starts reading it, in case the peer is writing
// to this rank at the same time and waits for it to read: after writeKick
// for a large write, after at most idleKick for a small one (which blocks
// only when the peer has left many unread).
func (l *link) writeStarts(n int) {
	l.mu.Lock()
	l.writing++
	if n >= writeKickMin && l.sock == nil && l.readable() { // a socket's writer pumps the link itself
		l.armTimer(writeKick)
	}
	l.mu.Unlock()
}

func (l *link) writeEnds() {
	l.mu.Lock()
	l.writing--
	l.mu.Unlock()
}

// send writes one message made of bufs (concatenated) under key k. The
// header and the buffers go out in one vectored write (writev on TCP). If
// ctx can end, its end interrupts the write: a write interrupted before any
// byte went out leaves the link usable, one interrupted mid-frame breaks it.
// Collectives pass a nil ctx: their cancellation aborts the communicator.
func (l *link) send(ctx context.Context, k key, bufs [][]byte) error {
	return l.sendSum(ctx, k, bufs, msgSum{})
}

// sendSum is send of a payload whose CRC32C is sum.crc when sum.ok: a
// message this rank received, verified, and now forwards unchanged. The
// payload is not read again to checksum it, and goes out in one vectored
// write (the check at the far end is then against the checksum its first
// sender computed).
func (l *link) sendSum(ctx context.Context, k key, bufs [][]byte, sum msgSum) error {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	if n > l.t.maxFrame {
		return fmt.Errorf("%w: message of %d bytes exceeds the limit of %d (WithMaxFrame)", ErrFrameTooLarge, n, l.t.maxFrame)
	}
	if l.conn == nil {
		if ctx != nil && ctx.Err() != nil {
			return ctx.Err() // as a send to a peer whose context ended before it wrote anything
		}
		return l.sendSelf(k, bufs, n)
	}
	h := header{key: k, n: n}
	streamed := l.t.checksum && n >= streamMin
	switch {
	case streamed:
		h.flags = flagTrailer
	case l.t.checksum:
		h.flags = flagPayload
		if sum.ok {
			h.payload = sum.crc
			break
		}
		for _, b := range bufs {
			h.payload = crc32c.Update(h.payload, b)
		}
	}

	if err := l.lockWrite(ctx); err != nil {
		return err
	}
	written, err := l.writeFrame(ctx, h, bufs, streamed && !sum.ok, sum.crc)
	l.unlockWrite() // before failing the transport, which writes an abort frame
	if err == nil {
		return nil
	}
	if written < 0 { // nothing was attempted
		return err
	}
	if ctx != nil && ctx.Err() != nil && written == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
		return ctx.Err()
	}
	if ferr := l.t.failure(); ferr != nil {
		return ferr
	}
	perr := l.peerErr(fmt.Errorf("write: %w", err))
	if ctx != nil && ctx.Err() != nil {
		perr = l.peerErr(fmt.Errorf("send interrupted mid-frame: %w", ctx.Err()))
	}
	l.t.fail(perr)
	return l.t.failureOr(perr)
}

// writeFrame writes one frame with the write token held: if streamed, the
// payload a chunk at a time with the checksum it computes in the trailer,
// otherwise in one vectored write, with trailer as the trailer if the frame
// has one. written is -1 when it wrote nothing because the transport had
// failed or ctx had ended.
func (l *link) writeFrame(ctx context.Context, h header, bufs [][]byte, streamed bool, trailer uint32) (written int64, err error) {
	if err := l.t.failure(); err != nil {
		return -1, err
	}
	armed := ctx != nil && ctx.Done() != nil
	if armed {
		if err := ctx.Err(); err != nil {
			return -1, err
		}
		l.wint.arm(ctx)
	}
	putHeader(l.whdr[:], h)
	l.writeStarts(h.n)
	if streamed {
		written, err = l.writeStreamed(bufs)
	} else {
		l.wvec = append(l.wvec[:0], l.whdr[:])
		for _, b := range bufs {
			if len(b) > 0 {
				l.wvec = append(l.wvec, b)
			}
		}
		if h.flags&flagTrailer != 0 {
			binary.LittleEndian.PutUint32(l.wtrail[:], trailer)
			l.wvec = append(l.wvec, l.wtrail[:])
		}
		written, err = l.flush()
	}
	l.writeEnds()
	if armed {
		l.wint.disarm()
	}
	return written, err
}

// abortWait bounds how long a failing rank tries to tell a peer why: to get
// the link's write token from a write in progress (which the closing of the
// link then ends) and to write the abort frame (a peer that reads nothing,
// or that fails at the same moment, over a synchronous conn).
const abortWait = 100 * time.Millisecond

// writeAbort tells the peer that this rank's communicator failed with err
// (an abort frame, see frame.go), if it can within abortWait. The link is
// halted; the caller closes it next.
func (l *link) writeAbort(err error) {
	timer := time.NewTimer(abortWait)
	defer timer.Stop()
	select {
	case l.wsem <- struct{}{}:
	case <-timer.C:
		return // a write in progress: the peer will see the frame cut short
	}
	defer l.unlockWrite()
	text := err.Error()
	if len(text) > abortMax {
		text = text[:abortMax]
	}
	h := header{n: len(text), flags: flagAbort | flagPayload, payload: crc32c.Checksum([]byte(text))}
	if errors.Is(err, ErrMismatch) {
		h.tag = abortMismatch
	}
	var hdr [hdrLen]byte
	putHeader(hdr[:], h)
	_ = l.conn.SetWriteDeadline(time.Now().Add(abortWait))
	bufs := net.Buffers{hdr[:], []byte(text)}
	_, _ = bufs.WriteTo(l.conn)
}

// lockWrite takes the link's write token, waiting while another write
// holds it; if ctx (nil for collectives) ends first it returns ctx's error
// and nothing was written. The uncontended case is one non-blocking
// channel send.
func (l *link) lockWrite(ctx context.Context) error {
	select {
	case l.wsem <- struct{}{}:
		return nil
	default:
	}
	var done <-chan struct{}
	if ctx != nil {
		done = ctx.Done()
	}
	select {
	case l.wsem <- struct{}{}:
		return nil
	case <-done: // nil: never
		return ctx.Err()
	}
}

func (l *link) unlockWrite() { <-l.wsem }

// flush writes l.wvec with one vectored write and empties it.
func (l *link) flush() (n int64, err error) {
	if l.sock != nil {
		n, err = l.sock.writeAll(l.wvec, l.pump)
	} else {
		l.wtmp = l.wvec
		n, err = l.wtmp.WriteTo(l.conn)
	}
	clear(l.wvec) // drop references to the caller's buffers
	l.wvec = l.wvec[:0]
	return n, err
}

// writeStreamed writes the header (already in whdr) and a large payload in
// writes of writeChunk bytes, computing the payload's CRC32C on each chunk
// just before writing it, while it is in cache for the kernel's copy, and
// sends the checksum in a 4-byte trailer.
func (l *link) writeStreamed(bufs [][]byte) (int64, error) {
	if l.sock != nil {
		return l.writeStreamedSock(bufs)
	}
	var (
		crc   uint32
		total int64
		size  int
	)
	l.wvec = append(l.wvec[:0], l.whdr[:])
	for _, b := range bufs {
		for len(b) > 0 {
			piece := b[:min(len(b), writeChunk-size)]
			b = b[len(piece):]
			crc = crc32c.Update(crc, piece)
			l.wvec = append(l.wvec, piece)
			if size += len(piece); size == writeChunk {
				n, err := l.flush()
				total += n
				if err != nil {
					return total, err
				}
				size = 0
			}
		}
	}
	binary.LittleEndian.PutUint32(l.wtrail[:], crc)
	l.wvec = append(l.wvec, l.wtrail[:])
	n, err := l.flush()
	return total + n, err
}

// sendSelf delivers a message to this rank's own queues.
func (l *link) sendSelf(k key, bufs [][]byte, n int) error {
	var (
		b  []byte
		pb *pbuf
	)
	if k.tag&internalBit != 0 {
		b, pb = getBuf(n)
	} else {
		b = make([]byte, n)
	}
	off := 0
	for _, x := range bufs {
		off += copy(b[off:], x)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		putBuf(pb)
		return l.err
	}
	l.arrived(k, inbound{b: b, pb: pb})
	return nil
}

// writeStreamedSock is writeStreamed over a socket: the payload is
// checksummed a chunk at a time up to writeAhead bytes ahead of what has
// been written (so that it is still in cache when the kernel copies it),
// everything checksummed goes out in as few writes as the socket takes, and
// while the socket is full the next chunk is checksummed instead of
// waiting.
func (l *link) writeStreamedSock(bufs [][]byte) (int64, error) {
	l.wvec = append(l.wvec[:0], l.whdr[:])
	total := hdrLen + 4
	for _, b := range bufs {
		if len(b) > 0 {
			l.wvec = append(l.wvec, b)
			total += len(b)
		}
	}
	l.wvec = append(l.wvec, l.wtrail[:])
	segs := l.wvec
	defer func() {
		clear(l.wvec)
		l.wvec = l.wvec[:0]
	}()
	var (
		crc     uint32
		ci, co  = 1, 0   // checksum position: segment, offset
		ready   = hdrLen // bytes of the stream that may go out
		done    bool     // the payload is checksummed and the trailer filled in
		written int
		cur     = wcursor{segs: segs}
		pl      = poller{spin: l.sock.spin}
	)
	defer pl.stop()
	// more checksums the next chunk of the payload; false when all is.
	more := func() bool {
		if done {
			return false
		}
		for left := writeChunk; left > 0 && ci < len(segs)-1; {
			b := segs[ci][co:]
			k := min(len(b), left)
			crc = crc32c.Update(crc, b[:k])
			ready, left, co = ready+k, left-k, co+k
			if co == len(segs[ci]) {
				ci, co = ci+1, 0
			}
		}
		if ci == len(segs)-1 {
			binary.LittleEndian.PutUint32(l.wtrail[:], crc)
			ready += 4
			done = true
		}
		return true
	}
	for written < total {
		for !done && ready-written < writeAhead {
			more()
		}
		n, full, err := l.sock.tryWrite(&cur, ready-written, pl.park)
		written += n
		switch {
		case err != nil:
			return int64(written), err
		case !full:
			pl.reset()
		case more():
			// Checksummed the next chunk while the peer drains the socket.
		case l.pump():
			// Read what the peer sent meanwhile.
		default:
			pl.idle()
		}
	}
	return int64(written), nil
}
