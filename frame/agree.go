package frame

import (
	"context"
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
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
	// Every rank sends its schema, or why it could not encode it: a rank
	// that left out the all-gather would leave the others waiting.
	mine, err := encodeSchema(f.Schema())
	msg := append([]byte{msgSchema}, mine...)
	if err != nil {
		msg = append([]byte{msgError}, err.Error()...)
	}
	all, aerr := f.comm.Allgather(ctx, msg)
	if err != nil {
		return errors.Join(err, aerr)
	}
	if aerr != nil {
		return fmt.Errorf("agree on the schema: %w", aerr)
	}
	schemas := make([]*arrow.Schema, len(all))
	for r, m := range all {
		switch {
		case len(m) > 0 && m[0] == msgError:
			return fmt.Errorf("rank %d failed: %s", r, m[1:])
		case len(m) == 0 || m[0] != msgSchema:
			return fmt.Errorf("rank %d sent a malformed schema message", r)
		}
		if schemas[r], err = decodeSchema(m[1:]); err != nil {
			return fmt.Errorf("schema of rank %d: %w", r, err)
		}
	}
	for r := 1; r < len(all); r++ {
		if !schemas[0].Equal(schemas[r]) {
			return fmt.Errorf("rank 0's partition has schema %v but rank %d's has %v: every rank's frame must have one schema", schemas[0], r, schemas[r])
		}
	}
	f.agreed.Store(true)
	return nil
}
