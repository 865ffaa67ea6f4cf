package main

import (
	"context"
	"fmt"
	"io"

	"github.com/fnmesh/fnmesh/internal/buildinfo"
	"github.com/fnmesh/fnmesh/rendezvous"
)

func init() {
	commands["version"] = command{
		summary: "print the version, the commit it was built from and the protocol it speaks",
		run:     runVersion,
	}
}

// runVersion prints one line on stdout: what buildinfo.String says, and the
// rendezvous protocol version, which workers and the server must share.
func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		if args[0] == "-h" || args[0] == "--help" {
			fmt.Fprintln(stderr, "usage: fnmesh version\n\nPrints the version, the commit and Go toolchain it was built with, and\nthe rendezvous protocol version it speaks.")
			return 0
		}
		fmt.Fprintf(stderr, "fnmesh version: takes no arguments, got %q\n", args)
		return 2
	}
	fmt.Fprintf(stdout, "%s, rendezvous protocol %d\n", buildinfo.String("fnmesh"), rendezvous.ProtoVersion)
	return 0
}
