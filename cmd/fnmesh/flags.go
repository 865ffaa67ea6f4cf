package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// parseFlags parses args with fs, whose Usage prints the command's whole
// help. Asked for help (-h, --help), it prints that to stderr and returns
// flag.ErrHelp. A flag that does not parse returns an error that names it
// and says what its value should look like, and nothing is printed: the
// caller prints it, as its other usage errors, with flagHint. (The flag
// package printed its complaint and then the whole help, some sixty lines
// for bench, which pushed the one line that mattered off the screen.)
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	usage := fs.Usage
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(stderr)
	fs.Usage = usage
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		usage()
		return err
	}
	return errors.New(explainFlagError(fs, err.Error()))
}

// explainFlagError adds what a value should look like to the flag
// package's "invalid value "3" for flag -timeout: parse error", which does
// not say.
func explainFlagError(fs *flag.FlagSet, msg string) string {
	rest, ok := strings.CutSuffix(msg, ": parse error")
	if !ok {
		return msg
	}
	// "invalid value "x" for flag -np", "invalid boolean value "x" for -v"
	i := strings.LastIndex(rest, " -")
	if i < 0 {
		return msg
	}
	f := fs.Lookup(rest[i+len(" -"):])
	if f == nil {
		return msg
	}
	want := ""
	switch fmt.Sprintf("%T", f.Value) {
	case "*flag.durationValue":
		want = "a duration such as 500ms, 30s or 2m"
	case "*flag.intValue", "*flag.int64Value":
		want = "an integer"
	case "*flag.uintValue", "*flag.uint64Value":
		want = "a non-negative integer"
	case "*flag.float64Value":
		want = "a number"
	case "*flag.boolValue":
		want = "true or false, as in -" + f.Name + "=false"
	default:
		return msg
	}
	return rest + ": want " + want
}

// flagHint is the line after a usage error: where the flags are described.
func flagHint(stderr io.Writer, name string) {
	fmt.Fprintf(stderr, "Run '%s -h' for its flags.\n", name)
}
