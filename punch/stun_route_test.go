package punch

import (
	"context"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pion/stun/v4"
	"github.com/stretchr/testify/require"
)

// scriptedPC is a PacketConn with a given local address whose reads return
// the datagrams a test injects and whose writes the test can inspect. It
// honours a read deadline in the past (what the STUN reader is stopped
// with) and blocks only on channels, so it runs in a synctest bubble.
type scriptedPC struct {
	local netip.AddrPort
	in    chan stunAnswer
	sent  chan []byte

	mu     sync.Mutex
	past   bool          // the read deadline has passed
	wake   chan struct{} // closed when the deadline changes
	closed chan struct{}
	once   sync.Once
}

func newScriptedPC(local netip.AddrPort) *scriptedPC {
	return &scriptedPC{local: local, in: make(chan stunAnswer, 8), sent: make(chan []byte, 64),
		wake: make(chan struct{}), closed: make(chan struct{})}
}

func (c *scriptedPC) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		c.mu.Lock()
		past, wake := c.past, c.wake
		c.mu.Unlock()
		if past {
			return 0, nil, os.ErrDeadlineExceeded
		}
		select {
		case d := <-c.in:
			return copy(b, d.b), net.UDPAddrFromAddrPort(d.from), nil
		case <-wake:
		case <-c.closed:
			return 0, nil, net.ErrClosed
		}
	}
}

func (c *scriptedPC) WriteTo(b []byte, _ net.Addr) (int, error) {
	select {
	case c.sent <- append([]byte(nil), b...):
	default:
	}
	return len(b), nil
}

func (c *scriptedPC) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

func (c *scriptedPC) LocalAddr() net.Addr { return net.UDPAddrFromAddrPort(c.local) }

func (c *scriptedPC) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

func (c *scriptedPC) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.past = !t.IsZero() && !t.After(time.Now())
	close(c.wake)
	c.wake = make(chan struct{})
	c.mu.Unlock()
	return nil
}

func (c *scriptedPC) SetWriteDeadline(time.Time) error { return nil }

// An answer that one socket reads is routed to a call on another socket of
// the process only if the OS could have delivered that call's answer there:
// the two share the local address and port (a SO_REUSEPORT group), or the
// call's socket is bound to all addresses (the answer to a request it sent
// from an address goes to a socket bound to that address, if there is one).
// The reader matched the port number alone, so that a call on 198.18.0.1:5000
// took an answer read by a socket on 198.18.0.2:5000 (another netsim host, or
// another address of the machine).
func TestSTUNAnswerRoutedByLocalEndpoint(t *testing.T) {
	server := netip.MustParseAddrPort("203.0.113.10:3478")
	mapped := netip.MustParseAddrPort("198.51.100.1:5000")
	for _, tc := range []struct {
		name          string
		call, reader  string // local endpoints of the call's socket and of the socket that reads the answer
		wantDelivered bool
	}{
		{"same endpoint", "198.18.0.1:5000", "198.18.0.1:5000", true},
		{"same endpoint, IPv4-mapped", "[::ffff:198.18.0.1]:5000", "198.18.0.1:5000", true},
		{"other address, same port", "198.18.0.1:5000", "198.18.0.2:5000", false},
		{"other address, IPv4-mapped", "[::ffff:198.18.0.1]:5000", "[::ffff:198.18.0.2]:5000", false},
		{"other port", "198.18.0.1:5000", "198.18.0.1:5001", false},
		{"call on all IPv4 addresses", "0.0.0.0:5000", "198.18.0.2:5000", true},
		{"call on all addresses", "[::]:5000", "198.18.0.2:5000", true},
		{"both on all addresses", "0.0.0.0:5000", "0.0.0.0:5000", true},
		{"call on all IPv4 addresses, IPv6 reader", "0.0.0.0:5000", "[::1]:5000", false},
		{"call on one address, reader on all", "198.18.0.1:5000", "0.0.0.0:5000", false},
		{"call on all addresses, other port", "0.0.0.0:5000", "198.18.0.2:5001", false},
		{"loopback, other address", "127.0.0.1:5000", "127.0.0.2:5000", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				callPC := newScriptedPC(netip.MustParseAddrPort(tc.call))
				readPC := newScriptedPC(netip.MustParseAddrPort(tc.reader))
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()

				// A call waits on readPC (to another, silent server), so that
				// readPC has a reader.
				otherDone := make(chan error, 1)
				go func() {
					_, err := DiscoverPacket(ctx, readPC, netip.MustParseAddrPort("203.0.113.11:3478"))
					otherDone <- err
				}()
				type result struct {
					addr netip.AddrPort
					err  error
				}
				callDone := make(chan result, 1)
				go func() {
					a, err := DiscoverPacket(ctx, callPC, server)
					callDone <- result{a, err}
				}()
				synctest.Wait()
				var req []byte
				select {
				case req = <-callPC.sent:
				default:
					t.Fatal("the call sent no request")
				}
				m := new(stun.Message)
				require.NoError(t, stun.Decode(req, m))
				resp, err := STUNResponse(req, mapped)
				require.NoError(t, err)

				readPC.in <- stunAnswer{b: resp, from: server}
				synctest.Wait()
				select {
				case r := <-callDone:
					require.True(t, tc.wantDelivered, "the call took an answer read on %s: %v %v", tc.reader, r.addr, r.err)
					require.NoError(t, r.err)
					require.Equal(t, mapped, r.addr)
				default:
					require.False(t, tc.wantDelivered, "the answer read on %s did not reach the call on %s", tc.reader, tc.call)
					// The same answer on the call's own socket is taken.
					callPC.in <- stunAnswer{b: resp, from: server}
					r := <-callDone
					require.NoError(t, r.err)
					require.Equal(t, mapped, r.addr)
				}
				cancel()
				require.ErrorIs(t, <-otherDone, context.Canceled)
			})
		})
	}
}
