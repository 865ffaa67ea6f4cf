package frame

import (
	"context"
	"fmt"
)

// agree checks that every rank's partition of f has the same schema
// (collective), once per lineage: a frame read from files was agreed on as
// it was read, and frames derived from an agreed one are agreed. Operators
// whose argument checks depend on the schema call it first, so that those
// checks come out alike on every rank: a frame New wrapped around
// partitions of different schemas fails there, on every rank, instead of
// failing an argument check on some ranks while the others wait for them.
func (f *Frame) agree(ctx context.Context) error {
	if f.agreed.Load() || f.Size() == 1 {
		return nil
	}
	mine, err := encodeSchema(f.Schema())
	if err != nil {
		return err
	}
	all, err := f.comm.Allgather(ctx, mine)
	if err != nil {
		return fmt.Errorf("agree on the schema: %w", err)
	}
	first, err := decodeSchema(all[0])
	if err != nil {
		return fmt.Errorf("schema of rank 0: %w", err)
	}
	for r := 1; r < len(all); r++ {
		s, err := decodeSchema(all[r])
		if err != nil {
			return fmt.Errorf("schema of rank %d: %w", r, err)
		}
		if !first.Equal(s) {
			return fmt.Errorf("rank 0's partition has schema %v but rank %d's has %v: every rank's frame must have one schema", first, r, s)
		}
	}
	f.agreed.Store(true)
	return nil
}
