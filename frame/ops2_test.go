package frame

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/fnmesh/fnmesh/arrowio"
	"github.com/fnmesh/fnmesh/collective"
	"github.com/stretchr/testify/require"
)

func TestShuffleDistinctHeadCount(t *testing.T) {
	for _, p := range rankSizes {
		parts := partitions(t, p, 600+uint64(p), genSpec{rows: 70, keys: 9, skew: 0.5, nullFrac: 0.15})
		all := concatRows(parts)
		var distinctK, distinctAll, head []row
		var count int64
		runRanks(t, p, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
			f, err := newFrame(t, c, mem, parts[c.Rank()])
			if err != nil {
				return err
			}
			defer f.Release()

			// Shuffle: the multiset of rows is kept and every key is on the rank
			// its hash names.
			s, err := f.Shuffle(ctx, "k", "s")
			if err != nil {
				return err
			}
			defer s.Release()
			for _, r := range rowsOf(s.Table()) {
				kt := buildTable(memory.NewGoAllocator(), genSchema, []row{r})
				cols := []arrow.Array{kt.Column(0).Data().Chunk(0), kt.Column(1).Data().Chunk(0)}
				h := make([]uint64, 1)
				err := arrowio.HashRows(cols, h)
				kt.Release()
				if err != nil {
					return err
				}
				if got := arrowio.PartitionOf(h[0], p); got != c.Rank() {
					return fmt.Errorf("row %v belongs on rank %d, found on %d", r, got, c.Rank())
				}
			}
			if n, err := s.Count(ctx); err != nil || n != int64(len(all)) {
				return fmt.Errorf("shuffled count %d (%v), want %d", n, err, len(all))
			}
			again, err := s.Shuffle(ctx, "k", "s") // already partitioned: no exchange
			if err != nil {
				return err
			}
			if again.Table() != s.Table() {
				again.Release()
				return fmt.Errorf("reshuffling a partitioned frame moved data")
			}
			again.Release()

			dk, err := f.Distinct(ctx, "k")
			if err != nil {
				return err
			}
			rk, _, err := gatherRows(ctx, dk)
			dk.Release()
			if err != nil {
				return err
			}
			da, err := f.Distinct(ctx)
			if err != nil {
				return err
			}
			ra, _, err := gatherRows(ctx, da)
			da.Release()
			if err != nil {
				return err
			}
			h, err := f.Head(ctx, 25)
			if err != nil {
				return err
			}
			rh, _, err := gatherRows(ctx, h)
			h.Release()
			if err != nil {
				return err
			}
			n, err := f.Count(ctx)
			if err != nil {
				return err
			}
			if c.Rank() == 0 {
				distinctK, distinctAll, head, count = rk, ra, rh, n
			}
			return nil
		})
		require.Equal(t, int64(len(all)), count)
		require.Equal(t, all[:min(25, len(all))], head, "p=%d head", p)
		seen := map[string]row{}
		seenAll := map[string]row{}
		for _, r := range all {
			seen[rowKey(row{r[cK]})] = row{r[cK]}
			seenAll[rowKey(r)] = r
		}
		var wantK, wantAll []row
		for _, r := range seen {
			wantK = append(wantK, r)
		}
		for _, r := range seenAll {
			wantAll = append(wantAll, r)
		}
		requireSameRows(t, wantK, distinctK, "p=%d distinct k", p)
		requireSameRows(t, wantAll, distinctAll, "p=%d distinct rows", p)
	}
}

func TestFilterSelectProject(t *testing.T) {
	parts := partitions(t, 3, 700, genSpec{rows: 100, keys: 10, nullFrac: 0.2})
	var got map[string][]row
	runRanks(t, 3, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
		f, err := newFrame(t, c, mem, parts[c.Rank()])
		if err != nil {
			return err
		}
		defer f.Release()
		out := map[string][]row{}
		keep := func(name string, g *Frame, err error) error {
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			defer g.Release()
			rows, _, err := gatherRows(ctx, g)
			out[name] = rows
			return err
		}
		g, err := f.Filter(ctx, Col("w").Gt(0).And(Col("s").Ne("s003")))
		if err := keep("filter", g, err); err != nil {
			return err
		}
		g, err = f.Filter(ctx, Col("v").IsNull().Or(Col("k").Le(Lit(int64(2)))))
		if err := keep("filter or", g, err); err != nil {
			return err
		}
		g, err = f.Select("v", "k")
		if err := keep("select", g, err); err != nil {
			return err
		}
		g, err = f.Project(ctx, Col("k"), Col("w").Mul(2).Add(Col("k")).As("x"), Col("v").Div(2.0))
		if err := keep("project", g, err); err != nil {
			return err
		}
		g, err = f.WithColumn(ctx, "w", Col("w").Sub(1))
		if err := keep("with column", g, err); err != nil {
			return err
		}
		if _, err := f.Filter(ctx, Col("k")); err == nil {
			return fmt.Errorf("a non-boolean predicate was accepted")
		}
		if _, err := f.Select("nope"); err == nil {
			return fmt.Errorf("a missing column was accepted")
		}
		if c.Rank() == 0 {
			got = out
		}
		return nil
	})
	var filter, filterOr, sel, proj, withCol []row
	for _, r := range concatRows(parts) {
		if r[cW] != nil && r[cW].(int64) > 0 && r[cS] != nil && r[cS] != "s003" {
			filter = append(filter, r)
		}
		if r[cV] == nil || (r[cK] != nil && r[cK].(int64) <= 2) {
			filterOr = append(filterOr, r)
		}
		sel = append(sel, row{r[cV], r[cK]})
		var x, half any
		if r[cW] != nil && r[cK] != nil {
			x = r[cW].(int64)*2 + r[cK].(int64)
		}
		if r[cV] != nil {
			half = r[cV].(float64) / 2
		}
		proj = append(proj, row{r[cK], x, half})
		w := r[cW]
		if w != nil {
			w = w.(int64) - 1
		}
		withCol = append(withCol, row{r[cK], r[cS], w, r[cV]})
	}
	require.Equal(t, filter, got["filter"])
	require.Equal(t, filterOr, got["filter or"])
	require.Equal(t, sel, got["select"])
	require.Equal(t, proj, got["project"])
	require.Equal(t, withCol, got["with column"])
}

// TestJoinCoPartitionedAndTypes checks that a join of frames already
// partitioned by their keys moves nothing, that integer keys of different
// widths and dictionary-encoded keys match by value, and that the result
// names follow the rules (suffixes, LeftOn/RightOn).
func TestJoinCoPartitionedAndTypes(t *testing.T) {
	runRanks(t, 3, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
		prof := &Profile{}
		// left: id int32, name dictionary<int8, utf8>, x int64
		ls := arrow.NewSchema([]arrow.Field{
			{Name: "id", Type: arrow.PrimitiveTypes.Int32},
			{Name: "name", Type: &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: arrow.BinaryTypes.String}},
			{Name: "x", Type: arrow.PrimitiveTypes.Int64},
		}, nil)
		rs := arrow.NewSchema([]arrow.Field{
			{Name: "key", Type: arrow.PrimitiveTypes.Int64},
			{Name: "name", Type: arrow.BinaryTypes.String},
			{Name: "x", Type: arrow.PrimitiveTypes.Float64},
		}, nil)
		lb := array.NewRecordBuilder(mem, ls)
		rb := array.NewRecordBuilder(mem, rs)
		defer lb.Release()
		defer rb.Release()
		names := []string{"ann", "bob", "cy"}
		for i := range 6 {
			id := int64(c.Rank()*6 + i)
			lb.Field(0).(*array.Int32Builder).Append(int32(id))
			if err := lb.Field(1).(*array.BinaryDictionaryBuilder).AppendString(names[int(id)%3]); err != nil {
				return err
			}
			lb.Field(2).(*array.Int64Builder).Append(id * 10)
			rb.Field(0).(*array.Int64Builder).Append(id / 2)
			rb.Field(1).(*array.StringBuilder).Append(names[int(id)%3])
			rb.Field(2).(*array.Float64Builder).Append(float64(id))
		}
		lrec, rrec := lb.NewRecordBatch(), rb.NewRecordBatch()
		defer lrec.Release()
		defer rrec.Release()
		lf, err := FromRecords(c, ls, []arrow.RecordBatch{lrec}, WithAllocator(mem), WithProfile(prof))
		if err != nil {
			return err
		}
		defer lf.Release()
		rf, err := FromRecords(c, rs, []arrow.RecordBatch{rrec}, WithAllocator(mem))
		if err != nil {
			return err
		}
		defer rf.Release()

		j, err := lf.Join(ctx, rf, Inner, LeftOn("id"), RightOn("key"))
		if err != nil {
			return err
		}
		defer j.Release()
		wantNames := []string{"id", "name_x", "x_x", "key", "name_y", "x_y"}
		if got := fieldNames(j.Schema()); !slices.Equal(got, wantNames) {
			return fmt.Errorf("columns %v, want %v", got, wantNames)
		}
		if n, err := j.Count(ctx); err != nil || n != 18 { // ids 0..17 match keys 0..8 twice each: 9*2
			return fmt.Errorf("id/key join: %d rows (%v), want 18", n, err)
		}

		// Join on the dictionary-encoded name: every left row matches the 6
		// right rows of its name.
		byName, err := lf.Join(ctx, rf, Inner, On("name"))
		if err != nil {
			return err
		}
		defer byName.Release()
		if n, err := byName.Count(ctx); err != nil || n != 18*6 {
			return fmt.Errorf("name join: %d rows (%v), want %d", n, err, 18*6)
		}
		// Group by the dictionary-encoded column: by value.
		g, err := lf.GroupBy("name").Agg(ctx, CountRows(), Sum("x"))
		if err != nil {
			return err
		}
		rows, _, err := gatherRows(ctx, g)
		g.Release()
		if err != nil {
			return err
		}
		if c.Rank() == 0 {
			want := []row{{"ann", int64(6), int64(0 + 30 + 60 + 90 + 120 + 150)}, {"bob", int64(6), int64(10 + 40 + 70 + 100 + 130 + 160)}, {"cy", int64(6), int64(20 + 50 + 80 + 110 + 140 + 170)}}
			if fmt.Sprint(sortedKeys(rows)) != fmt.Sprint(sortedKeys(want)) {
				return fmt.Errorf("group by dictionary: %v, want %v", rows, want)
			}
		}
		// byName is partitioned by name: joining it with rf on name again
		// must not shuffle the left side.
		prof.Reset()
		again, err := byName.Join(ctx, rf, LeftOuter, On("name"))
		if err != nil {
			return err
		}
		defer again.Release()
		exchanges := 0
		for _, ph := range prof.Phases() {
			if ph.Name == "exchange" {
				exchanges++
			}
		}
		if exchanges != 1 {
			return fmt.Errorf("%d exchanges for a join with one side co-partitioned, want 1", exchanges)
		}
		return nil
	})
}

func TestErrorsAreCollectiveAndClear(t *testing.T) {
	parts := partitions(t, 3, 800, genSpec{rows: 20, keys: 5})
	runRanks(t, 3, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
		f, err := newFrame(t, c, mem, parts[c.Rank()])
		if err != nil {
			return err
		}
		defer f.Release()
		checks := []errorCheck{
			{"join missing key", func() (*Frame, error) { return f.Join(ctx, f, Inner, On("nope")) }, `no column "nope"`},
			{"join key types", func() (*Frame, error) { return f.Join(ctx, f, Inner, LeftOn("k"), RightOn("s")) }, "cannot be compared"},
			{"groupby sum of strings", func() (*Frame, error) { return f.GroupBy("k").Agg(ctx, Sum("s")) }, "cannot sum"},
			{"groupby duplicate names", func() (*Frame, error) { return f.GroupBy("k").Agg(ctx, Sum("w"), Sum("w")) }, "name them with As"},
			{"sort no keys", func() (*Frame, error) { return f.Sort(ctx) }, "no sort keys"},
			{"head negative", func() (*Frame, error) { return f.Head(ctx, -1) }, "negative"},
		}
		if err := expectErrors(c.Rank(), checks); err != nil {
			return err
		}
		// The communicator is still usable: errors found before any exchange
		// are found alike on every rank.
		return c.Barrier(ctx)
	})
}

// oddKeysTable has a column of each kind of key the operators must refuse
// before any data moves: int64 k, uint64 u, list l, interval iv.
func oddKeysTable(mem memory.Allocator, rank int) arrow.Table {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "k", Type: arrow.PrimitiveTypes.Int64},
		{Name: "u", Type: arrow.PrimitiveTypes.Uint64},
		{Name: "l", Type: arrow.ListOf(arrow.PrimitiveTypes.Int64)},
		{Name: "iv", Type: arrow.FixedWidthTypes.MonthDayNanoInterval},
	}, nil)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	for i := range 3 {
		b.Field(0).(*array.Int64Builder).Append(int64(rank*10 + i))
		b.Field(1).(*array.Uint64Builder).Append(uint64(i))
		lb := b.Field(2).(*array.ListBuilder)
		lb.Append(true)
		lb.ValueBuilder().(*array.Int64Builder).Append(int64(i))
		b.Field(3).(*array.MonthDayNanoIntervalBuilder).Append(arrow.MonthDayNanoInterval{Days: int32(i)})
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	return array.NewTableFromRecords(schema, []arrow.RecordBatch{rec})
}

// Keys that cannot work are found on every rank before any exchange: the
// error names the problem and the rank, and the communicator stays usable.
func TestBadKeysFailBeforeAnyExchange(t *testing.T) {
	runRanks(t, 3, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
		tbl := oddKeysTable(mem, c.Rank())
		f, err := New(c, tbl, WithAllocator(mem))
		tbl.Release()
		if err != nil {
			return err
		}
		defer f.Release()
		checks := []errorCheck{
			{"shuffle on a missing column", func() (*Frame, error) { return f.Shuffle(ctx, "nope") }, `no column "nope"`},
			{"shuffle on a list", func() (*Frame, error) { return f.Shuffle(ctx, "l") }, `column "l" of type list<item: int64, nullable> cannot be a key`},
			{"group by a list", func() (*Frame, error) { return f.GroupBy("l").Agg(ctx, CountRows()) }, `"l" of type list`},
			{"distinct over a list", func() (*Frame, error) { return f.Distinct(ctx) }, `"l" of type list`},
			{"uint64 joined to int64", func() (*Frame, error) { return f.Join(ctx, f, Inner, LeftOn("u"), RightOn("k")) }, "cast one side"},
			{"sort-merge on an interval", func() (*Frame, error) { return f.Join(ctx, f, Inner, On("iv"), SortMerge()) }, "no order to sort-merge by"},
			{"suffixes that collide", func() (*Frame, error) { return f.Join(ctx, f, Inner, On("k"), Suffixes("", "")) }, `two columns named "u"`},
		}
		if err := expectErrors(c.Rank(), checks); err != nil {
			return err
		}
		n, err := f.Count(ctx) // still usable
		if err == nil && n != 9 {
			err = fmt.Errorf("count %d, want 9", n)
		}
		return err
	})
}

// Partitions of different schemas (rank 1 calls its key column "K") fail
// the first distributed operator on every rank with the same error, and the
// communicator stays usable: an argument check that fails on one rank only
// would leave the others waiting for it.
func TestDifferentSchemasFailEveryRank(t *testing.T) {
	runRanks(t, 3, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
		name := "k"
		if c.Rank() == 1 {
			name = "K"
		}
		b := array.NewInt64Builder(mem)
		defer b.Release()
		b.AppendValues([]int64{1, 2, 3}, nil)
		col := b.NewArray()
		defer col.Release()
		schema := arrow.NewSchema([]arrow.Field{{Name: name, Type: arrow.PrimitiveTypes.Int64}}, nil)
		rec := array.NewRecordBatch(schema, []arrow.Array{col}, 3)
		defer rec.Release()
		f, err := FromRecords(c, schema, []arrow.RecordBatch{rec}, WithAllocator(mem))
		if err != nil {
			return err
		}
		defer f.Release()
		ops := map[string]func() (*Frame, error){
			"groupby": func() (*Frame, error) { return f.GroupBy("k").Agg(ctx, CountRows()) },
			"sort":    func() (*Frame, error) { return f.Sort(ctx, Asc("k")) },
			"shuffle": func() (*Frame, error) { return f.Shuffle(ctx, "k") },
			"join":    func() (*Frame, error) { return f.Join(ctx, f, Inner, On("k")) },
		}
		for _, op := range []string{"groupby", "sort", "shuffle", "join"} {
			g, err := ops[op]()
			if err == nil {
				g.Release()
				return fmt.Errorf("%s: no error", op)
			}
			if werr := checkWhere(err, c.Rank(), op); werr != nil {
				return fmt.Errorf("%s: %w", op, werr)
			}
			if !containsAll(err.Error(), "rank 1's has schema", "must have one schema") {
				return fmt.Errorf("%s: error %q does not name rank 1's schema", op, err)
			}
		}
		return c.Barrier(ctx)
	})
}

// errorCheck is an operator call that must fail with an error that says
// want (and names the rank).
type errorCheck struct {
	name string
	run  func() (*Frame, error)
	want string
}

// expectErrors runs the checks on rank.
func expectErrors(rank int, checks []errorCheck) error {
	for _, ch := range checks {
		g, err := ch.run()
		if err == nil {
			g.Release()
			return fmt.Errorf("%s: no error", ch.name)
		}
		if !containsAll(err.Error(), ch.want, fmt.Sprintf("rank %d", rank)) {
			return fmt.Errorf("%s: error %q does not say %q and the rank", ch.name, err, ch.want)
		}
	}
	return nil
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// TestDeadPeerFailsEveryRank: a rank that dies (closes its links) in the
// middle of a job makes the others' operators return an error, not hang.
func TestDeadPeerFailsEveryRank(t *testing.T) {
	parts := partitions(t, 3, 1000, genSpec{rows: 2000, keys: 50})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	comms, err := collective.Local(ctx, 3)
	require.NoError(t, err)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for r := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := comms[r]
			defer c.Close()
			f, err := newFrame(t, c, memory.NewGoAllocator(), parts[r])
			if err != nil {
				errs[r] = err
				return
			}
			defer f.Release()
			if r == 2 {
				_ = c.Close() // dies before the join
				return
			}
			j, err := f.Join(ctx, f, Inner, On("k"))
			if err == nil {
				j.Release()
			}
			errs[r] = err
		}()
	}
	wg.Wait()
	require.NoError(t, ctx.Err(), "the surviving ranks waited for the deadline")
	for r := range 2 {
		require.Error(t, errs[r], "rank %d", r)
		require.Contains(t, errs[r].Error(), fmt.Sprintf("rank %d", r))
	}
}

// TestCompressedExchanges: with LZ4 or Zstd on the wire the results are the
// same, and the profile records every phase.
func TestCompressedExchanges(t *testing.T) {
	parts := partitions(t, 3, 1100, genSpec{rows: 300, keys: 40, skew: 0.3, nullFrac: 0.1})
	for _, comp := range []arrowio.Compression{arrowio.NoCompression, arrowio.LZ4, arrowio.Zstd} {
		var got []row
		prof := &Profile{}
		runRanks(t, 3, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
			opts := []Option{WithCompression(comp)}
			if c.Rank() == 0 {
				opts = append(opts, WithProfile(prof))
			}
			f, err := newFrame(t, c, mem, parts[c.Rank()], opts...)
			if err != nil {
				return err
			}
			defer f.Release()
			j, err := f.Join(ctx, f, LeftOuter, On("s"))
			if err != nil {
				return err
			}
			defer j.Release()
			g, err := j.GroupBy("s").Agg(ctx, CountRows())
			if err != nil {
				return err
			}
			defer g.Release()
			rows, _, err := gatherRows(ctx, g)
			if c.Rank() == 0 {
				got = rows
			}
			return err
		})
		want := map[string]int64{}
		for _, r := range concatRows(parts) {
			n := int64(0)
			for _, o := range concatRows(parts) {
				if r[cS] != nil && o[cS] == r[cS] {
					n++
				}
			}
			want[rowKey(row{r[cS]})] += max(n, 1)
		}
		var wantRows []row
		for k, n := range want {
			var s any
			if k != "<null>" {
				s = k[1:]
				s, _ = strconv.Unquote(s.(string))
			}
			wantRows = append(wantRows, row{s, n})
		}
		requireSameRows(t, wantRows, got, "compression %v", comp)
		var names []string
		for _, ph := range prof.Phases() {
			names = append(names, ph.Op+"/"+ph.Name)
		}
		require.Subset(t, names, []string{"join/partition", "join/exchange", "join/local join", "join/materialize", "groupby/local aggregate"})
		// The join's output is partitioned by s: the group-by on s moves nothing.
		require.NotContains(t, names, "groupby/exchange")
		require.Contains(t, prof.String(), "local join")
		require.Positive(t, prof.Total("exchange").Bytes)
	}
}

func TestRebalance(t *testing.T) {
	for _, p := range rankSizes {
		parts := partitions(t, p, 1200+uint64(p), genSpec{rows: 90, keys: 20, nullFrac: 0.1})
		all := concatRows(parts)
		var got []row
		var counts []int64
		runRanks(t, p, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
			f, err := newFrame(t, c, mem, parts[c.Rank()])
			if err != nil {
				return err
			}
			defer f.Release()
			b, err := f.Rebalance(ctx)
			if err != nil {
				return err
			}
			defer b.Release()
			n, err := b.rowCounts(ctx)
			if err != nil {
				return err
			}
			rows, _, err := gatherRows(ctx, b)
			if c.Rank() == 0 {
				got, counts = rows, n
			}
			return err
		})
		require.Equal(t, all, got, "p=%d: rows and their order", p)
		for r, c := range counts {
			want := int64(len(all) / p)
			if r < len(all)%p {
				want++
			}
			require.Equal(t, want, c, "p=%d rank %d", p, r)
		}
	}
}

// TestGroupByPerRowPath: with nearly unique keys the ranks agree to skip the
// local pre-aggregation, and the result is still the oracle's.
func TestGroupByPerRowPath(t *testing.T) {
	for _, p := range []int{2, 3, 5} {
		parts := partitions(t, p, 1300+uint64(p), genSpec{rows: 400, keys: 1 << 20, nullFrac: 0.05})
		few := partitions(t, p, 1400+uint64(p), genSpec{rows: 400, keys: 5, nullFrac: 0.05})
		var got, gotLow []row
		var phases, phasesLow []string
		runRanks(t, p, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
			prof := &Profile{}
			f, err := newFrame(t, c, mem, parts[c.Rank()], WithProfile(prof))
			if err != nil {
				return err
			}
			defer f.Release()
			g, err := f.GroupBy("k", "w").Agg(ctx, testAggs...) // (k, w) nearly unique
			if err != nil {
				return err
			}
			rows, _, err := gatherRows(ctx, g)
			g.Release()
			if err != nil {
				return err
			}
			var names []string
			for _, ph := range prof.Phases() {
				names = append(names, ph.Name)
			}
			prof.Reset()
			ff, err := newFrame(t, c, mem, few[c.Rank()], WithProfile(prof))
			if err != nil {
				return err
			}
			defer ff.Release()
			lo, err := ff.GroupBy("s").Agg(ctx, testAggs...) // few groups
			if err != nil {
				return err
			}
			lrows, _, err := gatherRows(ctx, lo)
			lo.Release()
			if c.Rank() == 0 {
				got, gotLow, phases = rows, lrows, names
				for _, ph := range prof.Phases() {
					phasesLow = append(phasesLow, ph.Name)
				}
			}
			return err
		})
		requireSameRows(t, oracleGroupBy(concatRows(parts), []int{cK, cW}), got, "p=%d unique keys", p)
		requireSameRows(t, oracleGroupBy(concatRows(few), []int{cS}), gotLow, "p=%d few keys", p)
		require.Contains(t, phases, "local rows", "p=%d: unique keys should skip pre-aggregation", p)
		require.Contains(t, phasesLow, "local aggregate", "p=%d: few keys should pre-aggregate", p)
		require.Contains(t, phasesLow, "key estimate", "p=%d: the vote is a phase of its own", p)
	}
}
