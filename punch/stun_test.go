package punch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	"github.com/stretchr/testify/require"
)

// stunTCPServer serves STUN over TCP on a loopback port with ServeSTUNConn.
func stunTCPServer(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = ServeSTUNConn(ctx, c)
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// dropFirst is a PacketConn that loses the first n datagrams it receives.
type dropFirst struct {
	net.PacketConn
	n, seen atomic.Int32
}

func (d *dropFirst) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, a, err := d.PacketConn.ReadFrom(b)
		if err != nil || d.seen.Add(1) > d.n.Load() {
			return n, a, err
		}
	}
}

// stunUDPServer serves STUN over UDP on loopback, losing the first drop
// requests; it returns the server's endpoint and a count of requests.
func stunUDPServer(t *testing.T, drop int32) (netip.AddrPort, *atomic.Int32) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	d := &dropFirst{PacketConn: pc}
	d.n.Store(drop)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeSTUNPacket(ctx, d) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done, "ServeSTUNPacket returns nil when ctx ends")
		pc.Close()
	})
	return pc.LocalAddr().(*net.UDPAddr).AddrPort(), &d.seen
}

func TestDiscoverTCPFromPort(t *testing.T) {
	srv := stunTCPServer(t)
	p := listenOS(t, 0)
	ctx := testCtx(t, 5*time.Second)
	got, err := DiscoverTCP(ctx, p, srv)
	require.NoError(t, err)
	require.Equal(t, p.Addr(), got, "the reflexive endpoint on loopback is the port itself")
	// The STUN connection was aborted: its 4-tuple is free at once for the
	// next connection to the same server (e.g. the rendezvous control link).
	got, err = DiscoverTCP(ctx, p, srv)
	require.NoError(t, err)
	require.Equal(t, p.Addr(), got)
	c, err := p.Dial(ctx, srv)
	require.NoError(t, err)
	defer c.Close()
	// Several transactions on one open stream.
	for range 3 {
		got, err = DiscoverConn(ctx, c)
		require.NoError(t, err)
		require.Equal(t, p.Addr(), got)
	}
}

func TestDiscoverUDP(t *testing.T) {
	p := listenOS(t, 0)
	tests := []struct {
		name     string
		drop     int32
		timeout  time.Duration
		wantErr  error
		requests int32
	}{
		{"first answer", 0, 5 * time.Second, nil, 1},
		{"two requests lost", 2, 5 * time.Second, nil, 3},
		{"server silent", 1 << 30, 600 * time.Millisecond, context.DeadlineExceeded, 0}, // requests at 0 and 250 ms before the deadline
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, seen := stunUDPServer(t, tt.drop)
			ctx := testCtx(t, tt.timeout)
			start := time.Now()
			got, err := DiscoverUDP(ctx, OS(), p.Addr(), srv)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				require.ErrorContains(t, err, "no answer after") // 2 requests unless the machine stalls
				require.Positive(t, seen.Load())
				require.Less(t, time.Since(start), 2*time.Second)
				return
			}
			require.NoError(t, err)
			require.Equal(t, p.Addr(), got, "UDP socket on the port's number")
			require.Equal(t, tt.requests, seen.Load())
		})
	}
}

func TestSTUNResponse(t *testing.T) {
	from := netip.MustParseAddrPort("203.0.113.7:40000")
	from6 := netip.MustParseAddrPort("[2001:db8::1]:5")
	build := func(setters ...stun.Setter) []byte {
		m, err := stun.Build(append([]stun.Setter{stun.TransactionID}, setters...)...)
		require.NoError(t, err)
		return m.Raw
	}
	badFP := build(stun.BindingRequest, stun.Fingerprint)
	badFP[len(badFP)-1] ^= 1
	tests := []struct {
		name     string
		req      []byte
		from     netip.AddrPort
		wantType stun.MessageType
		wantCode stun.ErrorCode
		wantErr  string
	}{
		{"binding", build(stun.BindingRequest), from, stun.BindingSuccess, 0, ""},
		{"binding ipv6", build(stun.BindingRequest, stun.Fingerprint), from6, stun.BindingSuccess, 0, ""},
		{"allocate", build(stun.NewType(stun.MethodAllocate, stun.ClassRequest)), from, stun.NewType(stun.MethodAllocate, stun.ClassErrorResponse), stun.CodeBadRequest, ""},
		{"unknown required attribute", build(stun.BindingRequest, stun.RawAttribute{Type: 0x7777, Value: []byte{1, 2, 3, 4}}), from, stun.BindingError, stun.CodeUnknownAttribute, ""},
		{"unknown optional attribute", build(stun.BindingRequest, stun.RawAttribute{Type: 0xC777, Value: []byte{1, 2, 3, 4}}), from, stun.BindingSuccess, 0, ""},
		{"indication", build(stun.NewType(stun.MethodBinding, stun.ClassIndication)), from, stun.MessageType{}, 0, "not a request"},
		{"response", build(stun.BindingSuccess), from, stun.MessageType{}, 0, "not a request"},
		{"bad fingerprint", badFP, from, stun.MessageType{}, 0, "fingerprint"},
		{"garbage", []byte("GET / HTTP/1.1\r\n\r\nxxxxxxxxxx"), from, stun.MessageType{}, 0, "not a STUN message"},
		{"short", []byte{0, 1}, from, stun.MessageType{}, 0, "not a STUN message"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := STUNResponse(tt.req, tt.from)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			m := new(stun.Message)
			require.NoError(t, stun.Decode(resp, m))
			require.Equal(t, tt.wantType, m.Type)
			require.Equal(t, tt.req[8:20], m.TransactionID[:])
			require.NoError(t, stun.Fingerprint.Check(m))
			if tt.wantCode != 0 {
				var ec stun.ErrorCodeAttribute
				require.NoError(t, ec.GetFrom(m))
				require.Equal(t, tt.wantCode, ec.Code)
				if tt.wantCode == stun.CodeUnknownAttribute {
					var ua stun.UnknownAttributes
					require.NoError(t, ua.GetFrom(m))
					require.Equal(t, stun.UnknownAttributes{0x7777}, ua)
				}
				return
			}
			var xor stun.XORMappedAddress
			require.NoError(t, xor.GetFrom(m))
			got, _ := netip.AddrFromSlice(xor.IP)
			require.Equal(t, tt.from, netip.AddrPortFrom(got.Unmap(), uint16(xor.Port)))
		})
	}
}

func TestReadSTUNMessage(t *testing.T) {
	req, err := newBindingRequest()
	require.NoError(t, err)
	tests := []struct {
		name    string
		in      []byte
		wantErr string
	}{
		{"whole", req.Raw, ""},
		{"truncated", req.Raw[:len(req.Raw)-2], "unexpected EOF"},
		{"not stun", []byte("hello there, this is not stun"), "not a STUN message"},
		{"oversized", append([]byte{0, 1, 0xFF, 0xFC, 0x21, 0x12, 0xA4, 0x42}, make([]byte, 12)...), "body of 65532 bytes"},
		{"odd length", append([]byte{0, 1, 0, 3, 0x21, 0x12, 0xA4, 0x42}, make([]byte, 15)...), "multiple of 4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := net.Pipe()
			defer a.Close()
			go func() { _, _ = b.Write(tt.in); b.Close() }()
			got, err := ReadSTUNMessage(a)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.in, got)
		})
	}
}

// The UDP STUN calls leave their socket usable when they end, by the end
// of their context too: a server can serve again and a client can read,
// without a read deadline in the past left behind.
func TestSTUNPacketCallsLeaveSocketUsable(t *testing.T) {
	silent := netip.MustParseAddrPort("127.0.0.1:9") // nothing answers (discard)
	tests := []struct {
		name string
		run  func(ctx context.Context, pc net.PacketConn) error
		end  func(cancel context.CancelFunc) // how the call's context ends
	}{
		{"ServeSTUNPacket, cancelled", func(ctx context.Context, pc net.PacketConn) error {
			return ServeSTUNPacket(ctx, pc)
		}, func(cancel context.CancelFunc) { time.Sleep(20 * time.Millisecond); cancel() }},
		{"DiscoverPacket, cancelled", func(ctx context.Context, pc net.PacketConn) error {
			_, err := DiscoverPacket(ctx, pc, silent)
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		}, func(cancel context.CancelFunc) { time.Sleep(20 * time.Millisecond); cancel() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pc, err := net.ListenPacket("udp", "127.0.0.1:0")
			require.NoError(t, err)
			defer pc.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- tt.run(ctx, pc) }()
			tt.end(cancel)
			require.NoError(t, <-done)

			// The socket reads the next datagram (no deadline of ours set).
			got := make(chan error, 1)
			go func() {
				buf := make([]byte, 16)
				n, _, err := pc.ReadFrom(buf)
				if err == nil && string(buf[:n]) != "ping" {
					err = fmt.Errorf("read %q", buf[:n])
				}
				got <- err
			}()
			c, err := net.Dial("udp", pc.LocalAddr().String())
			require.NoError(t, err)
			defer c.Close()
			_, err = c.Write([]byte("ping"))
			require.NoError(t, err)
			select {
			case err := <-got:
				require.NoError(t, err)
			case <-time.After(2 * time.Second):
				t.Fatal("no datagram read within 2 s")
			}
		})
	}
}

// DiscoverConn checks what a STUN server answers: a mapped address no packet
// can come from (unspecified, multicast, broadcast) is an error, as are an
// error response, a non-STUN answer and silence; another family than the
// connection's is taken (an IPv6 client behind NAT64 is seen from IPv4).
// The unspecified, multicast and broadcast addresses were returned as the
// port's public endpoint.
func TestDiscoverConnAnswers(t *testing.T) {
	success := func(ip string, setters ...stun.Setter) func(*stun.Message) []byte {
		return func(req *stun.Message) []byte {
			all := []stun.Setter{stun.BindingSuccess, stun.NewTransactionIDSetter(req.TransactionID),
				&stun.XORMappedAddress{IP: net.ParseIP(ip), Port: 4000}}
			m, err := stun.Build(append(all, setters...)...)
			require.NoError(t, err)
			return m.Raw
		}
	}
	tests := []struct {
		name    string
		answer  func(req *stun.Message) []byte // nil: never answers
		want    netip.AddrPort
		wantErr string
	}{
		{"public", success("203.0.113.1"), netip.MustParseAddrPort("203.0.113.1:4000"), ""},
		{"v4-mapped", success("::ffff:203.0.113.1"), netip.MustParseAddrPort("203.0.113.1:4000"), ""},
		{"another family", success("2001:db8::1"), netip.MustParseAddrPort("[2001:db8::1]:4000"), ""},
		{"unspecified v4", success("0.0.0.0"), netip.AddrPort{}, "invalid mapped address 0.0.0.0:4000"},
		{"unspecified v6", success("::"), netip.AddrPort{}, "invalid mapped address [::]:4000"},
		{"multicast", success("224.0.0.1"), netip.AddrPort{}, "invalid mapped address 224.0.0.1:4000"},
		{"multicast v6", success("ff02::1"), netip.AddrPort{}, "invalid mapped address [ff02::1]:4000"},
		{"broadcast", success("255.255.255.255"), netip.AddrPort{}, "invalid mapped address 255.255.255.255:4000"},
		{"error response", func(req *stun.Message) []byte {
			m, err := stun.Build(stun.BindingError, stun.NewTransactionIDSetter(req.TransactionID), stun.CodeServerError)
			require.NoError(t, err)
			return m.Raw
		}, netip.AddrPort{}, "answered with error 500"},
		{"no address", func(req *stun.Message) []byte {
			m, err := stun.Build(stun.BindingSuccess, stun.NewTransactionIDSetter(req.TransactionID))
			require.NoError(t, err)
			return m.Raw
		}, netip.AddrPort{}, "without a mapped address"},
		{"not STUN", func(*stun.Message) []byte { return []byte("HTTP/1.1 400 Bad Request\r\n\r\n") }, netip.AddrPort{}, "not a STUN message"},
		{"silent", nil, netip.AddrPort{}, "deadline exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, srv := net.Pipe()
			defer c.Close()
			defer srv.Close()
			go func() {
				raw, err := ReadSTUNMessage(srv)
				if err != nil || tt.answer == nil {
					return
				}
				m := new(stun.Message)
				if stun.Decode(raw, m) == nil {
					_, _ = srv.Write(tt.answer(m))
				}
			}()
			ctx := testCtx(t, 200*time.Millisecond)
			got, err := DiscoverConn(ctx, c)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.ErrorContains(t, err, "STUN over TCP to pipe")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

// A Binding response's address attributes: XOR-MAPPED-ADDRESS wins; the
// plain MAPPED-ADDRESS (which a NAT ALG may rewrite) is taken only when
// XOR-MAPPED-ADDRESS is absent (an RFC 3489 server). A present but
// malformed XOR-MAPPED-ADDRESS (bad family, truncated, too long) is an
// error that says so: it used to fall back to MAPPED-ADDRESS silently,
// and a truncated one was taken with its missing bytes as zeros.
func TestParseBindingResponseAddresses(t *testing.T) {
	req, err := newBindingRequest()
	require.NoError(t, err)
	xorValue := func(ip string, port uint16) []byte { // as on the wire
		m := new(stun.Message)
		m.TransactionID = req.TransactionID
		require.NoError(t, (&stun.XORMappedAddress{IP: net.ParseIP(ip), Port: int(port)}).AddTo(m))
		v, err := m.Get(stun.AttrXORMappedAddress)
		require.NoError(t, err)
		return v
	}
	plainValue := func(ip string, port uint16) []byte {
		m := new(stun.Message)
		require.NoError(t, (&stun.MappedAddress{IP: net.ParseIP(ip), Port: int(port)}).AddTo(m))
		v, err := m.Get(stun.AttrMappedAddress)
		require.NoError(t, err)
		return v
	}
	goodXOR := xorValue("203.0.113.1", 4000)
	goodXOR6 := xorValue("2001:db8::1", 4000)
	goodPlain := plainValue("198.51.100.2", 5000)
	badFamily := append([]byte{0, 3}, goodXOR[2:]...)
	tests := []struct {
		name    string
		xor     []byte // nil: absent
		plain   []byte // nil: absent
		want    netip.AddrPort
		wantErr string
	}{
		{"xor only", goodXOR, nil, netip.MustParseAddrPort("203.0.113.1:4000"), ""},
		{"xor IPv6", goodXOR6, nil, netip.MustParseAddrPort("[2001:db8::1]:4000"), ""},
		{"xor wins over plain", goodXOR, goodPlain, netip.MustParseAddrPort("203.0.113.1:4000"), ""},
		{"plain only (RFC 3489 server)", nil, goodPlain, netip.MustParseAddrPort("198.51.100.2:5000"), ""},
		{"xor bad family, plain good", badFamily, goodPlain, netip.AddrPort{}, "malformed XOR-MAPPED-ADDRESS"},
		{"xor too short for its family, plain good", goodXOR[:4], goodPlain, netip.AddrPort{}, "malformed XOR-MAPPED-ADDRESS"},
		{"xor IPv4 truncated", goodXOR[:6], nil, netip.AddrPort{}, "malformed XOR-MAPPED-ADDRESS: 6 bytes"},
		{"xor IPv6 truncated", goodXOR6[:12], goodPlain, netip.AddrPort{}, "malformed XOR-MAPPED-ADDRESS: 12 bytes"},
		{"xor too long", append(append([]byte(nil), goodXOR...), 0, 0, 0, 0), nil, netip.AddrPort{}, "malformed XOR-MAPPED-ADDRESS: 12 bytes"},
		{"xor and plain both malformed", badFamily, goodPlain[:5], netip.AddrPort{}, "malformed XOR-MAPPED-ADDRESS"},
		{"plain malformed, no xor", nil, goodPlain[:6], netip.AddrPort{}, "no XOR-MAPPED-ADDRESS and a malformed MAPPED-ADDRESS: 6 bytes"},
		{"plain bad family, no xor", nil, append([]byte{0, 9}, goodPlain[2:]...), netip.AddrPort{}, "no XOR-MAPPED-ADDRESS and a malformed MAPPED-ADDRESS"},
		{"neither", nil, nil, netip.AddrPort{}, "without a mapped address (no XOR-MAPPED-ADDRESS or MAPPED-ADDRESS)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := new(stun.Message)
			m.SetType(stun.BindingSuccess)
			m.TransactionID = req.TransactionID
			m.WriteHeader()
			if tt.xor != nil {
				m.Add(stun.AttrXORMappedAddress, tt.xor)
			}
			if tt.plain != nil {
				m.Add(stun.AttrMappedAddress, tt.plain)
			}
			require.NoError(t, stun.Fingerprint.AddTo(m))
			got, ok, err := parseBindingResponse(m.Raw, req)
			require.True(t, ok, "the response answers the request")
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.Equal(t, netip.AddrPort{}, got)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}
