package rendezvous

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnmesh/fnmesh/internal/testnet"
)

// TestRelayCopyPipeSizes: every pipe size relayPipeSize hands out (and the
// kernel's default, 0) moves a stream through relayCopy bit-identical, with
// every byte counted and the sender's half close passed on as EOF.
func TestRelayCopyPipeSizes(t *testing.T) {
	data := make([]byte, 3<<20+123)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	for _, size := range []int{relayPipeSize(1), relayPipeSize(17), relayPipeSize(65)} {
		name := fmt.Sprintf("%d KiB", size>>10)
		if size == 0 {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			sender, src := testnet.TCPPair(t)
			dst, receiver := testnet.TCPPair(t)
			var counter atomic.Int64
			copied := make(chan error, 1)
			go func() {
				err := relayCopy(dst, src, &counter, size)
				dst.(*net.TCPConn).CloseWrite()
				copied <- err
			}()
			go func() {
				sender.Write(data)
				sender.(*net.TCPConn).CloseWrite()
			}()
			receiver.SetReadDeadline(time.Now().Add(20 * time.Second))
			got, err := io.ReadAll(receiver)
			require.NoError(t, err)
			assert.True(t, bytes.Equal(data, got), "%d bytes arrived of %d, or different", len(got), len(data))
			require.NoError(t, <-copied)
			assert.Equal(t, int64(len(data)), counter.Load())
		})
	}
}
