package netsim

import "time"

// The scheduler runs the emulated network's events (packets arriving at a
// hop, retransmission timers, mapping expiry) in time order. It owns no
// goroutine: a single time.AfterFunc timer is armed for the earliest event,
// and its callback runs every due event under Internet.mu. Events due at the
// same instant run in the order they were scheduled, which keeps a run
// deterministic for a given seed. Under testing/synctest the timer is a
// virtual-time timer, so a 2-minute SYN backoff takes no real time.

type event struct {
	at  time.Time
	seq uint64
	fn  func()
}

func (a *event) before(b *event) bool {
	if a.at.Equal(b.at) {
		return a.seq < b.seq
	}
	return a.at.Before(b.at)
}

// after schedules fn to run d from now (immediately if d <= 0, but never
// inline). Caller holds in.mu.
func (in *Internet) after(d time.Duration, fn func()) {
	in.at(in.now().Add(d), fn)
}

// at schedules fn to run at t. Caller holds in.mu.
func (in *Internet) at(t time.Time, fn func()) {
	if in.closed {
		return
	}
	in.seq++
	in.events = append(in.events, event{at: t, seq: in.seq, fn: fn})
	in.siftUp(len(in.events) - 1)
	if !in.running && (in.armed.IsZero() || t.Before(in.armed)) {
		// (While run runs, it takes due events itself and re-arms at the
		// end: resetting the timer from inside it is never needed, and a
		// reset to 0 there has crashed the race runtime under synctest in
		// Go 1.26: SIGSEGV in __tsan::SlotLock under timer.modify.)
		in.armed = t
		in.timer.Reset(time.Until(t))
	}
}

// run is the timer callback: it runs every event that is due.
func (in *Internet) run() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.armed = time.Time{}
	in.running = true
	defer func() { in.running = false }()
	for !in.closed && len(in.events) > 0 {
		now := in.now()
		if in.events[0].at.After(now) {
			break
		}
		ev := in.pop()
		ev.fn()
	}
	if !in.closed && len(in.events) > 0 {
		in.armed = in.events[0].at
		in.timer.Reset(time.Until(in.armed))
	}
}

func (in *Internet) pop() event {
	h := in.events
	ev := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h[last] = event{}
	in.events = h[:last]
	in.siftDown(0)
	return ev
}

func (in *Internet) siftUp(i int) {
	h := in.events
	for i > 0 {
		p := (i - 1) / 2
		if !h[i].before(&h[p]) {
			return
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (in *Internet) siftDown(i int) {
	h := in.events
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h[r].before(&h[l]) {
			m = r
		}
		if !h[m].before(&h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}
