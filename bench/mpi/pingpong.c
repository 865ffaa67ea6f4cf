/*
 * pingpong.c: the C floor for a TCP ping-pong over loopback, beside
 * bench/mpi/pingpong (Go) and Open MPI's latency: one connection,
 * TCP_NODELAY, the whole message written and read in a loop.
 *
 * Build: cc -O2 -o pingpong bench/mpi/pingpong.c
 * Usage: ./pingpong [size=1048576] [iters=2000] [spin=0|1] [write-chunk=0] [sockbuf=0]
 *   spin 1 polls a non-blocking socket instead of blocking; write-chunk > 0
 *   writes in pieces of that size; sockbuf > 0 sets SO_SNDBUF and SO_RCVBUF.
 * Prints the one-way time (round trip / 2) after 100 warm-up round trips.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
static int nb = 0;
static void rd(int fd, char *b, size_t n) { size_t g = 0; while (g < n) { ssize_t k = read(fd, b + g, n - g); if (k < 0 && errno == EAGAIN) continue; if (k <= 0) { perror("read"); exit(1);} g += k; } }
static size_t wchunk = 0;
static void wr(int fd, char *b, size_t n) { size_t g = 0; while (g < n) { size_t m = n - g; if (wchunk && m > wchunk) m = wchunk; ssize_t k = write(fd, b + g, m); if (k < 0 && errno == EAGAIN) continue; if (k <= 0) { perror("write"); exit(1);} g += k; } }
int main(int argc, char **argv) {
	size_t n = argc > 1 ? atol(argv[1]) : 1048576; int iters = argc > 2 ? atoi(argv[2]) : 2000; nb = argc > 3 ? atoi(argv[3]) : 0; wchunk = argc > 4 ? atol(argv[4]) : 0; int bufsz = argc > 5 ? atoi(argv[5]) : 0;
	int ls = socket(AF_INET, SOCK_STREAM, 0); struct sockaddr_in a = {0}; a.sin_family = AF_INET; a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(ls, (void*)&a, sizeof a); listen(ls, 1); socklen_t al = sizeof a; getsockname(ls, (void*)&a, &al);
	char *b = malloc(n); memset(b, 1, n); int one = 1;
	if (fork() == 0) { int c = socket(AF_INET, SOCK_STREAM, 0); connect(c, (void*)&a, sizeof a); setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, 4); if (nb) fcntl(c, F_SETFL, O_NONBLOCK); if (bufsz) { setsockopt(c, SOL_SOCKET, SO_SNDBUF, &bufsz, 4); setsockopt(c, SOL_SOCKET, SO_RCVBUF, &bufsz, 4);}
		for (int i = 0; i < iters + 100; i++) { rd(c, b, n); wr(c, b, n); } return 0; }
	int c = accept(ls, 0, 0); setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, 4); if (nb) fcntl(c, F_SETFL, O_NONBLOCK); if (bufsz) { setsockopt(c, SOL_SOCKET, SO_SNDBUF, &bufsz, 4); setsockopt(c, SOL_SOCKET, SO_RCVBUF, &bufsz, 4);}
	struct timespec t0, t1;
	for (int i = 0; i < iters + 100; i++) { if (i == 100) clock_gettime(CLOCK_MONOTONIC, &t0); wr(c, b, n); rd(c, b, n); }
	clock_gettime(CLOCK_MONOTONIC, &t1); wait(0);
	double us = ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 1e3 / iters / 2;
	printf("C %s %zu B: %.2f us one way\n", nb ? "spin" : "block", n, us); return 0; }
