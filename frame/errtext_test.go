package frame

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnmesh/fnmesh/arrowio"
	"github.com/fnmesh/fnmesh/collective"
)

// checkWhere checks that err says where it happened, as frame words its
// errors: first what frame was doing and on which rank, "frame: rank r:
// op: ...", or, when the error it wraps names the rank already (a
// collective's: "collective: rank r: allgather: ..."), "frame: op: ...";
// and that it names rank r as who once on its first line, and at most once
// on each further line (errors.Join puts each failure on a line of its
// own).
func checkWhere(err error, r int, op string) error {
	if err == nil {
		return errors.New("no error")
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, fmt.Sprintf("frame: rank %d: %s: ", r, op)) && !strings.HasPrefix(msg, "frame: "+op+": ") {
		return fmt.Errorf("%q does not begin with \"frame: [rank %d: ]%s: \"", msg, r, op)
	}
	who := regexp.MustCompile(fmt.Sprintf(`(^|: )rank %d( \(world rank \d+\))?: `, r))
	for i, line := range strings.Split(msg, "\n") {
		if n := len(who.FindAllStringIndex(line, -1)); n > 1 || (i == 0 && n != 1) {
			return fmt.Errorf("%q names rank %d as who %d times on its line %d", msg, r, n, i+1)
		}
	}
	return nil
}

// namedOnce asserts that msg names rank r exactly once as who ("rank r: "
// at the start of msg or of one of its parts; "link to rank r: " is a
// peer, not who).
func namedOnce(t *testing.T, msg string, r int) {
	t.Helper()
	who := regexp.MustCompile(`(^|: )rank ` + string(rune('0'+r)) + `: `)
	assert.Len(t, who.FindAllStringIndex(msg, -1), 1, "rank %d named once as who in %q", r, msg)
}

// TestReadErrorNamesPathOnce: a file a reader cannot open is named once,
// by os's own error. Each reader used to put the path in front of it as
// well: "read csv: /tmp/x.csv: open /tmp/x.csv: no such file or
// directory".
func TestReadErrorNamesPathOnce(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		ext  string
		read func(ctx context.Context, c *collective.Comm, paths []string) (*Frame, error)
	}{
		{"read csv", "csv", func(ctx context.Context, c *collective.Comm, paths []string) (*Frame, error) {
			return ReadCSV(ctx, c, paths, arrow.NewSchema([]arrow.Field{{Name: "a", Type: arrow.PrimitiveTypes.Int64}}, nil))
		}},
		{"read csv", "csv", func(ctx context.Context, c *collective.Comm, paths []string) (*Frame, error) {
			return ReadCSV(ctx, c, paths, nil) // the schema inferred first
		}},
		{"read parquet", "parquet", func(ctx context.Context, c *collective.Comm, paths []string) (*Frame, error) {
			return ReadParquet(ctx, c, paths)
		}},
		{"read ipc", "arrow", func(ctx context.Context, c *collective.Comm, paths []string) (*Frame, error) {
			return ReadIPC(ctx, c, paths)
		}},
	} {
		t.Run(tc.ext, func(t *testing.T) {
			comms, err := collective.Local(context.Background(), 1)
			require.NoError(t, err)
			defer comms[0].Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			path := filepath.Join(dir, "missing."+tc.ext)
			f, err := tc.read(ctx, comms[0], []string{path})
			require.Error(t, err)
			require.Nil(t, f)
			assert.Regexp(t, `^frame: rank 0: `+tc.name+`: open `+regexp.QuoteMeta(path)+`: no such file or directory$`, err.Error())
			assert.ErrorIs(t, err, fs.ErrNotExist)
			namedOnce(t, err.Error(), 0)
			assert.NoError(t, checkWhere(err, 0, tc.name))
		})
	}
}

// TestFrameNamesRankOnce: frame names the rank in front of an error only
// when the error it wraps does not name it already, as a collective's does
// ("collective: rank 0: allgather: ..."). It used to name it twice:
// "frame: rank 0: join: left: agree on the schema: collective: rank 0:
// allgather: context canceled".
func TestFrameNamesRankOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ended, end := context.WithCancel(ctx)
	end()
	for _, tc := range []struct {
		name string
		op   string
		run  func(ctx context.Context, f *Frame) error
		end  bool   // rank 0's context has ended
		want string // rank 0's error
	}{
		{"join", "join", func(ctx context.Context, f *Frame) error { return releaseFrame(f.Join(ctx, f, Inner, On("k"))) }, true,
			`^frame: join: .*collective: rank 0: [a-z-]+: context canceled`},
		{"count", "count", func(ctx context.Context, f *Frame) error { _, err := f.Count(ctx); return err }, true,
			`^frame: count: .*collective: rank 0: [a-z-]+: context canceled`},
		{"bad column", "sort", func(ctx context.Context, f *Frame) error { return releaseFrame(f.Sort(ctx, Asc("nope"))) }, false,
			`^frame: rank 0: sort: no column "nope"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			comms, err := collective.Local(ctx, 2)
			require.NoError(t, err)
			defer func() {
				for _, c := range comms {
					c.Close()
				}
			}()
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for r := range 2 {
				wg.Go(func() {
					mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
					tbl := cancelTable(mem)
					defer tbl.Release()
					f, err := New(comms[r], tbl, WithAllocator(mem))
					if err != nil {
						errs[r] = err
						return
					}
					defer f.Release()
					c := ctx
					if r == 0 && tc.end {
						c = ended
					}
					errs[r] = tc.run(c, f)
				})
			}
			wg.Wait()
			require.Error(t, errs[0])
			assert.Regexp(t, tc.want, errs[0].Error())
			if tc.end {
				assert.ErrorIs(t, errs[0], context.Canceled)
			}
			for r, err := range errs {
				require.Error(t, err, "rank %d fails too", r)
				namedOnce(t, err.Error(), r)
				assert.NoError(t, checkWhere(err, r, tc.op), "rank %d", r)
				assert.False(t, errors.Is(err, context.DeadlineExceeded), "rank %d waited: %v", r, err)
			}
		})
	}
}

// TestWrapArrowioOwnFailure: arrowio's error for this rank's own part of a
// call names the rank ("arrowio: rank 0: allgather: nil table"); frame
// wraps it without naming the rank again. It read "frame: rank 0: gather:
// arrowio: allgather: rank 0: nil table".
func TestWrapArrowioOwnFailure(t *testing.T) {
	comms, err := collective.Local(t.Context(), 1)
	require.NoError(t, err)
	defer comms[0].Close()
	_, aerr := arrowio.AllgatherTable(t.Context(), comms[0], nil)
	require.EqualError(t, aerr, "arrowio: rank 0: allgather: nil table")
	err = wrapErr(0, "gather", aerr)
	require.EqualError(t, err, "frame: gather: arrowio: rank 0: allgather: nil table")
	namedOnce(t, err.Error(), 0)
	require.EqualError(t, wrapErr(0, "gather", errors.New("arrowio: allgather: rank 1: the sender aborted the stream: x")),
		"frame: rank 0: gather: arrowio: allgather: rank 1: the sender aborted the stream: x")
}
