package arrowio

import "fmt"

// recoverInvalid turns a panic raised while reading malformed arrays (arrow-go indexes buffers without
// checking them) into an error, so that bad input never crashes the caller.
func recoverInvalid(err *error, op string) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("arrowio: %s: malformed array data: %v", op, r)
	}
}
