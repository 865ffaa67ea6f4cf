package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/fnmesh/fnmesh/internal/osu"
)

// byteSize is a flag.Value for a number of bytes: a plain integer or one
// with a unit, K, M, G or T, alone or followed by B or iB, in either case.
// Every unit is binary (1K, 1KB and 1KiB are 1024 bytes), as fnmesh bench's
// -min and -max and the OSU tools read them, so that one size means the
// same in every fnmesh command.
type byteSize int64

func (b *byteSize) Set(s string) error {
	n, err := osu.ParseBytes(s, 1<<62)
	switch {
	case errors.Is(err, osu.ErrSizeTooLarge):
		return fmt.Errorf("%q is too large", s)
	case err != nil:
		return fmt.Errorf("%q is not a byte count (e.g. 1048576, 64K, 64KiB or 1M; units are binary)", s)
	}
	*b = byteSize(n)
	return nil
}

func (b byteSize) String() string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if b != 0 && int64(b)%u.mult == 0 {
			return fmt.Sprintf("%d%s", int64(b)/u.mult, u.suffix)
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// rankFlag is a flag.Value for an optional rank: unset unless given, so
// that the help shows no made-up default and every given value is checked.
type rankFlag struct {
	rank int
	set  bool
}

func (r *rankFlag) Set(s string) error {
	v, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not a rank", s)
	}
	r.rank, r.set = v, true
	return nil
}

func (r *rankFlag) String() string {
	if r == nil || !r.set {
		return ""
	}
	return strconv.Itoa(r.rank)
}
