package netsim

import (
	"io"
	"sync"
	"time"
)

// stream is one direction of an established TCP connection. Data is not
// cut into packets: the writer copies it once into a ring buffer and the
// reader copies it out. With shaping, each chunk of a write gets the time
// it arrives, computed over the connection's links (serialization queued
// behind other traffic on each link, then latency and jitter), and the
// reader sees a chunk only from that time on; arrival times never go
// backwards, so data is never reordered. Without shaping, data is readable
// at once and no timer is involved. The ring is the connection's window: a
// writer blocks while the reader has that much in flight or unread.
type stream struct {
	mu      sync.Mutex
	buf     []byte // ring, len a power of two (grown on demand up to max)
	max     int
	r, w    int64 // bytes read, bytes written
	arrived int64 // bytes before this offset have arrived
	marks   []mark
	mhead   int
	lastAt  time.Time // arrival of the latest chunk

	fin   bool // the writer's FIN arrived: EOF once drained
	rshut bool // the reader shut down reading (CloseRead): EOF once drained
	rrst  bool // the connection was reset: errReset once drained
	wrst  bool // the connection was reset: writes fail with errReset
	wshut bool // the writer sent FIN: further writes fail
	sink  sinkKind
	sunk  bool // the writer has been told about sink

	rwait, wwait bool
	rwake, wwake chan struct{}
	timer        *time.Timer

	hops    []hop
	pathSet bool
	shaped  bool          // latency, jitter or bandwidth on the path
	paced   bool          // bandwidth on the path: writes go a segment at a time
	latency time.Duration // sum of the links' latencies
	wtimer  *time.Timer   // the writer's pacing timer
}

type mark struct {
	end int64
	at  time.Time
}

// sinkKind says what happens to data written after the reader went away.
type sinkKind uint8

const (
	sinkNone      sinkKind = iota
	sinkReset              // the reading socket is closed: its host answers RST
	sinkBlackhole          // the reading host is down or the path dead: no answer, the writer times out
)

// segment is the unit of shaping: a write is carried as chunks of at most
// this many bytes, each with its own arrival time.
const segment = 16 << 10

func newStream(max int) *stream {
	return &stream{max: max, rwake: make(chan struct{}, 1), wwake: make(chan struct{}, 1)}
}

// setPath sets the links the stream's data crosses, once.
func (s *stream) setPath(hops []hop) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pathSet {
		return
	}
	s.pathSet = true
	s.hops = hops
	for _, h := range hops {
		s.shaped = s.shaped || h.l.shaped
		s.paced = s.paced || h.l.cfg.Bandwidth > 0
		s.latency += h.l.cfg.Latency
	}
}

// write copies p into the stream, blocking while the window is full and,
// on links with limited bandwidth, while the writer is ahead of its share
// of the link. wait blocks until the wake channel or the timer fires, or
// fails with the writer's deadline or close. gone is called (without locks)
// the first time data goes to a sink.
func (s *stream) write(p []byte, wait func(chan struct{}, <-chan time.Time) error, gone func(sinkKind)) (int, error) {
	total := 0
	for {
		s.mu.Lock()
		if s.wrst {
			s.mu.Unlock()
			return total, errReset
		}
		if s.wshut {
			s.mu.Unlock()
			return total, errPipe
		}
		if s.sink != sinkNone {
			kind, first := s.sink, !s.sunk
			s.sunk = true
			s.mu.Unlock()
			if first {
				gone(kind)
			}
			return total + len(p), nil
		}
		if len(p) == 0 {
			s.mu.Unlock()
			return total, nil
		}
		space := s.max - int(s.w-s.r)
		if space <= 0 {
			s.wwait = true
			s.mu.Unlock()
			if err := wait(s.wwake, nil); err != nil {
				return total, err
			}
			continue
		}
		n := min(space, len(p))
		if s.paced {
			n = min(n, segment)
		}
		s.put(p[:n])
		var pace time.Duration
		if s.shaped {
			pace = s.schedule(n)
		} else if s.mhead == len(s.marks) {
			s.arrived = s.w
		} else {
			s.marks = append(s.marks, mark{end: s.w, at: s.lastAt})
		}
		if s.rwait {
			s.rwait = false
			poke(s.rwake)
		}
		var tc <-chan time.Time
		if pace > 0 {
			if s.wtimer == nil {
				s.wtimer = time.NewTimer(pace)
			} else {
				s.wtimer.Reset(pace)
			}
			tc = s.wtimer.C
		}
		s.mu.Unlock()
		total += n
		p = p[n:]
		if tc != nil {
			if err := wait(nil, tc); err != nil {
				return total, err
			}
		}
		if len(p) == 0 {
			return total, nil
		}
	}
}

// put copies p into the ring at s.w, growing the ring if needed.
func (s *stream) put(p []byte) {
	used := int(s.w - s.r)
	if used+len(p) > len(s.buf) {
		s.grow(used + len(p))
	}
	mask := int64(len(s.buf) - 1)
	i := int(s.w & mask)
	n := copy(s.buf[i:], p)
	copy(s.buf, p[n:])
	s.w += int64(len(p))
}

func (s *stream) grow(need int) {
	size := max(len(s.buf), 4<<10)
	for size < need {
		size *= 2
	}
	nb := make([]byte, size)
	if len(s.buf) > 0 {
		mask := int64(len(s.buf) - 1)
		for off := s.r; off < s.w; {
			i := int(off & mask)
			end := min(int64(len(s.buf)-i), s.w-off)
			copy(nb[int(off&int64(size-1)):], s.buf[i:i+int(end)])
			off += end
		}
	}
	s.buf = nb
}

// schedule gives the last n bytes written their arrival times, and returns
// how long the writer should wait before sending more.
func (s *stream) schedule(n int) time.Duration {
	var pace time.Duration
	now := time.Now()
	end := s.w - int64(n)
	for n > 0 {
		chunk := min(n, segment)
		end += int64(chunk)
		n -= chunk
		t := now
		for _, h := range s.hops {
			var excess time.Duration
			t, excess = h.l.carry(t, chunk, h.dir)
			pace = max(pace, excess)
		}
		if t.Before(s.lastAt) {
			t = s.lastAt
		}
		s.lastAt = t
		if !t.After(now) && s.mhead == len(s.marks) {
			s.arrived = end
			continue
		}
		s.marks = append(s.marks, mark{end: end, at: t})
	}
	return pace
}

// advance makes the chunks that have arrived by now readable.
func (s *stream) advance(now time.Time) {
	for s.mhead < len(s.marks) && !s.marks[s.mhead].at.After(now) {
		s.arrived = s.marks[s.mhead].end
		s.mhead++
	}
	if s.mhead == len(s.marks) {
		s.marks, s.mhead = s.marks[:0], 0
	} else if s.mhead > 1024 && s.mhead*2 > len(s.marks) {
		k := copy(s.marks, s.marks[s.mhead:])
		s.marks, s.mhead = s.marks[:k], 0
	}
}

// read copies arrived data into p, blocking until some arrives. wait blocks
// until the wake channel or timer fires, or fails with the reader's
// deadline or close.
func (s *stream) read(p []byte, wait func(chan struct{}, <-chan time.Time) error) (int, error) {
	for {
		s.mu.Lock()
		if s.mhead < len(s.marks) {
			s.advance(time.Now())
		}
		if avail := s.arrived - s.r; avail > 0 {
			n := s.get(p, avail)
			if s.wwait {
				s.wwait = false
				poke(s.wwake)
			}
			s.mu.Unlock()
			return n, nil
		}
		if len(p) == 0 {
			s.mu.Unlock()
			return 0, nil
		}
		// Linux's order (tcp_recvmsg): the peer's FIN, then the pending
		// error of a reset, then a shutdown of reading.
		if s.fin {
			s.mu.Unlock()
			return 0, io.EOF
		}
		if s.rrst {
			s.mu.Unlock()
			return 0, errReset
		}
		if s.rshut {
			s.mu.Unlock()
			return 0, io.EOF
		}
		var tc <-chan time.Time
		if s.mhead < len(s.marks) {
			d := time.Until(s.marks[s.mhead].at)
			if s.timer == nil {
				s.timer = time.NewTimer(d)
			} else {
				s.timer.Reset(d)
			}
			tc = s.timer.C
		}
		s.rwait = true
		s.mu.Unlock()
		if err := wait(s.rwake, tc); err != nil {
			return 0, err
		}
	}
}

func (s *stream) get(p []byte, avail int64) int {
	n := int(min(int64(len(p)), avail))
	mask := int64(len(s.buf) - 1)
	i := int(s.r & mask)
	k := copy(p[:n], s.buf[i:])
	copy(p[k:n], s.buf)
	s.r += int64(n)
	return n
}

// pending reports how many bytes have arrived and not been read, and when
// the last byte still in flight arrives (zero if none is).
func (s *stream) pending(now time.Time) (arrived int64, inflight time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(now)
	if s.mhead < len(s.marks) {
		inflight = s.marks[len(s.marks)-1].at
	}
	return s.arrived - s.r, inflight
}

// finAt marks the writer's FIN sent and returns when it arrives: after the
// last data, and no earlier than one path latency from now.
func (s *stream) shutWrite(now time.Time) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wshut = true
	t := now.Add(s.latency)
	if s.lastAt.After(t) {
		t = s.lastAt
	}
	s.lastAt = t
	if s.wwait {
		s.wwait = false
		poke(s.wwake)
	}
	return t
}

// setFin records the FIN's arrival.
func (s *stream) setFin() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fin = true
	if s.rwait {
		s.rwait = false
		poke(s.rwake)
	}
}

// shutRead records a shutdown of reading (CloseRead): reads return io.EOF
// once drained, unless the connection is reset meanwhile.
func (s *stream) shutRead() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rshut = true
	if s.rwait {
		s.rwait = false
		poke(s.rwake)
	}
}

// resetReader records a RST arriving at the reader at now: data that had
// not arrived is discarded, and once the rest is read, reads fail with
// errReset.
func (s *stream) resetReader(now time.Time, then sinkKind) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(now)
	s.w = s.arrived
	s.marks, s.mhead = s.marks[:0], 0
	s.rrst = true
	if s.sink == sinkNone {
		s.sink = then
	}
	if s.rwait {
		s.rwait = false
		poke(s.rwake)
	}
	if s.wwait {
		s.wwait = false
		poke(s.wwake)
	}
}

// failWriter makes further writes fail with errReset.
func (s *stream) failWriter() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wrst = true
	if s.wwait {
		s.wwait = false
		poke(s.wwake)
	}
}

// cutPath says where data written from now on goes when the path to a
// reader that is still there dies (a NAT on it expired its mapping): data
// written before, arrived or still on its way, stays readable.
func (s *stream) cutPath(k sinkKind) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sink == sinkNone {
		s.sink = k
	}
	if s.wwait {
		s.wwait = false
		poke(s.wwake)
	}
}

// setSink says where data goes once the reader is gone: what it had not
// read is discarded.
func (s *stream) setSink(k sinkKind) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sink == sinkNone {
		s.sink = k
	}
	s.r, s.arrived = s.w, s.w
	s.marks, s.mhead = s.marks[:0], 0
	if s.wwait {
		s.wwait = false
		poke(s.wwake)
	}
}
