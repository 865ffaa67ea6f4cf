package rendezvous

// relayPipeSize is the capacity of the pipes a relayed pair splices through
// (one per direction; Linux only, see relayCopy), given how many relayed
// pairs are active counting this one; 0 leaves the kernel's default (64
// KiB).
//
// A pipe's capacity is the most one splice(2) call moves. On a 2-core Zen 5
// VM, over six interleaved rounds of BenchmarkLinkThroughput, 1 MiB (the
// largest an unprivileged process may ask for, fs.pipe-max-size) moved
// 3-12% more than 256 KiB (87-94% of the direct link against 81-86%); 64
// KiB costs more system calls per byte and reached 3.1-4.8 GB/s, and 2 MiB
// fell to 4.4-5.2 GB/s (more bytes in flight than the caches hold).
//
// But Linux counts an unprivileged user's pipe pages against
// fs.pipe-user-pages-soft (16384 pages, 64 MiB, by default); beyond it, new
// pipes get two pages (8 KiB) and cannot be enlarged. So only the first 16
// pairs get 1 MiB pipes (32 MiB) and the next 48 get 256 KiB (24 MiB),
// leaving room for the default pipes of about 64 more. A server that relays
// more pairs at once needs a larger fs.pipe-user-pages-soft, or the
// CAP_SYS_RESOURCE capability (docs/rendezvous.md).
func relayPipeSize(active int64) int {
	switch {
	case active <= 16:
		return 1 << 20
	case active <= 64:
		return 256 << 10
	}
	return 0
}
