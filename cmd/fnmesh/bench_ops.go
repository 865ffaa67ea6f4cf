package main

import (
	"context"
	"fmt"

	"github.com/fnmesh/fnmesh/collective"
	"github.com/fnmesh/fnmesh/internal/osu"
)

// benchmarks returns the benchmarks of o.ops over comm, in the order asked.
//
// Sizes follow the OSU conventions, as bench/mpi/osu.c does: bcast sends
// size bytes from rank 0; allgather gathers size bytes from each rank;
// alltoallv sends size bytes to each rank; allreduce sums a float32 vector
// of size bytes (so it starts at 4 bytes).
//
// By default the calls are the MPI-style ones into buffers prepared once
// (BcastInto, AllgatherInto, AllreduceInto), as the MPI harness does;
// o.alloc measures the forms that return new buffers instead (Bcast,
// Allgather, Allreduce, Alltoallv).
func benchmarks(comm *collective.Comm, o *benchOptions) []osu.Benchmark {
	prepare := func(mk func(*collective.Comm, int) osu.Case) func(int) (osu.Case, error) {
		return func(size int) (osu.Case, error) {
			c := mk(comm, size)
			if !o.check {
				c.Check = nil
			}
			return c, nil
		}
	}
	var out []osu.Benchmark
	for _, op := range o.ops {
		switch op {
		case "barrier":
			out = append(out, osu.Barrier(comm.Barrier))
		case "bcast":
			out = append(out, osu.Collective(op, 1, prepare(pick(o.alloc, bcastCase, bcastIntoCase))))
		case "allgather":
			out = append(out, osu.Collective(op, 1, prepare(pick(o.alloc, allgatherCase, allgatherIntoCase))))
		case "alltoallv":
			out = append(out, osu.Collective(op, 1, prepare(pick(o.alloc, alltoallvCase, alltoallvIntoCase))))
		case "allreduce":
			out = append(out, osu.Collective(op, 4, prepare(pick(o.alloc, allreduceCase, allreduceIntoCase))))
		case "latency":
			out = append(out, osu.Latency())
		case "bw":
			out = append(out, osu.Bandwidth())
		}
	}
	return out
}

func pick[T any](first bool, a, b T) T {
	if first {
		return a
	}
	return b
}

func bcastIntoCase(comm *collective.Comm, size int) osu.Case {
	want := osu.Pattern(size, 0)
	buf := make([]byte, size)
	if comm.Rank() == 0 {
		copy(buf, want)
	}
	return osu.Case{
		Call:  func(ctx context.Context) error { return comm.BcastInto(ctx, 0, buf) },
		Check: func() error { return osu.CheckBytes("bcast from rank 0", buf, want) },
	}
}

func allgatherIntoCase(comm *collective.Comm, size int) osu.Case {
	mine := osu.Pattern(size, comm.Rank())
	out := make([]byte, size*comm.Size())
	return osu.Case{
		Call: func(ctx context.Context) error { return comm.AllgatherInto(ctx, mine, out) },
		Check: func() error {
			for r := range comm.Size() {
				if err := osu.CheckBytes(fmt.Sprintf("allgather block of rank %d", r), out[r*size:(r+1)*size], osu.Pattern(size, r)); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

func bcastCase(comm *collective.Comm, size int) osu.Case {
	want := osu.Pattern(size, 0)
	var data []byte
	if comm.Rank() == 0 {
		data = want
	}
	var got []byte
	return osu.Case{
		Call: func(ctx context.Context) (err error) {
			got, err = comm.Bcast(ctx, 0, data)
			return err
		},
		Check: func() error { return osu.CheckBytes("bcast from rank 0", got, want) },
	}
}

func allgatherCase(comm *collective.Comm, size int) osu.Case {
	mine := osu.Pattern(size, comm.Rank())
	var got [][]byte
	return osu.Case{
		Call: func(ctx context.Context) (err error) {
			got, err = comm.Allgather(ctx, mine)
			return err
		},
		Check: func() error {
			if len(got) != comm.Size() {
				return fmt.Errorf("allgather: %d blocks, want %d", len(got), comm.Size())
			}
			for r := range got {
				if err := osu.CheckBytes(fmt.Sprintf("allgather block of rank %d", r), got[r], osu.Pattern(size, r)); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

func alltoallvCase(comm *collective.Comm, size int) osu.Case {
	np, me := comm.Size(), comm.Rank()
	parts := make([][]byte, np)
	for dst := range parts {
		parts[dst] = osu.Pattern(size, me*np+dst)
	}
	var got [][]byte
	return osu.Case{
		Call: func(ctx context.Context) (err error) {
			got, err = comm.Alltoallv(ctx, parts)
			return err
		},
		Check: func() error {
			if len(got) != np {
				return fmt.Errorf("alltoallv: %d parts, want %d", len(got), np)
			}
			for src := range got {
				if err := osu.CheckBytes(fmt.Sprintf("alltoallv part from rank %d", src), got[src], osu.Pattern(size, src*np+me)); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

func alltoallvIntoCase(comm *collective.Comm, size int) osu.Case {
	np, me := comm.Size(), comm.Rank()
	parts := make([][]byte, np)
	for dst := range parts {
		parts[dst] = osu.Pattern(size, me*np+dst)
	}
	recv := make([]byte, size*np)
	out := make([][]byte, np)
	for src := range out {
		out[src] = recv[src*size : (src+1)*size]
	}
	return osu.Case{
		Call: func(ctx context.Context) error { return comm.AlltoallvInto(ctx, parts, out) },
		Check: func() error {
			for src := range out {
				if err := osu.CheckBytes(fmt.Sprintf("alltoallv part from rank %d", src), out[src], osu.Pattern(size, src*np+me)); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

// allreduceValue is element i of rank r's vector: small integers, so that
// float32 sums are exact in any order.
func allreduceValue(i, r int) float32 { return float32((i + 3*r) % 7) }

func allreduceCase(comm *collective.Comm, size int) osu.Case {
	data := allreduceData(comm.Rank(), size)
	sum := collective.Sum[float32]()
	var got []float32
	return osu.Case{
		Call: func(ctx context.Context) (err error) {
			got, err = collective.Allreduce(ctx, comm, data, sum)
			return err
		},
		Check: func() error { return checkAllreduce(comm.Size(), got, len(data)) },
	}
}

func allreduceIntoCase(comm *collective.Comm, size int) osu.Case {
	data := allreduceData(comm.Rank(), size)
	out := make([]float32, len(data))
	sum := collective.Sum[float32]()
	return osu.Case{
		Call:  func(ctx context.Context) error { return collective.AllreduceInto(ctx, comm, data, out, sum) },
		Check: func() error { return checkAllreduce(comm.Size(), out, len(data)) },
	}
}

func allreduceData(rank, size int) []float32 {
	data := make([]float32, size/4)
	for i := range data {
		data[i] = allreduceValue(i, rank)
	}
	return data
}

func checkAllreduce(np int, got []float32, n int) error {
	if len(got) != n {
		return fmt.Errorf("allreduce: %d elements, want %d", len(got), n)
	}
	for i, v := range got {
		var want float32
		for r := range np {
			want += allreduceValue(i, r)
		}
		if v != want {
			return fmt.Errorf("allreduce element %d is %v, want %v: %w", i, v, want, osu.ErrMismatch)
		}
	}
	return nil
}
