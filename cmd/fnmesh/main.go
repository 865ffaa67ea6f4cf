// Command fnmesh is the fnmesh command-line tool: join a job and verify its
// links, run the one-command demo, and benchmark the collectives.
//
// Each subcommand lives in its own file and registers itself in commands.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one subcommand of fnmesh.
type command struct {
	summary string
	// run executes the subcommand with its arguments (after the name) and
	// returns the process exit status.
	run func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

// commands maps a subcommand name to its implementation; files add to it in init.
var commands = map[string]command{}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	// "fnmesh help join" is "fnmesh join -h" ("bench compare" included).
	if len(args) > 1 && args[0] == "help" {
		if _, ok := commands[args[1]]; ok {
			return run(ctx, append(args[1:], "-h"), stdout, stderr)
		}
		fmt.Fprintf(stderr, "fnmesh help: unknown command %q\n\n", args[1])
		usage(stderr)
		return 2
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "--version" || args[0] == "-version" {
		args[0] = "version"
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "fnmesh: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	return cmd.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: fnmesh <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-8s %s\n", name, commands[name].summary)
	}
	fmt.Fprintln(w, "\nRun 'fnmesh <command> -h' or 'fnmesh help <command>' for a command's flags.")
}
