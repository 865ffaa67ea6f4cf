package punch

import (
	"context"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The public API returns an error, never panics, on nil or zero values.
func TestNilAndZeroInputs(t *testing.T) {
	ctx := context.Background()
	var noCtx context.Context
	server := netip.MustParseAddrPort("127.0.0.1:1")
	tests := []struct {
		name string
		call func() error
		want string // in the error
	}{
		{"Listen: nil network", func() error { _, err := Listen(ctx, nil, anyLoop, ident(0)); return err }, "nil network"},
		{"Listen: nil context", func() error { _, err := Listen(noCtx, OS(), anyLoop, ident(0)); return err }, "nil context"},
		{"Handshake: nil connection", func() error { return Handshake(ctx, nil, ident(0), 1) }, "nil connection"},
		{"DiscoverConn: nil connection", func() error { _, err := DiscoverConn(ctx, nil); return err }, "nil connection"},
		{"DiscoverTCP: nil port", func() error { _, err := DiscoverTCP(ctx, nil, server); return err }, "not opened"},
		{"DiscoverTCP: zero port", func() error { _, err := DiscoverTCP(ctx, &Port{}, server); return err }, "not opened"},
		{"DiscoverUDP: nil network", func() error { _, err := DiscoverUDP(ctx, nil, anyLoop, server); return err }, "nil network"},
		{"DiscoverPacket: nil connection", func() error { _, err := DiscoverPacket(ctx, nil, server); return err }, "nil packet connection"},
		{"ServeSTUNConn: nil connection", func() error { return ServeSTUNConn(ctx, nil) }, "nil connection"},
		{"ServeSTUNPacket: nil connection", func() error { return ServeSTUNPacket(ctx, nil) }, "nil packet connection"},
		{"Punch: zero port", func() error { _, err := (&Port{}).Punch(ctx, Peer{Rank: 1}); return err }, "not opened"},
		{"Punch: nil port", func() error { _, err := (*Port)(nil).Punch(ctx, Peer{Rank: 1}); return err }, "not opened"},
		{"Dial: zero port", func() error { _, err := (&Port{}).Dial(ctx, server); return err }, "not opened"},
		{"Close: zero port", func() error { return (&Port{}).Close() }, "not opened"},
		{"Close: nil port", func() error { return (*Port)(nil).Close() }, "not opened"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			require.NotPanics(t, func() { err = tt.call() })
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	t.Run("accessors of a nil port", func(t *testing.T) {
		var p *Port
		require.NotPanics(t, func() {
			assert.False(t, p.Addr().IsValid())
			assert.Nil(t, p.Network())
		})
	})
}
