package rendezvous

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// startMargin is added to the slowest member's one-way delay when the server
// picks the moment every member of a job starts punching.
const startMargin = 20 * time.Millisecond

type jobState uint8

const (
	jobWaiting  jobState = iota // members are arriving
	jobPunching                 // peer table sent; pairs are punching, being decided, relayed
	jobGone                     // completed or failed; removed from the server
)

// job is one job's state on the server. Its timers are time.AfterFunc
// timers: a waiting job costs no goroutine of its own.
type job struct {
	s     *Server
	id    string
	key   []byte
	world int

	mu       sync.Mutex
	state    jobState
	members  []*member       // waiting: in join order; punching: indexed by rank
	taken    map[int]*member // ranks asked for while waiting
	timer    *time.Timer     // job timeout
	deadline time.Time       // when timer fires
	joinedN  atomic.Int32    // members joined: len(members) while waiting, then the world; read without mu by every member's pings

	// Punching state.
	punchTimeout time.Duration
	pairs        pairTable // every pair's reports and decided tier
	undecided    int
	notDone      int
	relays       map[[2]int]*relaySlot // pairs decided for relay whose connections have not both arrived
	safety       *time.Timer           // decides relay for pairs whose reports never came
}

// admit adds a member to its job, creating the job if needed.
func (s *Server) admit(m *member) error {
	for {
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			return errShutdown()
		}
		j := s.jobs[m.req.Job]
		if j == nil {
			j = &job{s: s, id: m.req.Job, key: m.key, world: m.req.World, taken: map[int]*member{}}
			j.deadline = time.Now().Add(s.cfg.jobTimeout)
			j.timer = time.AfterFunc(s.cfg.jobTimeout, j.timeout)
			s.jobs[j.id] = j
			s.met.jobs.Add(1)
			s.cfg.log.Info("job created", "job", j.id, "world", j.world)
		}
		s.mu.Unlock()
		if ok, err := j.add(m); ok {
			return err
		}
		// The job ended between the lookup and the lock: look again.
	}
}

// add adds m to a waiting job; ok is false if the job is gone.
func (j *job) add(m *member) (ok bool, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	switch {
	case j.state == jobGone:
		return false, nil
	case j.state != jobWaiting:
		return true, &Error{Code: CodeBadRequest, Rank: -1,
			Msg: fmt.Sprintf("job %q already has its %d members", j.id, j.world)}
	case m.req.World != j.world:
		return true, &Error{Code: CodeBadRequest, Rank: -1,
			Msg: fmt.Sprintf("job %q has world size %d, not %d", j.id, j.world, m.req.World)}
	}
	if r := m.req.Rank; r >= 0 {
		if j.taken[r] != nil {
			return true, &Error{Code: CodeBadRequest, Rank: r,
				Msg: fmt.Sprintf("rank %d of job %q is already taken", r, j.id)}
		}
		j.taken[r] = m
	}
	j.members = append(j.members, m)
	n := len(j.members)
	j.joinedN.Store(int32(n))
	m.job = j
	j.s.met.members.Add(1)
	j.s.met.joins.Add(1)
	m.send(joined{World: j.world, Joined: n, MAC: joinedMAC(j.key, m.req.ClientNonce, m.req.Echo, j.world, n)})
	if len(j.members) == j.world {
		j.begin()
	}
	return true, nil
}

// begin starts the punch round of a complete job: ranks, peer table, and one
// start time for every member, so that every pair's SYNs cross the internet
// within about half a round trip of each other. All pairs punch at once.
func (j *job) begin() {
	byRank := make([]*member, j.world)
	for r, m := range j.taken {
		byRank[r] = m
	}
	next := 0
	for _, m := range j.members {
		if m.req.Rank >= 0 {
			continue
		}
		for byRank[next] != nil {
			next++
		}
		byRank[next] = m
	}
	var table peers
	var maxOWD time.Duration
	j.punchTimeout = 0
	for r, m := range byRank {
		m.rank = r
		table.Members = append(table.Members, peerEntry{Observed: m.observed, Public: m.req.Public, Private: m.req.Private})
		maxOWD = max(maxOWD, m.owd())
		if pt := m.req.PunchTimeout; pt > 0 && (j.punchTimeout == 0 || pt < j.punchTimeout) {
			j.punchTimeout = pt
		}
	}
	// Members may ask for less than the server's punch timeout, never more:
	// the job's deadline is extended to fit it (below), and only the
	// server's own configuration may decide how far.
	if j.punchTimeout == 0 || j.punchTimeout > j.s.cfg.punchTimeout {
		j.punchTimeout = j.s.cfg.punchTimeout
	}
	// A member's round trip is measured from the challenge to its join
	// (bounded by the handshake timeout, and by the kernel's own smallest
	// sample where the connection is an OS socket) and only ever lowered
	// by pings;
	// cap it all the same, so that the start time, too, stays within the
	// server's configuration.
	maxOWD = min(maxOWD, j.s.cfg.handshakeTimeout/2)
	j.members = byRank
	j.taken = nil
	j.state = jobPunching
	n := j.world
	j.pairs = newPairTable(n)
	j.undecided = n * (n - 1) / 2
	j.notDone = n
	j.relays = map[[2]int]*relaySlot{}
	j.s.met.punchAttempts.Add(int64(j.undecided))

	startAt := time.Now().Add(maxOWD + startMargin)
	raw := encodeFrame(table)
	for _, m := range byRank {
		m.enqueue(outItem{raw: raw})
		m.enqueue(outItem{msg: start{Rank: m.rank, PunchTimeout: j.punchTimeout, RelayTimeout: j.s.cfg.relayTimeout}, startAt: startAt})
	}
	if j.undecided > 0 {
		slack := time.Second + 4*maxOWD
		j.safety = time.AfterFunc(time.Until(startAt)+j.punchTimeout+slack, j.decideRemaining)
	}
	// The mesh must be able to finish: give it at least its punch and relay
	// time, whatever is left of the job timeout. Every term is bounded by
	// the server's configuration (the punch timeout was capped above).
	if need := time.Until(startAt) + j.punchTimeout + 2*j.s.cfg.relayTimeout + 10*time.Second; need > time.Until(j.deadline) {
		j.deadline = time.Now().Add(need)
		j.timer.Reset(need)
	}
	j.s.cfg.log.Info("job complete: punching", "job", j.id, "world", n, "pairs", j.undecided,
		"start_in", time.Until(startAt), "punch_timeout", j.punchTimeout)
}

// report records one side's outcome for a pair and decides the pair when it can.
func (j *job) report(m *member, r report) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	switch j.state {
	case jobGone:
		return nil
	case jobWaiting:
		return &Error{Code: CodeBadRequest, Rank: -1, Msg: "report before the job started"}
	}
	a, b := m.rank, r.Peer
	if b >= j.world || b == a {
		return &Error{Code: CodeBadRequest, Rank: b, Msg: fmt.Sprintf("report from rank %d about invalid peer %d", a, b)}
	}
	if j.pairs.report(a, b) != 0 {
		return &Error{Code: CodeBadRequest, Rank: b, Msg: fmt.Sprintf("second report from rank %d about peer %d", a, b)}
	}
	j.pairs.setReport(a, b, 1+uint8(r.Outcome))
	lo, hi := min(a, b), max(a, b)
	if j.pairs.tier(lo, hi) != 0 {
		return nil // decided already (the other side failed, or the deadline passed)
	}
	if r.Outcome == outcomeFailed {
		j.decide(lo, hi, TierRelay)
		return nil
	}
	other := j.pairs.report(b, a)
	if other == 0 {
		return nil // wait for the other side
	}
	tier := TierPunched
	if r.Outcome == outcomeLAN || outcome(other-1) == outcomeLAN || j.members[a].hasNoNAT() || j.members[b].hasNoNAT() {
		tier = TierDirect
	}
	j.decide(lo, hi, tier)
	return nil
}

// decide fixes a pair's tier and tells both sides.
func (j *job) decide(a, b int, tier Tier) {
	j.pairs.setTier(a, b, tier)
	j.undecided--
	if j.undecided == 0 && j.safety != nil {
		j.safety.Stop()
	}
	j.s.met.outcome(tier)
	va, vb := verdict{Peer: b, Tier: tier}, verdict{Peer: a, Tier: tier}
	if tier == TierRelay {
		slot := &relaySlot{job: j, ranks: [2]int{a, b}, nonce: [2][nonceSize]byte{newNonce(), newNonce()},
			ready: make(chan struct{}), cancel: make(chan struct{})}
		j.relays[[2]int{a, b}] = slot
		va.Nonce, vb.Nonce = slot.nonce[0], slot.nonce[1]
	}
	j.members[a].send(va)
	j.members[b].send(vb)
}

// decideRemaining relays every pair whose reports did not arrive in time.
func (j *job) decideRemaining() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.state != jobPunching || j.undecided == 0 {
		return
	}
	n := 0
	for a := 0; a < j.world; a++ {
		for b := a + 1; b < j.world; b++ {
			if j.pairs.tier(a, b) == 0 {
				j.decide(a, b, TierRelay)
				n++
			}
		}
	}
	j.s.cfg.log.Warn("punch reports missing at the deadline: relaying", "job", j.id, "pairs", n)
}

// markDone records that a member has every link; the job completes when
// every member is done.
func (j *job) markDone(m *member) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	switch {
	case j.state == jobGone:
		return nil
	case j.state == jobWaiting:
		return &Error{Code: CodeBadRequest, Rank: -1, Msg: "done before the job started"}
	case m.done:
		return &Error{Code: CodeBadRequest, Rank: m.rank, Msg: "second done"}
	}
	for p := 0; p < j.world; p++ {
		if p != m.rank && j.pairs.tier(p, m.rank) == 0 {
			return &Error{Code: CodeBadRequest, Rank: p, Msg: fmt.Sprintf("done while the pair with rank %d is undecided", p)}
		}
	}
	m.done = true
	j.s.met.members.Add(-1)
	j.notDone--
	if j.notDone == 0 {
		j.s.met.jobOutcome("complete")
		j.s.cfg.log.Info("job mesh complete", "job", j.id, "world", j.world)
		j.removeLocked()
		// Every member said done while a relay still waited for a side
		// (only a client that says done before its links are ready gets
		// here): nobody can claim the other ticket of a job that is gone,
		// so the waiting side is told now rather than at the relay
		// timeout, which would also hold up a shutdown past its drain.
		for _, slot := range j.relays {
			slot.abort(&Error{Code: CodeRelay, Rank: -1,
				Msg: fmt.Sprintf("job %q ended (every member said done) before ranks %d and %d both connected",
					j.id, slot.ranks[0], slot.ranks[1])})
		}
	}
	return nil
}

// leave handles a member whose connection ended (reason says why). While
// the job is waiting the member just frees its place (a retried worker may
// take it); once the job has started, the job fails and every other member
// is told which rank left.
func (j *job) leave(m *member, reason error) {
	if j == nil {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	switch j.state {
	case jobWaiting:
		i := slices.Index(j.members, m)
		if i < 0 {
			return
		}
		j.members = slices.Delete(j.members, i, i+1)
		j.joinedN.Store(int32(len(j.members)))
		if r := m.req.Rank; r >= 0 && j.taken[r] == m {
			delete(j.taken, r)
		}
		j.s.met.members.Add(-1)
		j.s.cfg.log.Info("waiting member left", "job", j.id, "observed", m.observed, "reason", reason)
		if len(j.members) == 0 {
			j.s.met.jobOutcome("abandoned")
			j.removeLocked()
		}
	case jobPunching:
		if m.done {
			return
		}
		j.s.met.evictions.Add(1)
		j.s.cfg.log.Warn("member left before its mesh was complete: job fails", "job", j.id, "rank", m.rank, "reason", reason)
		j.failLocked(&Error{Code: CodeMemberLeft, Rank: m.rank,
			Msg: fmt.Sprintf("rank %d left job %q before the mesh was complete: %v", m.rank, j.id, reason)}, m)
	}
}

// fail ends the job with e, telling every member that is not done.
func (j *job) fail(e *Error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.failLocked(e, nil)
}

func (j *job) failLocked(e *Error, except *member) {
	if j.state == jobGone {
		return
	}
	// Counters first: a member told of the failure may look at them at once.
	for _, m := range j.members {
		if m != nil && !m.done {
			j.s.met.members.Add(-1)
		}
	}
	j.s.met.jobOutcome(jobOutcomeLabel(e.Code))
	j.removeLocked()
	for _, m := range j.members {
		if m != nil && m != except && !m.done {
			m.sendFinal(e)
		}
	}
	for _, slot := range j.relays {
		slot.abort(e)
	}
}

func jobOutcomeLabel(c Code) string {
	switch c {
	case CodeTimeout:
		return "timeout"
	case CodeShutdown:
		return "shutdown"
	}
	return "member_left"
}

// timeout fails a job that did not complete in time.
func (j *job) timeout() {
	j.mu.Lock()
	defer j.mu.Unlock()
	var msg string
	switch {
	case j.state == jobGone:
		return
	case time.Now().Before(j.deadline):
		return // extended while this call waited for the lock
	case j.state == jobWaiting:
		msg = fmt.Sprintf("job %q: %d of %d members joined within the job timeout", j.id, len(j.members), j.world)
	default:
		var missing []int
		for r, m := range j.members {
			if !m.done {
				missing = append(missing, r)
			}
		}
		msg = fmt.Sprintf("job %q: mesh not complete within the job timeout (ranks not done: %v)", j.id, missing)
	}
	j.s.cfg.log.Warn("job timed out", "job", j.id, "detail", msg)
	j.failLocked(&Error{Code: CodeTimeout, Rank: -1, Msg: msg}, nil)
}

// removeLocked marks the job gone and removes it from the server.
func (j *job) removeLocked() {
	j.state = jobGone
	j.timer.Stop()
	if j.safety != nil {
		j.safety.Stop()
	}
	j.s.mu.Lock()
	if j.s.jobs[j.id] == j {
		delete(j.s.jobs, j.id)
		j.s.met.jobs.Add(-1)
	}
	j.s.mu.Unlock()
}
