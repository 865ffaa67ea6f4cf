package secret_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/fnmesh/fnmesh/internal/secret"
)

// A secret file written by an editor on Windows ends in CRLF: Load drops
// it, so that the key is the same as the one the other side read.
func ExampleLoad() {
	dir, err := os.MkdirTemp("", "secret-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "secret")
	if err := os.WriteFile(file, []byte("correct horse battery staple\r\n"), 0o600); err != nil {
		fmt.Println(err)
		return
	}
	key, err := secret.Load(context.Background(), file)
	fmt.Printf("%q %v\n", key, err)
	// Output: "correct horse battery staple" <nil>
}
