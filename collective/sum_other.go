//go:build !amd64

package collective

// fastSum has no vector kernel on this architecture.
func fastSum[T Number]() func(dst, a, b []T) { return nil }
