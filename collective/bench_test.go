package collective

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

// Benchmarks over loopback TCP between ranks of one process (the
// multi-process, OSU-method measurement against Open MPI is `fnmesh
// bench`). Each iteration is one call on every rank; b.SetBytes counts one
// rank's payload.

func benchRanks(b *testing.B, p int, fn func(ctx context.Context, c *Comm) error, opts ...Option) {
	comms := newComms(b, tcpMesh, p, opts...)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, p)
	b.ResetTimer()
	for i, c := range comms {
		wg.Go(func() {
			for range b.N {
				if err := fn(ctx, c); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPingPong(b *testing.B) {
	for _, n := range []int{8, 1 << 20} {
		for _, crc := range []bool{true, false} {
			b.Run(fmt.Sprintf("%dB/crc=%v", n, crc), func(b *testing.B) {
				benchPingPong(b, n, crc)
			})
		}
	}
}

func benchPingPong(b *testing.B, n int, crc bool) {
	msg := make([]byte, n)
	bufs := [2][]byte{make([]byte, n), make([]byte, n)}
	b.SetBytes(int64(2 * n))
	benchRanks(b, 2, func(ctx context.Context, c *Comm) error {
		buf := bufs[c.Rank()]
		if c.Rank() == 0 {
			if err := c.Send(ctx, 1, 0, msg); err != nil {
				return err
			}
			_, err := c.RecvInto(ctx, 1, 0, buf)
			return err
		}
		if _, err := c.RecvInto(ctx, 0, 0, buf); err != nil {
			return err
		}
		return c.Send(ctx, 0, 0, msg)
	}, WithChecksum(crc))
}

func BenchmarkCollectives(b *testing.B) {
	for _, p := range []int{2, 4} {
		for _, n := range []int{8, 1 << 20} {
			data := make([]byte, n)
			vec := make([]float64, n/8+1)
			outs := make([][]byte, p)
			vouts := make([][]float64, p)
			for i := range outs {
				outs[i] = make([]byte, n*p)
				vouts[i] = make([]float64, len(vec))
			}
			cases := []struct {
				name string
				fn   func(ctx context.Context, c *Comm) error
			}{
				{"barrier", func(ctx context.Context, c *Comm) error { return c.Barrier(ctx) }},
				{"bcast", func(ctx context.Context, c *Comm) error { _, err := c.Bcast(ctx, 0, data); return err }},
				{"allgather", func(ctx context.Context, c *Comm) error { _, err := c.Allgather(ctx, data); return err }},
				{"alltoallv", func(ctx context.Context, c *Comm) error {
					parts := make([][]byte, c.Size())
					for i := range parts {
						parts[i] = data[:n/c.Size()]
					}
					_, err := c.Alltoallv(ctx, parts)
					return err
				}},
				{"allreduce", func(ctx context.Context, c *Comm) error {
					_, err := Allreduce(ctx, c, vec, Sum[float64]())
					return err
				}},
				{"bcast-into", func(ctx context.Context, c *Comm) error {
					return c.BcastInto(ctx, 0, outs[c.Rank()][:n])
				}},
				{"allgather-into", func(ctx context.Context, c *Comm) error {
					return c.AllgatherInto(ctx, data, outs[c.Rank()][:n*c.Size()])
				}},
				{"allreduce-into", func(ctx context.Context, c *Comm) error {
					return AllreduceInto(ctx, c, vec, vouts[c.Rank()], Sum[float64]())
				}},
			}
			for _, tc := range cases {
				if tc.name == "barrier" && n > 8 {
					continue
				}
				b.Run(fmt.Sprintf("%s/p=%d/%dB", tc.name, p, n), func(b *testing.B) {
					b.SetBytes(int64(n))
					benchRanks(b, p, tc.fn)
				})
			}
		}
	}
}
