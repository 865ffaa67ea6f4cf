package rendezvous

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestShutdownWithoutDrainTellsMembers: WithDrainTimeout(0) (--drain 0)
// cuts established relays at once, but only them: every waiting member, and
// a connection that has not joined yet, is still told "shutdown" (within
// shutdownAnswerTimeout), as with the default drain. Before, the drain
// timer closed every connection as it fired, and members saw their
// connection end without the error ("lost the rendezvous server: EOF").
func TestShutdownWithoutDrainTellsMembers(t *testing.T) {
	for round := 0; round < 5; round++ {
		t.Run(fmt.Sprint("round ", round), func(t *testing.T) {
			srv := startLoopServer(t, WithDrainTimeout(0))
			ra, rb := establishedRelay(t, srv, "nodrain-relay")
			waiting := dialRaw(t, srv.addr)
			waiting.join("nodrain-raw", 2, 0)
			unjoined := dialRaw(t, srv.addr)
			unjoined.hello()

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			const joins = 3
			errc := make(chan error, joins)
			for k := range joins {
				go func() { _, err := Join(ctx, srv.addr, fmt.Sprint("nodrain-", k), 2, testSecret); errc <- err }()
			}
			// The relayed pair's two members, the raw one and the Joins.
			require.Eventually(t, func() bool { return srv.Metrics().Members == 3+joins }, 5*time.Second, 5*time.Millisecond)

			began := time.Now()
			srv.stop(t)
			assert.Less(t, time.Since(began), 3*shutdownAnswerTimeout)
			waiting.expectError(CodeShutdown)
			unjoined.expectError(CodeShutdown)
			for range joins {
				err := <-errc
				assert.True(t, errors.Is(err, &Error{Code: CodeShutdown}), "Join: %v", err)
			}
			ra.expectClosed()
			rb.expectClosed()
		})
	}
}
