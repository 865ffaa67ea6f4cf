package rendezvous

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestJoinLoopback(t *testing.T) {
	srv := startLoopServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	meshes, err := joinAll(ctx, t, srv.addr, "loop", 4, nil)
	require.NoError(t, err)
	defer closeMeshes(meshes)
	tiers := verifyMeshes(t, meshes, 1<<20)
	for pair, tier := range tiers {
		assert.Equal(t, TierDirect, tier, "pair %v", pair)
	}
	assert.Len(t, tiers, 6)
}
