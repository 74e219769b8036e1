/*
 * ktstr-workload: one scheduler-test workload process (runtime/api/workload-process.ts is its only caller).
 *
 *   ktstr-workload run --type T [options]   run one work type and report telemetry
 *   ktstr-workload setaffinity PID CPULIST  sched_setaffinity on another process
 *   ktstr-workload setscheduler PID POLICY PRIO  set another thread's policy, print the old one
 *   ktstr-workload types                    list the work types
 *
 * `run` protocol, one line each way at a time:
 *   stdin  "S\n"          the parent has placed us in our cgroup: apply policy/nice/affinity, meet
 *                         the partner (pipe/futex pairs), then print {"ready":...}
 *   stdin  "G <ns>\n"     go; <ns> is the parent's CLOCK_MONOTONIC start time (so a workload that
 *                         cannot get a CPU still measures its gap from the real start)
 *   stdin  "Q <ns>\n"     followed by SIGUSR1: stop; <ns> is when the parent asked
 *   stdout one JSON line with the report, then exit 0. Errors: {"error":"..."} and exit 2.
 *
 * Telemetry follows ktstr's WorkerReport: work units, CPU time, wall time, schedstat deltas
 * (/proc/self/schedstat: on-CPU ns, run delay ns, timeslices), migrations and CPUs used, the
 * longest gap between work checkpoints (voluntary sleeps and partner waits are not counted; the
 * wake-up latency after them is), and wake-latency samples around blocking calls.
 * Times in the report are nanoseconds relative to the go time unless named otherwise.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CPUS 1024
#define MAX_MIGRATION_EVENTS 256
#define WAKE_RESERVOIR 256
#define IO_BLOCK (64 * 1024)
#define IO_BLOCKS_PER_WORKLOAD 16

enum work_type {
	W_SPIN, W_YIELD, W_MIXED, W_IO_SYNC, W_BURSTY, W_PIPE, W_FUTEX, W_CACHE,
	W_FORK_EXIT, W_NICE_SWEEP, W_AFFINITY_CHURN, W_POLICY_CHURN,
};
static const char *const type_names[] = {
	"spin", "yield", "mixed", "io-sync", "bursty", "pipe", "futex", "cache",
	"fork-exit", "nice-sweep", "affinity-churn", "policy-churn",
};
#define N_TYPES ((int)(sizeof(type_names) / sizeof(type_names[0])))

/* ---- options ---- */
static int o_type = -1;
static int o_policy = -1; /* -1 = leave as inherited */
static int o_priority = 0;
static int o_nice_set = 0, o_nice = 0;
static char *o_affinity = NULL;
static long o_burst_ms = 50, o_sleep_ms = 100;
static long o_size_kb = 32, o_stride = 64;
static long o_spin_iters = 1024;
static char *o_io_path = NULL;
static long long o_io_offset = 0;
static char *o_pair = NULL;
static int o_role = 0;
static long o_max_ms = 0;
static unsigned o_seed = 1;
static pid_t o_parent = 0;

/* ---- state ---- */
static volatile sig_atomic_t stop_flag = 0;
static volatile sig_atomic_t stop_by_deadline = 0;
static uint64_t t0;              /* go time, CLOCK_MONOTONIC ns */
static uint64_t last_ck;         /* last checkpoint */
static uint64_t voluntary_ns;    /* voluntary wait since last checkpoint, excluded from the gap */
static uint64_t blocked_since;   /* nonzero while inside a voluntary wait */
static int last_cpu = -1;
static uint64_t units, iterations;
static uint64_t max_gap, max_gap_at;
static int max_gap_cpu = -1;
static uint64_t migration_count;
static struct { uint64_t at; int from, to; } mig_ev[MAX_MIGRATION_EVENTS];
static int n_mig_ev;
static uint64_t cpu_first[MAX_CPUS], cpu_last[MAX_CPUS];
static unsigned char cpu_seen[MAX_CPUS];
static uint64_t wake_res[WAKE_RESERVOIR];
static uint64_t wake_total, wake_max, wake_sum;
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static volatile uint64_t sink;

/* type-specific counters */
static uint64_t c_yields, c_exchanges, c_forks, c_fork_failures, c_nice_changes, c_nice_errors;
static int c_nice_min = 100, c_nice_max = -100;
static uint64_t c_affinity_changes, c_affinity_hits, c_affinity_errors;
static uint64_t c_policy_changes, c_policy_errors, c_policy_counts[7];
static uint64_t c_bytes_written, c_syncs, c_bursts, c_sleeps, c_cache_passes;
static int c_first_child = 0, c_last_child = 0;
static int c_partner = 0;
static int c_rt_allowed = 1;

static void die(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* JSON-escape the few characters an error message can hold */
	char out[1200];
	size_t k = 0;
	k += (size_t)snprintf(out + k, sizeof(out) - k, "{\"error\":\"");
	for (const char *p = msg; *p && k < sizeof(out) - 8; p++) {
		if (*p == '"' || *p == '\\') out[k++] = '\\';
		out[k++] = (*p == '\n') ? ' ' : *p;
	}
	k += (size_t)snprintf(out + k, sizeof(out) - k, "\"}\n");
	if (write(1, out, k) < 0) { /* nothing left to tell */ }
	_exit(2);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t cputime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void on_stop(int sig)
{
	if (sig == SIGALRM) stop_by_deadline = 1;
	stop_flag = 1;
}

/* ---- stdin line protocol ---- */
static char inbuf[256];
static size_t inlen;

/* Next line from stdin; timeout_ms < 0 waits forever. Returns 0 on EOF/timeout. */
static int read_line(char *line, size_t cap, int timeout_ms)
{
	for (;;) {
		char *nl = memchr(inbuf, '\n', inlen);
		if (nl) {
			size_t n = (size_t)(nl - inbuf);
			if (n >= cap) n = cap - 1;
			memcpy(line, inbuf, n);
			line[n] = 0;
			size_t rest = inlen - (size_t)(nl - inbuf) - 1;
			memmove(inbuf, nl + 1, rest);
			inlen = rest;
			return 1;
		}
		if (inlen == sizeof(inbuf)) inlen = 0; /* garbage; drop it */
		if (timeout_ms >= 0) {
			struct pollfd p = { .fd = 0, .events = POLLIN };
			int r = poll(&p, 1, timeout_ms);
			if (r == 0) return 0;
			if (r < 0 && errno != EINTR) return 0;
			if (r < 0) continue;
		}
		ssize_t r = read(0, inbuf + inlen, sizeof(inbuf) - inlen);
		if (r == 0) return 0;
		if (r < 0) {
			if (errno == EINTR) continue;
			return 0;
		}
		inlen += (size_t)r;
	}
}

/* ---- telemetry ---- */
static void note_cpu(int cpu, uint64_t now)
{
	if (cpu < 0 || cpu >= MAX_CPUS) return;
	if (!cpu_seen[cpu]) {
		cpu_seen[cpu] = 1;
		cpu_first[cpu] = now - t0;
	}
	cpu_last[cpu] = now - t0;
	if (last_cpu >= 0 && cpu != last_cpu) {
		migration_count++;
		if (n_mig_ev < MAX_MIGRATION_EVENTS) {
			mig_ev[n_mig_ev].at = now - t0;
			mig_ev[n_mig_ev].from = last_cpu;
			mig_ev[n_mig_ev].to = cpu;
			n_mig_ev++;
		}
	}
}

/* A work checkpoint: the gap since the previous one (less voluntary waits), CPU and migrations. */
static void checkpoint(void)
{
	/* A CPU read on both sides of the clock read, so the pair is consistent even if we are
	 * preempted and migrated in between (under TCG that can take tens of milliseconds). */
	int cpu = sched_getcpu();
	uint64_t now = now_ns();
	for (int i = 0; i < 3; i++) {
		int again = sched_getcpu();
		if (again == cpu) break;
		cpu = again;
		now = now_ns();
	}
	uint64_t span = now - last_ck;
	uint64_t gap = span > voluntary_ns ? span - voluntary_ns : 0;
	if (gap > max_gap) {
		max_gap = gap;
		max_gap_at = last_ck - t0;
		max_gap_cpu = last_cpu >= 0 ? last_cpu : cpu;
	}
	note_cpu(cpu, now);
	last_cpu = cpu;
	last_ck = now;
	voluntary_ns = 0;
}

static void wake_sample(uint64_t lat)
{
	wake_total++;
	wake_sum += lat;
	if (lat > wake_max) wake_max = lat;
	if (wake_total <= WAKE_RESERVOIR) wake_res[wake_total - 1] = lat;
	else {
		uint64_t j = rnd() % wake_total;
		if (j < WAKE_RESERVOIR) wake_res[j] = lat;
	}
}

/*
 * Around a voluntary wait: `ev` is when the wait's condition came true (the partner's timestamp, or
 * the end of a requested sleep). Time up to `ev` is voluntary; from `ev` to running again is wake-up
 * latency, which does count toward the gap.
 */
static void block_begin(void) { blocked_since = now_ns(); }
static void block_end(uint64_t ev)
{
	uint64_t woke = now_ns();
	uint64_t start = blocked_since;
	blocked_since = 0;
	if (ev > woke) ev = woke;
	if (ev > start) {
		voluntary_ns += ev - start;
		if (!stop_flag) wake_sample(woke - ev); /* an interrupted wait is not a wake-up */
	}
}

static void spin(long n)
{
	uint64_t x = sink;
	for (long i = 0; i < n; i++) x = x * 6364136223846793005ULL + 1442695040888963407ULL;
	sink = x;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ULL), .tv_nsec = (long)(ns % 1000000000ULL) };
	block_begin();
	uint64_t start = blocked_since;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !stop_flag) {}
	block_end(start + ns);
	c_sleeps++;
}

/* ---- cpu lists ---- */
static int parse_cpulist(const char *s, cpu_set_t *set)
{
	CPU_ZERO(set);
	int any = 0;
	while (*s) {
		char *end;
		long a = strtol(s, &end, 10);
		if (end == s || a < 0 || a >= MAX_CPUS) return -1;
		long b = a;
		s = end;
		if (*s == '-') {
			b = strtol(s + 1, &end, 10);
			if (end == s + 1 || b < a || b >= MAX_CPUS) return -1;
			s = end;
		}
		for (long c = a; c <= b; c++) CPU_SET((int)c, set);
		any = 1;
		if (*s == ',') s++;
		else if (*s) return -1;
	}
	return any ? 0 : -1;
}

static int allowed_cpus[MAX_CPUS];
static int n_allowed;
static void load_allowed(void)
{
	cpu_set_t set;
	n_allowed = 0;
	if (sched_getaffinity(0, sizeof(set), &set) != 0) return;
	for (int c = 0; c < MAX_CPUS; c++)
		if (CPU_ISSET(c, &set)) allowed_cpus[n_allowed++] = c;
}

/* ---- policies ---- */
static const char *policy_name(int p)
{
	switch (p) {
	case SCHED_OTHER: return "other";
	case SCHED_BATCH: return "batch";
	case SCHED_IDLE: return "idle";
	case SCHED_FIFO: return "fifo";
	case SCHED_RR: return "rr";
	case 7: return "ext";
	default: return "unknown";
	}
}

static int parse_policy(const char *s)
{
	if (!strcmp(s, "other")) return SCHED_OTHER;
	if (!strcmp(s, "batch")) return SCHED_BATCH;
	if (!strcmp(s, "idle")) return SCHED_IDLE;
	if (!strcmp(s, "fifo")) return SCHED_FIFO;
	if (!strcmp(s, "rr")) return SCHED_RR;
	return -2;
}

static int set_policy(int policy, int prio)
{
	struct sched_param sp = { .sched_priority = (policy == SCHED_FIFO || policy == SCHED_RR) ? prio : 0 };
	return sched_setscheduler(0, policy, &sp);
}

/* ---- pairs ---- */
static int pipe_rd = -1, pipe_wr = -1;
struct futex_pair {
	uint32_t turn;
	uint32_t stopping;
	uint64_t ts;
	int32_t pid[2];
};
static struct futex_pair *fp;

static long futex(uint32_t *uaddr, int op, uint32_t val, const struct timespec *ts)
{
	return syscall(SYS_futex, uaddr, op, val, ts, NULL, 0);
}

static void pair_setup(void)
{
	char a2b[600], b2a[600];
	if (!o_pair) die("%s needs --pair PATH --role 0|1", type_names[o_type]);
	if (o_type == W_PIPE) {
		snprintf(a2b, sizeof(a2b), "%s.a2b", o_pair);
		snprintf(b2a, sizeof(b2a), "%s.b2a", o_pair);
		if (mkfifo(a2b, 0600) != 0 && errno != EEXIST) die("mkfifo %s: %s", a2b, strerror(errno));
		if (mkfifo(b2a, 0600) != 0 && errno != EEXIST) die("mkfifo %s: %s", b2a, strerror(errno));
		/* opening a FIFO blocks until the other end opens; this order cannot deadlock */
		if (o_role == 0) {
			pipe_wr = open(a2b, O_WRONLY);
			pipe_rd = open(b2a, O_RDONLY);
		} else {
			pipe_rd = open(a2b, O_RDONLY);
			pipe_wr = open(b2a, O_WRONLY);
		}
		if (pipe_rd < 0 || pipe_wr < 0) die("open pair fifo %s: %s", o_pair, strerror(errno));
		/* learn the partner's pid: each side sends its own first */
		int32_t me = getpid(), other = 0;
		if (write(pipe_wr, &me, sizeof(me)) != sizeof(me) || read(pipe_rd, &other, sizeof(other)) != sizeof(other))
			die("pair handshake on %s failed", o_pair);
		c_partner = other;
	} else {
		int fd = open(o_pair, O_RDWR | O_CREAT, 0600);
		if (fd < 0) die("open %s: %s", o_pair, strerror(errno));
		if (ftruncate(fd, sizeof(struct futex_pair)) != 0) die("ftruncate %s: %s", o_pair, strerror(errno));
		fp = mmap(NULL, sizeof(struct futex_pair), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (fp == MAP_FAILED) die("mmap %s: %s", o_pair, strerror(errno));
		close(fd);
		__atomic_store_n(&fp->pid[o_role], getpid(), __ATOMIC_SEQ_CST);
		uint64_t deadline = now_ns() + 5000000000ULL;
		while (!__atomic_load_n(&fp->pid[1 - o_role], __ATOMIC_SEQ_CST)) {
			if (now_ns() > deadline) die("futex partner for %s never arrived", o_pair);
			usleep(1000);
		}
		c_partner = fp->pid[1 - o_role];
	}
}

/* ---- work loops ---- */
static void run_spin(void)
{
	while (!stop_flag) {
		spin(1024);
		units += 1024;
		iterations++;
		checkpoint();
	}
}

static void run_yield(void)
{
	while (!stop_flag) {
		sched_yield();
		c_yields++;
		units++;
		iterations++;
		checkpoint();
	}
}

/* One step of the mixed work type: a short spin, then give the CPU away (nice_sweep does the same). */
static void mixed_step(void)
{
	spin(1024);
	sched_yield();
	c_yields++;
	units += 1024;
	iterations++;
	checkpoint();
}

static void run_mixed(void)
{
	while (!stop_flag) mixed_step();
}

static void run_io_sync(void)
{
	const char *path = o_io_path ? o_io_path : "/tmp";
	struct stat st;
	char file[600];
	int fd, unlink_after = 0;
	if (stat(path, &st) != 0) die("io path %s: %s", path, strerror(errno));
	if (S_ISDIR(st.st_mode)) {
		snprintf(file, sizeof(file), "%s/ktstr-io-%d", path, (int)getpid());
		fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0600);
		unlink_after = 1;
	} else {
		snprintf(file, sizeof(file), "%s", path);
		fd = open(file, O_RDWR);
	}
	if (fd < 0) die("open %s: %s", file, strerror(errno));
	char *buf = malloc(IO_BLOCK);
	if (!buf) die("out of memory");
	memset(buf, 0xa5, IO_BLOCK);
	while (!stop_flag) {
		off_t off = (off_t)o_io_offset + (off_t)(iterations % IO_BLOCKS_PER_WORKLOAD) * IO_BLOCK;
		ssize_t w = pwrite(fd, buf, IO_BLOCK, off);
		if (w < 0) {
			if (errno == EINTR) continue;
			die("write %s: %s", file, strerror(errno));
		}
		c_bytes_written += (uint64_t)w;
		if (fdatasync(fd) == 0) c_syncs++;
		sleep_ns(100000);
		units += 16;
		iterations++;
		checkpoint();
	}
	close(fd);
	if (unlink_after) unlink(file);
	free(buf);
}

static void run_bursty(void)
{
	while (!stop_flag) {
		uint64_t start = now_ns();
		while (!stop_flag && now_ns() - start < (uint64_t)o_burst_ms * 1000000ULL) {
			spin(1024);
			units += 1024;
			checkpoint();
		}
		c_bursts++;
		iterations++;
		if (!stop_flag) sleep_ns((uint64_t)o_sleep_ms * 1000000ULL);
		checkpoint();
	}
}

/* Read exactly 8 bytes (the partner's timestamp); 0 = partner gone or stopping. */
static int pipe_recv(uint64_t *ts)
{
	size_t got = 0;
	char *p = (char *)ts;
	while (got < sizeof(*ts)) {
		ssize_t r = read(pipe_rd, p + got, sizeof(*ts) - got);
		if (r == 0) return 0;
		if (r < 0) {
			if (errno == EINTR) {
				if (stop_flag) return 0;
				continue;
			}
			return 0;
		}
		got += (size_t)r;
	}
	return 1;
}

static void run_pipe(void)
{
	uint64_t ts;
	while (!stop_flag) {
		spin(o_spin_iters);
		units += (uint64_t)o_spin_iters;
		if (o_role == 0) {
			ts = now_ns();
			if (write(pipe_wr, &ts, sizeof(ts)) != sizeof(ts)) break;
		}
		block_begin();
		if (!pipe_recv(&ts)) {
			blocked_since = 0;
			break;
		}
		block_end(ts);
		if (o_role == 1) {
			ts = now_ns();
			if (write(pipe_wr, &ts, sizeof(ts)) != sizeof(ts)) break;
		}
		c_exchanges++;
		iterations++;
		checkpoint();
	}
	/* unblock a partner waiting on us */
	close(pipe_wr);
	pipe_wr = -1;
}

static void run_futex(void)
{
	const uint32_t me = (uint32_t)o_role, other = 1 - me;
	struct timespec to = { 0, 50 * 1000000L };
	while (!stop_flag) {
		if (__atomic_load_n(&fp->turn, __ATOMIC_ACQUIRE) != me) {
			block_begin();
			while (!stop_flag && !__atomic_load_n(&fp->stopping, __ATOMIC_ACQUIRE) &&
			       __atomic_load_n(&fp->turn, __ATOMIC_ACQUIRE) != me)
				futex(&fp->turn, FUTEX_WAIT, other, &to);
			if (__atomic_load_n(&fp->turn, __ATOMIC_ACQUIRE) != me) {
				blocked_since = 0;
				break;
			}
			block_end(__atomic_load_n(&fp->ts, __ATOMIC_ACQUIRE));
		}
		spin(o_spin_iters);
		units += (uint64_t)o_spin_iters;
		__atomic_store_n(&fp->ts, now_ns(), __ATOMIC_RELEASE);
		__atomic_store_n(&fp->turn, other, __ATOMIC_RELEASE);
		futex(&fp->turn, FUTEX_WAKE, 1, NULL);
		c_exchanges++; /* handoffs given; the partner's count differs by at most one */
		iterations++;
		checkpoint();
	}
	__atomic_store_n(&fp->stopping, 1, __ATOMIC_RELEASE);
	futex(&fp->turn, FUTEX_WAKE, 1, NULL);
}

static long rss_kb(void);
static long c_rss_kb = -1;
static void run_cache(void)
{
	size_t size = (size_t)o_size_kb * 1024;
	size_t stride = (size_t)o_stride;
	if (size == 0 || stride == 0) die("cache needs sizeKb and stride above 0");
	volatile unsigned char *buf = malloc(size);
	if (!buf) die("out of memory for %ld KiB", o_size_kb);
	memset((void *)buf, 0, size);
	while (!stop_flag) {
		for (size_t i = 0; i < size; i += stride) buf[i]++;
		units += size / stride;
		c_cache_passes++;
		iterations++;
		checkpoint();
	}
	c_rss_kb = rss_kb();
	free((void *)buf);
}

static void run_fork_exit(void)
{
	while (!stop_flag) {
		pid_t pid = fork();
		if (pid == 0) _exit(0);
		if (pid < 0) {
			c_fork_failures++;
			if (errno == EINTR) continue;
			sleep_ns(1000000);
			continue;
		}
		if (!c_first_child) c_first_child = pid;
		c_last_child = pid;
		int status;
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0) c_forks++;
		else c_fork_failures++;
		units++;
		iterations++;
		checkpoint();
	}
}

static void run_nice_sweep(void)
{
	int n = -20;
	while (!stop_flag) {
		if (setpriority(PRIO_PROCESS, 0, n) == 0) {
			errno = 0;
			int got = getpriority(PRIO_PROCESS, 0);
			if (errno == 0 && got == n) {
				c_nice_changes++;
				if (got < c_nice_min) c_nice_min = got;
				if (got > c_nice_max) c_nice_max = got;
			} else c_nice_errors++;
		} else c_nice_errors++;
		mixed_step();
		n = n == 19 ? -20 : n + 1;
	}
}

static void run_affinity_churn(void)
{
	load_allowed();
	while (!stop_flag) {
		spin(o_spin_iters);
		if (n_allowed > 0) {
			int cpu = allowed_cpus[rnd() % (uint64_t)n_allowed];
			cpu_set_t set;
			CPU_ZERO(&set);
			CPU_SET(cpu, &set);
			if (sched_setaffinity(0, sizeof(set), &set) == 0) {
				c_affinity_changes++;
				sched_yield();
				if (sched_getcpu() == cpu) c_affinity_hits++;
			} else {
				/* the cpuset changed under us: widen to everything it allows and relearn */
				c_affinity_errors++;
				cpu_set_t all;
				CPU_ZERO(&all);
				for (int c = 0; c < MAX_CPUS; c++) CPU_SET(c, &all);
				sched_setaffinity(0, sizeof(all), &all);
				load_allowed();
			}
		}
		units += (uint64_t)o_spin_iters;
		iterations++;
		checkpoint();
	}
}

static void run_policy_churn(void)
{
	static const int cycle[] = { SCHED_OTHER, SCHED_BATCH, SCHED_IDLE, SCHED_FIFO, SCHED_RR };
	int orig = sched_getscheduler(0);
	struct sched_param orig_sp;
	sched_getparam(0, &orig_sp);
	int i = 0;
	while (!stop_flag) {
		int p = cycle[i];
		i = (i + 1) % 5;
		if ((p == SCHED_FIFO || p == SCHED_RR) && !c_rt_allowed) continue;
		if (set_policy(p, 1) == 0 && sched_getscheduler(0) == p) {
			c_policy_changes++;
			c_policy_counts[p]++;
		} else {
			c_policy_errors++;
			if (errno == EPERM && (p == SCHED_FIFO || p == SCHED_RR)) c_rt_allowed = 0;
		}
		spin(o_spin_iters);
		units += (uint64_t)o_spin_iters;
		iterations++;
		checkpoint();
	}
	sched_setscheduler(0, orig, &orig_sp);
}

/* ---- report ---- */
static char *rep;
static size_t rep_len, rep_cap;
static void out(const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(rep + rep_len, rep_cap - rep_len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < rep_cap - rep_len) {
			rep_len += (size_t)n;
			return;
		}
		rep_cap = rep_cap * 2 + (size_t)(n > 0 ? n : 256);
		rep = realloc(rep, rep_cap);
		if (!rep) _exit(3);
	}
}

static int read_schedstat(uint64_t v[3])
{
	v[0] = v[1] = v[2] = 0;
	FILE *f = fopen("/proc/self/schedstat", "r");
	if (!f) return -1;
	unsigned long long a, b, c;
	int n = fscanf(f, "%llu %llu %llu", &a, &b, &c);
	fclose(f);
	if (n != 3) return -1;
	v[0] = a; v[1] = b; v[2] = c;
	return 0;
}

static long rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	if (!f) return -1;
	char line[256];
	long kb = -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmRSS:", 6)) kb = strtol(line + 6, NULL, 10);
	fclose(f);
	return kb;
}

static void report(uint64_t t_end, uint64_t cpu_ns, const uint64_t ss0[3], const uint64_t ss1[3], int ss_ok,
		   int start_policy, int start_nice)
{
	rep_cap = 8192;
	rep = malloc(rep_cap);
	rep_len = 0;
	uint64_t wall = t_end - t0;
	out("{\"pid\":%d,\"type\":\"%s\",\"workUnits\":%llu,\"iterations\":%llu", (int)getpid(), type_names[o_type],
	    (unsigned long long)units, (unsigned long long)iterations);
	out(",\"wallTimeNs\":%llu,\"cpuTimeNs\":%llu", (unsigned long long)wall, (unsigned long long)cpu_ns);
	out(",\"schedstat\":%s", ss_ok ? "true" : "false");
	out(",\"schedCpuTimeNs\":%llu,\"runDelayNs\":%llu,\"timeslices\":%llu",
	    (unsigned long long)(ss1[0] - ss0[0]), (unsigned long long)(ss1[1] - ss0[1]),
	    (unsigned long long)(ss1[2] - ss0[2]));
	out(",\"maxGapNs\":%llu,\"maxGapCpu\":%d,\"maxGapAtNs\":%llu", (unsigned long long)max_gap, max_gap_cpu,
	    (unsigned long long)max_gap_at);
	out(",\"migrations\":%llu,\"migrationEvents\":[", (unsigned long long)migration_count);
	for (int i = 0; i < n_mig_ev; i++)
		out("%s[%llu,%d,%d]", i ? "," : "", (unsigned long long)mig_ev[i].at, mig_ev[i].from, mig_ev[i].to);
	out("],\"cpus\":[");
	int first = 1;
	for (int c = 0; c < MAX_CPUS; c++) {
		if (!cpu_seen[c]) continue;
		out("%s[%d,%llu,%llu]", first ? "" : ",", c, (unsigned long long)cpu_first[c], (unsigned long long)cpu_last[c]);
		first = 0;
	}
	uint64_t n_res = wake_total < WAKE_RESERVOIR ? wake_total : WAKE_RESERVOIR;
	out("],\"wakeSamples\":%llu,\"wakeLatencyMaxNs\":%llu,\"wakeLatencySumNs\":%llu,\"wakeLatencyNs\":[",
	    (unsigned long long)wake_total, (unsigned long long)wake_max, (unsigned long long)wake_sum);
	for (uint64_t i = 0; i < n_res; i++) out("%s%llu", i ? "," : "", (unsigned long long)wake_res[i]);
	out("],\"policy\":\"%s\",\"nice\":%d,\"stoppedBy\":\"%s\"", policy_name(start_policy), start_nice,
	    stop_by_deadline ? "deadline" : "signal");
	out(",\"counters\":{");
	int k = 0;
#define C(name, val) out("%s\"%s\":%lld", k++ ? "," : "", name, (long long)(val))
	switch (o_type) {
	case W_YIELD: case W_MIXED: C("yields", c_yields); break;
	case W_IO_SYNC: C("bytesWritten", c_bytes_written); C("syncs", c_syncs); C("sleeps", c_sleeps); break;
	case W_BURSTY: C("bursts", c_bursts); C("sleeps", c_sleeps); break;
	case W_PIPE: case W_FUTEX: C("exchanges", c_exchanges); C("partnerPid", c_partner); break;
	case W_CACHE: C("passes", c_cache_passes); C("bufferKb", o_size_kb); C("rssKb", c_rss_kb); break;
	case W_FORK_EXIT:
		C("forks", c_forks); C("forkFailures", c_fork_failures);
		C("firstChildPid", c_first_child); C("lastChildPid", c_last_child);
		break;
	case W_NICE_SWEEP:
		C("niceChanges", c_nice_changes); C("niceErrors", c_nice_errors);
		C("niceMin", c_nice_changes ? c_nice_min : 0); C("niceMax", c_nice_changes ? c_nice_max : 0);
		C("yields", c_yields);
		break;
	case W_AFFINITY_CHURN:
		C("affinityChanges", c_affinity_changes); C("affinityHits", c_affinity_hits);
		C("affinityErrors", c_affinity_errors);
		break;
	case W_POLICY_CHURN:
		C("policyChanges", c_policy_changes); C("policyErrors", c_policy_errors);
		C("other", c_policy_counts[SCHED_OTHER]); C("batch", c_policy_counts[SCHED_BATCH]);
		C("idle", c_policy_counts[SCHED_IDLE]); C("fifo", c_policy_counts[SCHED_FIFO]);
		C("rr", c_policy_counts[SCHED_RR]);
		break;
	default: break;
	}
#undef C
	out("}}\n");
	size_t off = 0;
	while (off < rep_len) {
		ssize_t w = write(1, rep + off, rep_len - off);
		if (w < 0) {
			if (errno == EINTR) continue;
			break;
		}
		off += (size_t)w;
	}
}

/* ---- main ---- */
static void usage(void)
{
	fprintf(stderr, "usage: ktstr-workload run --type TYPE [--policy P] [--priority N] [--nice N] [--affinity CPUS]\n"
			"         [--burst-ms N] [--sleep-ms N] [--size-kb N] [--stride N] [--spin-iters N]\n"
			"         [--io-path PATH] [--io-offset BYTES] [--pair PATH --role 0|1] [--max-ms N] [--seed N]\n"
			"         [--parent PID]\n"
			"       ktstr-workload setaffinity PID CPULIST\n"
			"       ktstr-workload setscheduler PID POLICY PRIO\n"
			"       ktstr-workload types\n");
	exit(64);
}

static long num_arg(const char *name, const char *v)
{
	char *end;
	long n = strtol(v, &end, 10);
	if (!*v || *end) die("%s needs a number, got \"%s\"", name, v);
	return n;
}

static int cmd_setaffinity(int argc, char **argv)
{
	if (argc != 4) usage();
	cpu_set_t set;
	if (parse_cpulist(argv[3], &set) != 0) {
		fprintf(stderr, "bad cpu list \"%s\"\n", argv[3]);
		return 64;
	}
	if (sched_setaffinity((pid_t)atoi(argv[2]), sizeof(set), &set) != 0) {
		fprintf(stderr, "sched_setaffinity(%s, %s): %s\n", argv[2], argv[3], strerror(errno));
		return 1;
	}
	return 0;
}

/*
 * setscheduler PID POLICY PRIO: set a thread's policy (with SCHED_RESET_ON_FORK, so its children
 * start as SCHED_OTHER) and print the previous one as "POLICY PRIO". The test process uses it to
 * lift itself above the workloads for a run: a SCHED_FIFO workload must not be able to starve the one
 * process that will tell it to stop.
 */
static int cmd_setscheduler(int argc, char **argv)
{
	if (argc != 5) usage();
	pid_t pid = (pid_t)atoi(argv[2]);
	int policy = parse_policy(argv[3]);
	if (policy < 0) {
		fprintf(stderr, "unknown policy \"%s\"\n", argv[3]);
		return 64;
	}
	int old = sched_getscheduler(pid);
	struct sched_param old_sp = { 0 };
	if (old < 0 || sched_getparam(pid, &old_sp) != 0) {
		fprintf(stderr, "sched_getscheduler(%d): %s\n", (int)pid, strerror(errno));
		return 1;
	}
	struct sched_param sp = { .sched_priority = (policy == SCHED_FIFO || policy == SCHED_RR) ? atoi(argv[4]) : 0 };
	if (sched_setscheduler(pid, policy | SCHED_RESET_ON_FORK, &sp) != 0) {
		fprintf(stderr, "sched_setscheduler(%d, %s %d): %s\n", (int)pid, argv[3], sp.sched_priority, strerror(errno));
		return 1;
	}
	printf("%s %d\n", policy_name(old & ~SCHED_RESET_ON_FORK), old_sp.sched_priority);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "types")) {
		for (int i = 0; i < N_TYPES; i++) printf("%s\n", type_names[i]);
		return 0;
	}
	if (argc >= 2 && !strcmp(argv[1], "setaffinity")) return cmd_setaffinity(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "setscheduler")) return cmd_setscheduler(argc, argv);
	if (argc < 2 || strcmp(argv[1], "run")) usage();
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		if (i + 1 >= argc) die("option %s needs a value", a);
		const char *v = argv[++i];
		if (!strcmp(a, "--type")) {
			for (int t = 0; t < N_TYPES; t++)
				if (!strcmp(v, type_names[t])) o_type = t;
			if (o_type < 0) die("unknown work type \"%s\"", v);
		} else if (!strcmp(a, "--policy")) {
			o_policy = parse_policy(v);
			if (o_policy == -2) die("unknown policy \"%s\" (other, batch, idle, fifo, rr)", v);
		} else if (!strcmp(a, "--priority")) o_priority = (int)num_arg(a, v);
		else if (!strcmp(a, "--nice")) { o_nice_set = 1; o_nice = (int)num_arg(a, v); }
		else if (!strcmp(a, "--affinity")) o_affinity = (char *)v;
		else if (!strcmp(a, "--burst-ms")) o_burst_ms = num_arg(a, v);
		else if (!strcmp(a, "--sleep-ms")) o_sleep_ms = num_arg(a, v);
		else if (!strcmp(a, "--size-kb")) o_size_kb = num_arg(a, v);
		else if (!strcmp(a, "--stride")) o_stride = num_arg(a, v);
		else if (!strcmp(a, "--spin-iters")) o_spin_iters = num_arg(a, v);
		else if (!strcmp(a, "--io-path")) o_io_path = (char *)v;
		else if (!strcmp(a, "--io-offset")) o_io_offset = num_arg(a, v);
		else if (!strcmp(a, "--pair")) o_pair = (char *)v;
		else if (!strcmp(a, "--role")) o_role = num_arg(a, v) ? 1 : 0;
		else if (!strcmp(a, "--max-ms")) o_max_ms = num_arg(a, v);
		else if (!strcmp(a, "--seed")) o_seed = (unsigned)num_arg(a, v);
		else if (!strcmp(a, "--parent")) o_parent = (pid_t)num_arg(a, v);
		else die("unknown option %s", a);
	}
	if (o_type < 0) die("--type is required");
	rng_state ^= ((uint64_t)o_seed << 32) ^ (uint64_t)getpid();

	/* Die with the parent; stop on SIGUSR1 (no SA_RESTART, so blocking calls return EINTR). */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* The parent may have died before prctl took effect. (Not `getppid() == 1`: inside a guest
	 * the test process can itself be PID 1.) */
	if (o_parent > 0 && getppid() != o_parent) _exit(1);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGALRM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	char line[128];
	if (!read_line(line, sizeof(line), -1) || line[0] != 'S') die("expected the setup line on stdin");

	/* Phase 1: placed in the cgroup; now policy, nice, affinity and the partner. */
	if (o_nice_set && setpriority(PRIO_PROCESS, 0, o_nice) != 0) die("setpriority(%d): %s", o_nice, strerror(errno));
	if (o_policy >= 0) {
		int prio = o_priority;
		if ((o_policy == SCHED_FIFO || o_policy == SCHED_RR) && prio == 0) prio = 1;
		if (set_policy(o_policy, prio) != 0)
			die("sched_setscheduler(%s, priority %d): %s", policy_name(o_policy), prio, strerror(errno));
	}
	if (o_affinity) {
		cpu_set_t set;
		if (parse_cpulist(o_affinity, &set) != 0) die("bad affinity cpu list \"%s\"", o_affinity);
		if (sched_setaffinity(0, sizeof(set), &set) != 0)
			die("sched_setaffinity(%s): %s", o_affinity, strerror(errno));
	}
	if (o_type == W_PIPE || o_type == W_FUTEX) pair_setup();
	int start_policy = sched_getscheduler(0);
	errno = 0;
	int start_nice = getpriority(PRIO_PROCESS, 0);
	printf("{\"ready\":true,\"pid\":%d,\"partnerPid\":%d}\n", (int)getpid(), c_partner);
	fflush(stdout);

	/* Phase 2: wait for go. */
	if (!read_line(line, sizeof(line), -1) || line[0] != 'G') die("expected the go line on stdin");
	uint64_t now = now_ns();
	t0 = strtoull(line + 1, NULL, 10);
	if (t0 == 0 || t0 > now) t0 = now;
	last_ck = t0;
	if (o_max_ms > 0) {
		struct itimerval it = { .it_value = { .tv_sec = o_max_ms / 1000, .tv_usec = (o_max_ms % 1000) * 1000 } };
		setitimer(ITIMER_REAL, &it, NULL);
	}
	uint64_t ss0[3], ss1[3];
	int ss_ok = read_schedstat(ss0) == 0;
	uint64_t cpu0 = cputime_ns();
	checkpoint(); /* the first time we ran after go: the start delay counts as a gap */

	switch (o_type) {
	case W_SPIN: run_spin(); break;
	case W_YIELD: run_yield(); break;
	case W_MIXED: run_mixed(); break;
	case W_IO_SYNC: run_io_sync(); break;
	case W_BURSTY: run_bursty(); break;
	case W_PIPE: run_pipe(); break;
	case W_FUTEX: run_futex(); break;
	case W_CACHE: run_cache(); break;
	case W_FORK_EXIT: run_fork_exit(); break;
	case W_NICE_SWEEP: run_nice_sweep(); break;
	case W_AFFINITY_CHURN: run_affinity_churn(); break;
	case W_POLICY_CHURN: run_policy_churn(); break;
	}
	uint64_t cpu1 = cputime_ns();
	ss_ok = ss_ok && read_schedstat(ss1) == 0;
	if (!ss_ok) memcpy(ss1, ss0, sizeof(ss1));

	/* The stop time: the parent's, when it asked (a pair partner may have stopped first). */
	uint64_t t_end = now_ns();
	if (!stop_by_deadline && read_line(line, sizeof(line), 2000) && line[0] == 'Q') {
		uint64_t q = strtoull(line + 1, NULL, 10);
		if (q > t0 && q < t_end) t_end = q;
	}
	/* The tail since the last checkpoint is a gap too (a starved workload may never reach one). */
	uint64_t tail_end = blocked_since ? blocked_since : t_end;
	if (tail_end > last_ck && tail_end - last_ck > voluntary_ns && tail_end - last_ck - voluntary_ns > max_gap) {
		max_gap = tail_end - last_ck - voluntary_ns;
		max_gap_at = last_ck - t0;
		max_gap_cpu = last_cpu >= 0 ? last_cpu : sched_getcpu();
	}
	report(t_end, cpu1 - cpu0, ss0, ss1, ss_ok, start_policy, start_nice);
	return 0;
}
