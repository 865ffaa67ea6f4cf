package collective

import (
	"context"
	"sync"
	"time"
)

// An interrupter ends a blocked read or write on a conn when the context of
// the operation in progress ends, by setting a deadline in the past. Its
// registration with a context (context.AfterFunc) is kept from one
// operation to the next while they use the same context, the common case
// of a loop of calls under one context, so that an operation allocates
// nothing. Contexts are told apart by their Done channel: contexts that
// share one end together.
type interrupter struct {
	set func(time.Time) error // the conn's SetReadDeadline or SetWriteDeadline

	mu     sync.Mutex
	done   <-chan struct{} // of the context registered
	stop   func() bool
	active <-chan struct{} // of the operation in progress; nil when none
	dead   bool            // a deadline in the past is set
}

// noEnd is the active operation's channel when its context cannot end (nil,
// or without a Done channel): only poke interrupts it.
var noEnd = make(chan struct{})

// arm makes the end of ctx interrupt the operation that starts now, until
// disarm; ctx may be nil or unable to end, and poke interrupts the
// operation either way.
func (in *interrupter) arm(ctx context.Context) {
	var done <-chan struct{}
	if ctx != nil {
		done = ctx.Done()
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if done == nil {
		in.active = noEnd
		return
	}
	in.active = done
	if in.done == done {
		return
	}
	if in.stop != nil {
		in.stop()
	}
	in.done = done
	in.stop = context.AfterFunc(ctx, func() { in.fire(done) })
}

func (in *interrupter) fire(done <-chan struct{}) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.done == done {
		in.done, in.stop = nil, nil // the registration is spent
	}
	if in.active == done && !in.dead {
		in.dead = true
		_ = in.set(time.Unix(1, 0))
	}
}

// poke interrupts the operation in progress, if there is one, whatever its
// context: a receiver whose request was completed by someone else while it
// waits in a read (its sub-communicator was closed) gets out of the read.
func (in *interrupter) poke() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.active != nil && !in.dead {
		in.dead = true
		_ = in.set(time.Unix(1, 0))
	}
}

// disarm ends the operation; a deadline the interrupter set is cleared.
func (in *interrupter) disarm() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.active = nil
	if in.dead {
		in.dead = false
		_ = in.set(time.Time{})
	}
}

// interrupted reports whether the operation in progress was interrupted.
func (in *interrupter) interrupted() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.dead
}

// close drops the registration.
func (in *interrupter) close() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.stop != nil {
		in.stop()
	}
	in.done, in.stop = nil, nil
}
