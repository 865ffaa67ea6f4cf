package collective

import "context"

// Barrier returns once every rank has called Barrier. It uses the
// dissemination algorithm: in round k rank r sends a zero-byte message to
// r+2^k and waits for one from r-2^k, ceil(lg p) rounds in all.
func (c *Comm) Barrier(ctx context.Context) (err error) {
	cl, err := c.begin(ctx, "barrier")
	if err != nil {
		return err
	}
	defer cl.finish(&err)
	cl.use(wire(BarrierDissemination), 0)
	return cl.barrier()
}

func (cl *call) barrier() error {
	p, r := cl.c.size, cl.c.rank
	for k, d := 0, 1; d < p; k, d = k+1, d*2 {
		if err := cl.sendrecvExact((r+d)%p, (r-d+p)%p, k, nil); err != nil {
			return err
		}
	}
	return nil
}
