package testnet_test

import (
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnmesh/fnmesh/internal/testnet"
)

func TestTCPPair(t *testing.T) {
	client, server := testnet.TCPPair(t)
	assert.Equal(t, client.LocalAddr().String(), server.RemoteAddr().String())
	go func() { client.Write([]byte("ping")); client.Close() }()
	got, err := io.ReadAll(server)
	require.NoError(t, err)
	assert.Equal(t, "ping", string(got))
}
