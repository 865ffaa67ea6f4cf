package frame

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/fnmesh/fnmesh/collective"
	"github.com/fnmesh/fnmesh/rendezvous"
	"github.com/stretchr/testify/require"
)

// The end-to-end test runs its ranks as separate OS processes: the test
// binary starts itself again with e2eEnv set, and TestMain turns such a
// process into one worker.
const e2eEnv = "FNMESH_FRAME_E2E_WORKER"

func TestMain(m *testing.M) {
	if os.Getenv(e2eEnv) != "" {
		if err := e2eWorker(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// e2eWorker is one rank: it joins the job through the rendezvous server,
// reads its share of the Parquet files, joins, aggregates and sorts, and
// rank 0 writes the gathered result as an Arrow IPC file.
func e2eWorker() error {
	env := func(k string) string { return os.Getenv("FNMESH_E2E_" + k) }
	rank, _ := strconv.Atoi(env("RANK"))
	world, _ := strconv.Atoi(env("WORLD"))
	secret, err := hex.DecodeString(env("SECRET"))
	if err != nil {
		return err
	}
	dir := env("DIR")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := collective.Join(ctx, env("ADDR"), env("JOB"), world, secret,
		collective.WithJoinOptions(rendezvous.WithRank(rank)))
	if err != nil {
		return err
	}
	defer c.Close()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	result, err := e2ePipeline(ctx, c, mem, dir)
	if err != nil {
		return err
	}
	if result != nil {
		err = writeIPCFile(filepath.Join(dir, "result.arrow"), result)
		result.Release()
		if err != nil {
			return err
		}
	}
	if err := c.Barrier(ctx); err != nil { // nobody closes links others still use
		return err
	}
	if n := mem.CurrentAlloc(); n != 0 {
		return fmt.Errorf("rank %d leaked %d bytes", rank, n)
	}
	return nil
}

func e2ePipeline(ctx context.Context, c *collective.Comm, mem memory.Allocator, dir string) (arrow.Table, error) {
	left, err := ReadParquet(ctx, c, []string{filepath.Join(dir, "left-*.parquet")}, WithAllocator(mem))
	if err != nil {
		return nil, err
	}
	defer left.Release()
	right, err := ReadParquet(ctx, c, []string{filepath.Join(dir, "right-{rank}.parquet")}, WithAllocator(mem))
	if err != nil {
		return nil, err
	}
	defer right.Release()
	j, err := left.Join(ctx, right, Inner, On("k"))
	if err != nil {
		return nil, err
	}
	defer j.Release()
	g, err := j.GroupBy("k").Agg(ctx, Sum("w_y"), CountRows(), Mean("v_x"), Max("s_y"))
	if err != nil {
		return nil, err
	}
	defer g.Release()
	s, err := g.Sort(ctx, Asc("k"))
	if err != nil {
		return nil, err
	}
	defer s.Release()
	return s.Gather(ctx, 0)
}

func writeIPCFile(path string, t arrow.Table) error {
	var buf bytes.Buffer
	w, err := ipc.NewFileWriter(&buf, ipc.WithSchema(t.Schema()))
	if err != nil {
		return err
	}
	if err := writeBatches(context.Background(), t, w.Write); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

func writeParquetRows(t *testing.T, path string, rows []row) {
	tbl := buildTable(memory.NewGoAllocator(), genSchema, rows)
	defer tbl.Release()
	f, err := os.Create(path)
	require.NoError(t, err)
	require.NoError(t, pqarrow.WriteTable(tbl, f, 1<<20, parquet.NewWriterProperties(), pqarrow.DefaultWriterProps()))
}

func TestEndToEndProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts worker processes; skipped with -short")
	}
	const world = 3
	dir := t.TempDir()
	// Left: five files dealt round-robin over the ranks; right: one file per rank.
	left := partitions(t, 5, 900, genSpec{rows: 80, keys: 25, skew: 0.3, nullFrac: 0.1})
	right := partitions(t, world, 901, genSpec{rows: 60, keys: 25, skew: 0.2, nullFrac: 0.1})
	for i, rows := range left {
		writeParquetRows(t, filepath.Join(dir, fmt.Sprintf("left-%d.parquet", i)), rows)
	}
	for r, rows := range right {
		writeParquetRows(t, filepath.Join(dir, fmt.Sprintf("right-%d.parquet", r)), rows)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := rendezvous.NewServer(secret)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln, nil) }()

	procs := make([]*exec.Cmd, world)
	outs := make([]*bytes.Buffer, world)
	for r := range world {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		outs[r] = &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = outs[r], outs[r]
		cmd.Env = append(os.Environ(), e2eEnv+"=1",
			"FNMESH_E2E_RANK="+strconv.Itoa(r), "FNMESH_E2E_WORLD="+strconv.Itoa(world),
			"FNMESH_E2E_ADDR="+ln.Addr().String(), "FNMESH_E2E_JOB=frame-e2e",
			"FNMESH_E2E_SECRET="+hex.EncodeToString(secret), "FNMESH_E2E_DIR="+dir)
		require.NoError(t, cmd.Start())
		procs[r] = cmd
	}
	for r, cmd := range procs {
		require.NoError(t, cmd.Wait(), "worker %d: %s", r, outs[r])
	}
	cancel()
	<-served

	got := readIPCRows(t, filepath.Join(dir, "result.arrow"))

	// Oracle: the join with Go maps, a map group-by, then sort.Slice.
	joined := oracleJoinOn(concatRows(left), concatRows(right), []int{cK}, Inner)
	// joined rows: k, s_x, w_x, v_x, s_y, w_y, v_y
	type acc struct {
		k     any
		sumW  int64
		nW, n int64
		sumV  float64
		nV    int64
		maxS  any
	}
	groups := map[string]*acc{}
	for _, r := range joined {
		id := rowKey(row{r[0]})
		a := groups[id]
		if a == nil {
			a = &acc{k: r[0]}
			groups[id] = a
		}
		a.n++
		if w := r[5]; w != nil {
			a.sumW += w.(int64)
			a.nW++
		}
		if v := r[3]; v != nil {
			a.sumV += v.(float64)
			a.nV++
		}
		if s := r[4]; s != nil && (a.maxS == nil || s.(string) > a.maxS.(string)) {
			a.maxS = s
		}
	}
	var want []row
	for _, a := range groups {
		var sum, mean any
		if a.nW > 0 {
			sum = a.sumW
		}
		if a.nV > 0 {
			mean = a.sumV / float64(a.nV)
		}
		want = append(want, row{a.k, sum, a.n, mean, a.maxS})
	}
	sort.Slice(want, func(i, j int) bool { return want[i][0].(int64) < want[j][0].(int64) }) // inner join: no null keys
	require.NotEmpty(t, want)
	require.Equal(t, want, got)
}

func readIPCRows(t *testing.T, path string) []row {
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	r, err := ipc.NewFileReader(f)
	require.NoError(t, err)
	defer r.Close()
	var out []row
	for i := range r.NumRecords() {
		rec, err := r.RecordBatch(i)
		require.NoError(t, err)
		out = append(out, recordRows(rec)...)
	}
	require.True(t, slices.Equal(fieldNames(r.Schema()), []string{"k", "sum_w_y", "count", "mean_v_x", "max_s_y"}), "columns %v", fieldNames(r.Schema()))
	return out
}
