package collective_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"sync"

	"github.com/fnmesh/fnmesh/collective"
)

// run drives every rank of comms in its own goroutine, as separate
// processes would, and waits for them.
func run(comms []*collective.Comm, fn func(c *collective.Comm) error) {
	var wg sync.WaitGroup
	for _, c := range comms {
		wg.Go(func() {
			if err := fn(c); err != nil {
				log.Fatal(err)
			}
		})
	}
	wg.Wait()
}

// Four ranks in one process (Local connects them over loopback TCP) sum a
// vector: every rank gets the total.
func ExampleAllreduce() {
	ctx := context.Background()
	comms, err := collective.Local(ctx, 4)
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		for _, c := range comms {
			c.Close()
		}
	}()
	sums := make([][]float64, len(comms))
	run(comms, func(c *collective.Comm) error {
		r := float64(c.Rank())
		sum, err := collective.Allreduce(ctx, c, []float64{r, 10 * r, 1}, collective.Sum[float64]())
		sums[c.Rank()] = sum
		return err
	})
	fmt.Println(sums[0], sums[3])
	// Output:
	// [6 60 4] [6 60 4]
}

// A non-commutative user-defined op is combined in rank order: here
// "a then b" as decimal digits.
func ExampleNewOp() {
	ctx := context.Background()
	comms, _ := collective.Local(ctx, 5)
	defer func() {
		for _, c := range comms {
			c.Close()
		}
	}()
	concat := collective.NewOp(func(a, b int64) int64 {
		m := int64(10)
		for m <= b {
			m *= 10
		}
		return a*m + b
	}, false)
	var got []int64
	run(comms, func(c *collective.Comm) error {
		res, err := collective.Reduce(ctx, c, 2, []int64{int64(c.Rank() + 1)}, concat)
		if c.Rank() == 2 {
			got = res
		}
		return err
	})
	fmt.Println(got)
	// Output:
	// [12345]
}

// Allgather with a different size per rank; Bcast from a root other than 0.
func ExampleComm_Allgather() {
	ctx := context.Background()
	comms, _ := collective.Local(ctx, 3)
	defer func() {
		for _, c := range comms {
			c.Close()
		}
	}()
	out := make([]string, 3)
	run(comms, func(c *collective.Comm) error {
		names := []string{"ant", "bee", "cicada"}
		all, err := c.Allgather(ctx, []byte(names[c.Rank()][:c.Rank()+1]))
		if err != nil {
			return err
		}
		msg, err := c.Bcast(ctx, 2, []byte("from rank 2"))
		out[c.Rank()] = fmt.Sprintf("rank %d: %q %q", c.Rank(), all, msg)
		return err
	})
	for _, line := range out {
		fmt.Println(line)
	}
	// Output:
	// rank 0: ["a" "be" "cic"] "from rank 2"
	// rank 1: ["a" "be" "cic"] "from rank 2"
	// rank 2: ["a" "be" "cic"] "from rank 2"
}

// Alltoallv: rank i sends rank j the string "i>j".
func ExampleComm_Alltoallv() {
	ctx := context.Background()
	comms, _ := collective.Local(ctx, 3)
	defer func() {
		for _, c := range comms {
			c.Close()
		}
	}()
	out := make([][][]byte, 3)
	run(comms, func(c *collective.Comm) error {
		parts := make([][]byte, c.Size())
		for j := range parts {
			parts[j] = fmt.Appendf(nil, "%d>%d", c.Rank(), j)
		}
		var err error
		out[c.Rank()], err = c.Alltoallv(ctx, parts)
		return err
	})
	fmt.Printf("%s\n", out[1])
	// Output:
	// [0>1 1>1 2>1]
}

// AlltoallvInto: every rank sends rank j a block of j+1 bytes and receives
// into one buffer cut into per-sender pieces (MPI's counts and
// displacements), allocating nothing per message.
func ExampleComm_AlltoallvInto() {
	ctx := context.Background()
	comms, _ := collective.Local(ctx, 3)
	defer func() {
		for _, c := range comms {
			c.Close()
		}
	}()
	got := make([]string, 3)
	run(comms, func(c *collective.Comm) error {
		me := c.Rank()
		parts := make([][]byte, c.Size())
		for j := range parts {
			parts[j] = bytes.Repeat([]byte{byte('a' + me)}, j+1)
		}
		recv := make([]byte, c.Size()*(me+1)) // every sender sends me+1 bytes
		out := make([][]byte, c.Size())
		for j := range out {
			out[j] = recv[j*(me+1) : (j+1)*(me+1)]
		}
		if err := c.AlltoallvInto(ctx, parts, out); err != nil {
			return err
		}
		got[me] = string(recv)
		return nil
	})
	fmt.Println(got)
	// Output:
	// [abc aabbcc aaabbbccc]
}

// SendBuffers sends a message made of several pieces (a header and a body
// here) without copying them into one buffer first; the receiver gets one
// message.
func ExampleComm_SendBuffers() {
	ctx := context.Background()
	comms, _ := collective.Local(ctx, 2)
	defer func() {
		for _, c := range comms {
			c.Close()
		}
	}()
	run(comms, func(c *collective.Comm) error {
		if c.Rank() == 0 {
			return c.SendBuffers(ctx, 1, 7, [][]byte{[]byte("header|"), []byte("body")})
		}
		msg, err := c.Recv(ctx, 0, 7)
		fmt.Printf("%s\n", msg)
		return err
	})
	// Output:
	// header|body
}

// Point-to-point messages with tags; Split into even and odd ranks.
func ExampleComm_Split() {
	ctx := context.Background()
	comms, _ := collective.Local(ctx, 6)
	defer func() {
		for _, c := range comms {
			c.Close()
		}
	}()
	lines := make([]string, 6)
	run(comms, func(c *collective.Comm) error {
		sub, err := c.Split(ctx, c.Rank()%2, -c.Rank()) // reverse order within each half
		if err != nil {
			return err
		}
		sum, err := collective.Allreduce(ctx, sub, []int{c.Rank()}, collective.Sum[int]())
		lines[c.Rank()] = fmt.Sprintf("world rank %d: rank %d of %d, sum %v", c.Rank(), sub.Rank(), sub.Size(), sum)
		return err
	})
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// world rank 0: rank 2 of 3, sum [6]
	// world rank 1: rank 2 of 3, sum [9]
	// world rank 2: rank 1 of 3, sum [6]
	// world rank 3: rank 1 of 3, sum [9]
	// world rank 4: rank 0 of 3, sum [6]
	// world rank 5: rank 0 of 3, sum [9]
}

// Forcing an algorithm and moving a switch point.
func ExampleWithAlgorithm() {
	ctx := context.Background()
	tuning := collective.DefaultTuning()
	tuning.AllreduceRingMin = 4 << 20 // ring from 4 MiB instead of 256 KiB
	comms, _ := collective.Local(ctx, 2,
		collective.WithTuning(tuning),
		collective.WithAlgorithm(collective.AllgatherBruck))
	defer func() {
		for _, c := range comms {
			c.Close()
		}
	}()
	fmt.Println(comms[0].Tuning().Force[collective.OpAllgather], comms[0].Tuning().AllreduceRingMin)
	// Output:
	// allgather/bruck 4194304
}

// Send and Recv between two ranks.
func ExampleComm_Send() {
	ctx := context.Background()
	comms, _ := collective.Local(ctx, 2)
	defer func() {
		for _, c := range comms {
			c.Close()
		}
	}()
	go comms[0].Send(ctx, 1, 7, []byte("hello"))
	msg, err := comms[1].Recv(ctx, 0, 7)
	fmt.Printf("%s %v\n", msg, err)
	// Output:
	// hello <nil>
}

// A receiver keeps one receive posted ahead of the one it waits for, so
// that a stream of messages lands straight in the memory it manages (here
// one arena) with no message queued and copied on the way.
func ExampleComm_PostRecvFunc() {
	ctx := context.Background()
	comms, err := collective.Local(ctx, 2)
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		for _, c := range comms {
			c.Close()
		}
	}()
	words := []string{"posted", "ahead", "of", "time", "."}
	go func() {
		for _, w := range words {
			if err := comms[0].Send(ctx, 1, 7, []byte(w)); err != nil {
				log.Fatal(err)
			}
		}
	}()
	arena := make([]byte, 0, 64)
	alloc := func(n int) []byte { // runs once per message, on whichever goroutine delivers it
		arena = arena[:len(arena)+n]
		return arena[len(arena)-n:]
	}
	next, err := comms[1].PostRecvFunc(0, 7, alloc)
	if err != nil {
		log.Fatal(err)
	}
	var got []string
	for range words {
		cur := next
		if next, err = comms[1].PostRecvFunc(0, 7, alloc); err != nil {
			log.Fatal(err)
		}
		b, err := cur.Wait(ctx)
		if err != nil {
			log.Fatal(err)
		}
		got = append(got, string(b))
	}
	next.Cancel() // nothing more will come: withdraw the receive posted ahead
	fmt.Println(got, len(arena))
	// Output:
	// [posted ahead of time .] 18
}

// Local connects n ranks of one process over loopback TCP; drive each rank
// from its own goroutine, as separate processes would run them.
func ExampleLocal() {
	ctx := context.Background()
	comms, err := collective.Local(ctx, 3)
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		for _, c := range comms {
			c.Close()
		}
	}()
	for _, c := range comms {
		fmt.Printf("rank %d of %d\n", c.Rank(), c.Size())
	}
	// Output:
	// rank 0 of 3
	// rank 1 of 3
	// rank 2 of 3
}

// Bcast sends the root's bytes to every rank; only the root's data is read.
func ExampleComm_Bcast() {
	ctx := context.Background()
	comms, _ := collective.Local(ctx, 4)
	defer func() {
		for _, c := range comms {
			c.Close()
		}
	}()
	got := make([]string, len(comms))
	run(comms, func(c *collective.Comm) error {
		var data []byte
		if c.Rank() == 1 {
			data = []byte("config v7")
		}
		b, err := c.Bcast(ctx, 1, data)
		got[c.Rank()] = string(b)
		return err
	})
	fmt.Printf("%q\n", got)
	// Output:
	// ["config v7" "config v7" "config v7" "config v7"]
}

// Gather collects every rank's bytes, of any size, at the root.
func ExampleComm_Gather() {
	ctx := context.Background()
	comms, _ := collective.Local(ctx, 3)
	defer func() {
		for _, c := range comms {
			c.Close()
		}
	}()
	var all [][]byte
	run(comms, func(c *collective.Comm) error {
		out, err := c.Gather(ctx, 0, bytes.Repeat([]byte{'a' + byte(c.Rank())}, c.Rank()+1))
		if c.Rank() == 0 {
			all = out
		}
		return err
	})
	fmt.Printf("%s\n", all)
	// Output:
	// [a bb ccc]
}

// Scatter hands rank i the root's parts[i].
func ExampleComm_Scatter() {
	ctx := context.Background()
	comms, _ := collective.Local(ctx, 3)
	defer func() {
		for _, c := range comms {
			c.Close()
		}
	}()
	got := make([]string, len(comms))
	run(comms, func(c *collective.Comm) error {
		var parts [][]byte
		if c.Rank() == 2 {
			parts = [][]byte{[]byte("rows 0-99"), []byte("rows 100-199"), []byte("rows 200-299")}
		}
		b, err := c.Scatter(ctx, 2, parts)
		got[c.Rank()] = string(b)
		return err
	})
	fmt.Printf("%q\n", got)
	// Output:
	// ["rows 0-99" "rows 100-199" "rows 200-299"]
}

// Reduce combines every rank's vector at the root (Max here); the other
// ranks get nil.
func ExampleReduce() {
	ctx := context.Background()
	comms, _ := collective.Local(ctx, 4)
	defer func() {
		for _, c := range comms {
			c.Close()
		}
	}()
	results := make([][]int32, len(comms))
	run(comms, func(c *collective.Comm) error {
		r := int32(c.Rank())
		res, err := collective.Reduce(ctx, c, 3, []int32{r, 10 - r}, collective.Max[int32]())
		results[c.Rank()] = res
		return err
	})
	fmt.Println(results)
	// Output:
	// [[] [] [] [3 10]]
}

// ReduceScatter sums every rank's vector and hands rank i counts[i]
// elements of the sum.
func ExampleReduceScatter() {
	ctx := context.Background()
	comms, _ := collective.Local(ctx, 3)
	defer func() {
		for _, c := range comms {
			c.Close()
		}
	}()
	parts := make([][]int, len(comms))
	run(comms, func(c *collective.Comm) error {
		data := []int{1, 2, 3, 4, 5, 6} // the same on every rank: the sum is 3x
		var err error
		parts[c.Rank()], err = collective.ReduceScatter(ctx, c, data, []int{1, 2, 3}, collective.Sum[int]())
		return err
	})
	fmt.Println(parts)
	// Output:
	// [[3] [6 9] [12 15 18]]
}

// Barrier returns on every rank once all have called it: here no rank
// reads the shared counter before every rank has added to it.
func ExampleComm_Barrier() {
	ctx := context.Background()
	comms, _ := collective.Local(ctx, 4)
	defer func() {
		for _, c := range comms {
			c.Close()
		}
	}()
	var (
		mu    sync.Mutex
		added int
		seen  = make([]int, len(comms))
	)
	run(comms, func(c *collective.Comm) error {
		mu.Lock()
		added++
		mu.Unlock()
		if err := c.Barrier(ctx); err != nil {
			return err
		}
		mu.Lock()
		seen[c.Rank()] = added
		mu.Unlock()
		return nil
	})
	fmt.Println(seen)
	// Output:
	// [4 4 4 4]
}

// Alltoall sends block j of every rank's data to rank j: a transpose of
// equal-sized blocks.
func ExampleComm_Alltoall() {
	ctx := context.Background()
	comms, _ := collective.Local(ctx, 3)
	defer func() {
		for _, c := range comms {
			c.Close()
		}
	}()
	got := make([]string, len(comms))
	run(comms, func(c *collective.Comm) error {
		data := make([]byte, 0, 2*c.Size())
		for j := range c.Size() {
			data = append(data, byte('A'+c.Rank()), byte('0'+j)) // 2-byte block for rank j
		}
		out, err := c.Alltoall(ctx, data)
		got[c.Rank()] = string(out)
		return err
	})
	fmt.Println(got)
	// Output:
	// [A0B0C0 A1B1C1 A2B2C2]
}

// RecvInto receives into the caller's buffer and returns the message's
// length, allocating nothing: a loop of receives reuses one buffer.
func ExampleComm_RecvInto() {
	ctx := context.Background()
	comms, _ := collective.Local(ctx, 2)
	defer func() {
		for _, c := range comms {
			c.Close()
		}
	}()
	go func() {
		for _, w := range []string{"one", "three", "two"} {
			if err := comms[0].Send(ctx, 1, 4, []byte(w)); err != nil {
				log.Fatal(err)
			}
		}
	}()
	buf := make([]byte, 16)
	for range 3 {
		n, err := comms[1].RecvInto(ctx, 0, 4, buf)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%d bytes: %s\n", n, buf[:n])
	}
	// Output:
	// 3 bytes: one
	// 5 bytes: three
	// 3 bytes: two
}

// A layer above collective names the rank in its errors only when the
// error it wraps does not already: a call's error names it first.
func ExampleNamesRank() {
	ctx, cancel := context.WithCancel(context.Background())
	comms, _ := collective.Local(context.Background(), 1)
	defer comms[0].Close()
	cancel()
	wrap := func(rank int, op string, err error) error {
		if collective.NamesRank(err) {
			return fmt.Errorf("mylayer: %s: %w", op, err)
		}
		return fmt.Errorf("mylayer: rank %d: %s: %w", rank, op, err)
	}
	err := comms[0].Barrier(ctx)
	fmt.Println(wrap(0, "sum", err))
	fmt.Println(wrap(0, "sum", errors.Join(fmt.Errorf("stage 2: %w", err), errors.New("cleanup failed"))))
	fmt.Println(wrap(0, "load", errors.New("no such column")))
	// Output:
	// mylayer: sum: collective: rank 0: barrier: context canceled
	// mylayer: sum: stage 2: collective: rank 0: barrier: context canceled
	// cleanup failed
	// mylayer: rank 0: load: no such column
}
