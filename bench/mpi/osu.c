/*
 * osu.c: the Open MPI side of fnmesh's side-by-side benchmark.
 *
 * It measures exactly what `fnmesh bench` measures, the way the OSU
 * micro-benchmarks do, and prints the same CSV columns, so that
 * `fnmesh bench compare` can put the two next to each other:
 *
 *   op,np,size,iterations,avg_us,min_us,max_us,mb_per_s
 *
 * Operations and what "size" means for each (the OSU conventions):
 *   barrier    no payload (size 0)
 *   bcast      bytes broadcast from rank 0
 *   allgather  bytes contributed by each rank
 *   alltoallv  bytes sent to each destination (equal counts)
 *   allreduce  bytes of the float vector summed (size/4 floats; sizes < 4 skipped)
 *   latency    ping-pong between ranks 0 and 1; one-way time = round trip / 2
 *   bw         ranks 0 -> 1, a window of non-blocking sends then a 4-byte ack
 *              (osu_bw); avg_us is the time per message
 *
 * Collectives time every call on its own with a barrier after it (outside
 * the timed part); each rank averages its calls, and the row reports the
 * average, minimum and maximum of those per-rank averages. mb_per_s is
 * size / avg_us (bytes per microsecond = MB/s), the osu_bw figure for bw.
 *
 * Build: mpicc -O2 -o osu osu.c
 * Usage: mpirun -np N ./osu [-ops barrier,bcast,...] [-min B] [-max B]
 *          [-iters N] [-warmup N] [-iters-large N] [-warmup-large N]
 *          [-large B] [-window N] [-bw-iters-large N] [-bw-warmup-large N]
 *          [-header 0|1]
 */
#include <ctype.h>
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct {
	char ops[256];
	long min, max, large;
	int iters, warmup, iters_large, warmup_large;
	int window, bw_iters_large, bw_warmup_large, header;
} cfg = {"barrier,bcast,allgather,alltoallv,allreduce,latency,bw",
	 1, 16L << 20, 8192, 1000, 100, 100, 10, 64, 20, 2, 1};

static int rank, np;

static void die(const char *msg) {
	if (rank == 0) fprintf(stderr, "osu: %s\n", msg);
	MPI_Abort(MPI_COMM_WORLD, 2);
	exit(2);
}

/*
 * size reads a byte count the way fnmesh bench's -min/-max do (osu.ParseSize):
 * digits, then K, M or G (binary), alone or followed by B or iB, or B alone,
 * in either case: 64, 8K, 8kb, 16MiB. Anything else, or more than 2G, is an
 * error: run.sh gives both tools the same flags, and a size one of them reads
 * differently (or refuses after the other has run) is no comparison.
 */
static long size(const char *v) {
	const char *p = v;
	long n = 0, mult = 1;
	while (isspace((unsigned char)*p)) p++;
	const char *digits = p;
	for (; isdigit((unsigned char)*p); p++) {
		if (n > (1L << 31)) die("size too large: at most 2G");
		n = n * 10 + (*p - '0');
	}
	if (p == digits) die("bad size: want a byte count like 64, 8K or 16MiB");
	while (isspace((unsigned char)*p)) p++;
	switch (toupper((unsigned char)*p)) {
	case 'K': mult = 1L << 10, p++; break;
	case 'M': mult = 1L << 20, p++; break;
	case 'G': mult = 1L << 30, p++; break;
	}
	if (mult > 1 && toupper((unsigned char)p[0]) == 'I' && toupper((unsigned char)p[1]) == 'B') p += 2;
	else if (toupper((unsigned char)*p) == 'B') p++;
	while (isspace((unsigned char)*p)) p++;
	if (*p) die("bad size: want a byte count like 64, 8K or 16MiB");
	if (n > (1L << 31) / mult) die("size too large: at most 2G");
	return n * mult;
}

static void parse(int argc, char **argv) {
	for (int i = 1; i < argc; i++) {
		/* -flag value or -flag=value; a leading -- works too, as with Go's flag. */
		char k[64];
		const char *v, *eq = strchr(argv[i], '=');
		snprintf(k, sizeof k, "%s", argv[i] + (strncmp(argv[i], "--", 2) == 0));
		if (eq) {
			size_t n = (size_t)(eq - argv[i]) - (strncmp(argv[i], "--", 2) == 0);
			if (n < sizeof k) k[n] = 0;
			v = eq + 1;
		} else {
			if (i + 1 >= argc) die("every flag takes a value");
			v = argv[++i];
		}
		if (!strcmp(k, "-ops")) snprintf(cfg.ops, sizeof cfg.ops, "%s", v);
		else if (!strcmp(k, "-min")) cfg.min = size(v);
		else if (!strcmp(k, "-max")) cfg.max = size(v);
		else if (!strcmp(k, "-large")) cfg.large = size(v);
		else if (!strcmp(k, "-iters")) cfg.iters = atoi(v);
		else if (!strcmp(k, "-warmup")) cfg.warmup = atoi(v);
		else if (!strcmp(k, "-iters-large")) cfg.iters_large = atoi(v);
		else if (!strcmp(k, "-warmup-large")) cfg.warmup_large = atoi(v);
		else if (!strcmp(k, "-window")) cfg.window = atoi(v);
		else if (!strcmp(k, "-bw-iters-large")) cfg.bw_iters_large = atoi(v);
		else if (!strcmp(k, "-bw-warmup-large")) cfg.bw_warmup_large = atoi(v);
		else if (!strcmp(k, "-header")) cfg.header = atoi(v);
		else {
			if (rank == 0) fprintf(stderr, "osu: unknown flag %s\n", k);
			die("usage: see the comment at the top of osu.c");
		}
	}
	if (cfg.min < 1 || cfg.max < cfg.min || cfg.max > (1L << 30) || cfg.iters < 1 || cfg.iters_large < 1 ||
	    cfg.warmup < 0 || cfg.warmup_large < 0 || cfg.window < 1 || cfg.bw_iters_large < 1 ||
	    cfg.bw_warmup_large < 0)
		die("bad flag value");
}

static void row(const char *op, long size, int iters, double avg, double min, double max, double mbps) {
	printf("%s,%d,%ld,%d,%.3f,%.3f,%.3f,%.3f\n", op, np, size, iters, avg, min, max, mbps);
	fflush(stdout);
}

static char *sbuf, *rbuf;
static int *counts, *displs;
static MPI_Request *reqs;

/* one_call runs one call of a collective at size bytes. */
static void one_call(const char *op, long size) {
	int n = (int)size;
	if (!strcmp(op, "barrier")) MPI_Barrier(MPI_COMM_WORLD);
	else if (!strcmp(op, "bcast")) MPI_Bcast(sbuf, n, MPI_CHAR, 0, MPI_COMM_WORLD);
	else if (!strcmp(op, "allgather"))
		MPI_Allgather(sbuf, n, MPI_CHAR, rbuf, n, MPI_CHAR, MPI_COMM_WORLD);
	else if (!strcmp(op, "alltoallv"))
		MPI_Alltoallv(sbuf, counts, displs, MPI_CHAR, rbuf, counts, displs, MPI_CHAR,
			      MPI_COMM_WORLD);
	else if (!strcmp(op, "allreduce"))
		MPI_Allreduce(sbuf, rbuf, n / 4, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}

static void collective(const char *op, long size) {
	int iters = size > cfg.large ? cfg.iters_large : cfg.iters;
	int warmup = size > cfg.large ? cfg.warmup_large : cfg.warmup;
	int is_barrier = !strcmp(op, "barrier");
	double total = 0;
	/* alltoallv's counts and displacements are set up once, outside the
	 * timed part, as osu_alltoallv does and as fnmesh bench prepares its
	 * buffers: only the call is timed on either side. */
	for (int i = 0; i < np; i++) counts[i] = (int)size, displs[i] = i * (int)size;
	MPI_Barrier(MPI_COMM_WORLD);
	for (int i = 0; i < iters + warmup; i++) {
		double t0 = MPI_Wtime();
		one_call(op, size);
		double dt = MPI_Wtime() - t0;
		if (i >= warmup) total += dt;
		if (!is_barrier) MPI_Barrier(MPI_COMM_WORLD);
	}
	double mine = total * 1e6 / iters, min, max, sum;
	MPI_Reduce(&mine, &min, 1, MPI_DOUBLE, MPI_MIN, 0, MPI_COMM_WORLD);
	MPI_Reduce(&mine, &max, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
	MPI_Reduce(&mine, &sum, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
	if (rank == 0) {
		double avg = sum / np;
		row(op, is_barrier ? 0 : size, iters, avg, min, max, is_barrier ? 0 : size / avg);
	}
}

static void latency(long size) {
	int iters = size > cfg.large ? cfg.iters_large : cfg.iters;
	int warmup = size > cfg.large ? cfg.warmup_large : cfg.warmup;
	int n = (int)size;
	double t0 = 0;
	MPI_Barrier(MPI_COMM_WORLD);
	for (int i = 0; i < iters + warmup; i++) {
		if (rank == 0) {
			if (i == warmup) t0 = MPI_Wtime();
			MPI_Send(sbuf, n, MPI_CHAR, 1, 1, MPI_COMM_WORLD);
			MPI_Recv(rbuf, n, MPI_CHAR, 1, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
		} else if (rank == 1) {
			MPI_Recv(rbuf, n, MPI_CHAR, 0, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
			MPI_Send(sbuf, n, MPI_CHAR, 0, 1, MPI_COMM_WORLD);
		}
	}
	if (rank == 0) {
		double us = (MPI_Wtime() - t0) * 1e6 / (2.0 * iters);
		row("latency", size, iters, us, us, us, size / us);
	}
	MPI_Barrier(MPI_COMM_WORLD);
}

static void bandwidth(long size) {
	int iters = size > cfg.large ? cfg.bw_iters_large : cfg.iters;
	int warmup = size > cfg.large ? cfg.bw_warmup_large : cfg.warmup;
	int n = (int)size, w = cfg.window;
	double t0 = 0;
	MPI_Barrier(MPI_COMM_WORLD);
	for (int i = 0; i < iters + warmup; i++) {
		if (rank == 0) {
			if (i == warmup) t0 = MPI_Wtime();
			for (int j = 0; j < w; j++)
				MPI_Isend(sbuf, n, MPI_CHAR, 1, 100, MPI_COMM_WORLD, &reqs[j]);
			MPI_Waitall(w, reqs, MPI_STATUSES_IGNORE);
			MPI_Recv(rbuf, 4, MPI_CHAR, 1, 101, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
		} else if (rank == 1) {
			for (int j = 0; j < w; j++)
				MPI_Irecv(rbuf, n, MPI_CHAR, 0, 100, MPI_COMM_WORLD, &reqs[j]);
			MPI_Waitall(w, reqs, MPI_STATUSES_IGNORE);
			MPI_Send(sbuf, 4, MPI_CHAR, 0, 101, MPI_COMM_WORLD);
		}
	}
	if (rank == 0) {
		double secs = MPI_Wtime() - t0;
		double per = secs * 1e6 / ((double)iters * w);
		row("bw", size, iters, per, per, per, (double)size * iters * w / secs / 1e6);
	}
	MPI_Barrier(MPI_COMM_WORLD);
}

int main(int argc, char **argv) {
	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &np);
	parse(argc, argv);

	/* MPI counts and displacements are ints: the largest size times np
	 * (allgather's and alltoallv's buffers) must fit one. */
	if (cfg.max * (long)np > INT_MAX) {
		if (rank == 0) fprintf(stderr, "osu: -max %ld at np=%d: %ld bytes per buffer, more than an MPI count (%d) can say\n", cfg.max, np, cfg.max * (long)np, INT_MAX);
		die("use a smaller -max");
	}
	long maxbuf = cfg.max * (long)np;
	sbuf = malloc(maxbuf > 4 ? maxbuf : 4);
	rbuf = malloc(maxbuf > 4 ? maxbuf : 4);
	counts = malloc(sizeof(int) * np);
	displs = malloc(sizeof(int) * np);
	reqs = malloc(sizeof(MPI_Request) * cfg.window);
	if (!sbuf || !rbuf || !counts || !displs || !reqs) die("out of memory");
	for (long i = 0; i < maxbuf; i++) sbuf[i] = (char)(i + rank), rbuf[i] = 0;
	/* allreduce sums floats: give it small finite values. */
	for (long i = 0; i + 4 <= maxbuf; i += 4) ((float *)sbuf)[i / 4] = (float)(i % 7);

	/* The operations in the order given, each once, spaces around names
	 * ignored, all checked before any is measured: as fnmesh bench reads
	 * -ops. (A name given twice was measured twice, and bench compare
	 * counts a row by its best: a best of two against fnmesh's one.) */
	static const char *known[] = {"barrier", "bcast", "allgather", "alltoallv", "allreduce", "latency", "bw"};
	enum { nknown = sizeof known / sizeof known[0] };
	const char *plan[nknown];
	int nplan = 0;
	char ops[256];
	snprintf(ops, sizeof ops, "%s", cfg.ops);
	for (char *op = strtok(ops, ","); op; op = strtok(NULL, ",")) {
		while (isspace((unsigned char)*op)) op++;
		for (char *e = op + strlen(op); e > op && isspace((unsigned char)e[-1]);) *--e = 0;
		int k = 0;
		while (k < nknown && strcmp(op, known[k])) k++;
		if (k == nknown) {
			if (rank == 0) fprintf(stderr, "osu: unknown operation \"%s\"\n", op);
			die("operations: barrier, bcast, allgather, alltoallv, allreduce, latency, bw");
		}
		int seen = 0;
		for (int j = 0; j < nplan; j++) seen |= plan[j] == known[k];
		if (!seen) plan[nplan++] = known[k];
	}
	if (rank == 0 && cfg.header) printf("op,np,size,iterations,avg_us,min_us,max_us,mb_per_s\n");
	for (int p = 0; p < nplan; p++) {
		const char *op = plan[p];
		if (!strcmp(op, "barrier")) {
			collective(op, 0);
			continue;
		}
		if ((!strcmp(op, "latency") || !strcmp(op, "bw")) && np < 2) continue;
		for (long size = cfg.min; size <= cfg.max; size *= 2) {
			if (!strcmp(op, "allreduce") && size < 4) continue;
			if (!strcmp(op, "latency")) latency(size);
			else if (!strcmp(op, "bw")) bandwidth(size);
			else collective(op, size);
		}
	}
	MPI_Finalize();
	return 0;
}
