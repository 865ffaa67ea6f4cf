package collective

import (
	"context"
	"fmt"

	"github.com/fnmesh/fnmesh/rendezvous"
)

// FromMesh returns the communicator over the links of a rendezvous mesh:
// rank m.Rank of m.World. The communicator takes the links over; closing it
// closes them (closing m as well is harmless).
func FromMesh(m *rendezvous.Mesh, opts ...Option) (*Comm, error) {
	if m == nil {
		return nil, fmt.Errorf("collective: from mesh: nil mesh")
	}
	return New(m.Rank, m.Conns(), opts...)
}

// Join joins job (of world ranks) at the rendezvous server at addr and
// returns the communicator over the mesh of links it makes: one call for a
// worker that starts from nothing. secret is the deployment secret shared
// with the server. Rendezvous options (rank, network, punch timeout, local
// address) go in WithJoinOptions. To see how each link was made (its tier
// and setup time), call rendezvous.Join and FromMesh instead: the
// communicator does not keep the mesh.
func Join(ctx context.Context, addr, job string, world int, secret []byte, opts ...Option) (*Comm, error) {
	cfg, err := buildConfig(opts)
	if err != nil {
		return nil, err
	}
	m, err := rendezvous.Join(ctx, addr, job, world, secret, cfg.joinOpts...)
	if err != nil {
		return nil, fmt.Errorf("collective: join: %w", err)
	}
	c, err := FromMesh(m, opts...)
	if err != nil {
		_ = m.Close()
		return nil, err
	}
	return c, nil
}

// WithJoinOptions passes options to rendezvous.Join when the communicator
// is made by Join (WithRank, WithNetwork, WithPunchTimeout, ...). Other
// constructors ignore them.
func WithJoinOptions(opts ...rendezvous.Option) Option {
	return func(c *config) { c.joinOpts = append(c.joinOpts, opts...) }
}
