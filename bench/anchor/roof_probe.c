/*
 * roof_probe: the two hardware limits an exact k-NN search runs into, measured on this machine now.
 *
 *   roof_probe [--threads 1,2] [--read-bytes N[,N...]] [--repeats R]
 *
 * - FMA peak: register-only loops of independent fused multiply-adds at the widest vector width
 *   this binary was built for (AVX-512, AVX2+FMA, else plain SSE multiply-add). A batch Flat search
 *   is a GEMM of 2*N*d flops per query, so peak GFLOP/s / (2*N*d) is its QPS ceiling.
 * - Streaming read: summing a buffer of the given size (e.g. the size of the base vectors) with
 *   vector loads. A one-query search must read all N*d floats once, so bytes/s / (4*N*d) is its
 *   QPS ceiling; with a buffer that fits in cache this measures that cache level, as the search does.
 *
 * Each measurement runs on T threads at once (one pthread per core asked for, each on its own
 * slice), best of R repetitions. One JSON object per line on stdout:
 *   {"probe":"fma","threads":T,"isa":"avx512","gflops":G,"gflops_per_core":G/T}
 *   {"probe":"read","threads":T,"bytes":B,"gbs":X,"gbs_per_core":X/T}
 * Not part of the test suite: bench/ scripts run it beside their own measurements.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROBE_MAX_THREADS 256
#define PROBE_FMA_ITERS 20000000L /* ~0.05 s per thread at 100 GFLOP/s with 12 vectors */

#if defined(__AVX512F__)
#define PROBE_ISA "avx512"
#define PROBE_LANES 16
typedef __m512 probe_vec;
#define PROBE_SET1(x) _mm512_set1_ps(x)
#define PROBE_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define PROBE_ADD(a, b) _mm512_add_ps(a, b)
#define PROBE_LOAD(p) _mm512_load_ps(p)
#define PROBE_SUM(v) _mm512_reduce_add_ps(v)
#elif defined(__AVX2__) && defined(__FMA__)
#define PROBE_ISA "avx2+fma"
#define PROBE_LANES 8
typedef __m256 probe_vec;
#define PROBE_SET1(x) _mm256_set1_ps(x)
#define PROBE_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define PROBE_ADD(a, b) _mm256_add_ps(a, b)
#define PROBE_LOAD(p) _mm256_load_ps(p)
static float s_sum8(__m256 v)
{
    float t[8];
    _mm256_storeu_ps(t, v);
    return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}
#define PROBE_SUM(v) s_sum8(v)
#else
#define PROBE_ISA "sse (no fma)"
#define PROBE_LANES 4
typedef __m128 probe_vec;
#define PROBE_SET1(x) _mm_set1_ps(x)
#define PROBE_FMA(a, b, c) _mm_add_ps(_mm_mul_ps(a, b), c)
#define PROBE_ADD(a, b) _mm_add_ps(a, b)
#define PROBE_LOAD(p) _mm_load_ps(p)
static float s_sum4(__m128 v)
{
    float t[4];
    _mm_storeu_ps(t, v);
    return t[0] + t[1] + t[2] + t[3];
}
#define PROBE_SUM(v) s_sum4(v)
#endif

struct probe_job {
    int kind; /* 0 = fma, 1 = read */
    const float *data;
    size_t count; /* floats of this thread's slice (read) */
    pthread_barrier_t *start;
    double seconds;
    float sink;
};

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* 12 independent chains: enough to cover FMA latency (4-5 cycles) times 2 FMA ports. */
__attribute__((noinline)) static float s_fma_loop(long iters)
{
    probe_vec m = PROBE_SET1(0.999999f), c = PROBE_SET1(1e-7f);
    probe_vec a0 = PROBE_SET1(1.0f), a1 = PROBE_SET1(1.1f), a2 = PROBE_SET1(1.2f), a3 = PROBE_SET1(1.3f);
    probe_vec a4 = PROBE_SET1(1.4f), a5 = PROBE_SET1(1.5f), a6 = PROBE_SET1(1.6f), a7 = PROBE_SET1(1.7f);
    probe_vec a8 = PROBE_SET1(1.8f), a9 = PROBE_SET1(1.9f), a10 = PROBE_SET1(2.0f), a11 = PROBE_SET1(2.1f);
    for (long i = 0; i < iters; i++) {
        a0 = PROBE_FMA(a0, m, c);
        a1 = PROBE_FMA(a1, m, c);
        a2 = PROBE_FMA(a2, m, c);
        a3 = PROBE_FMA(a3, m, c);
        a4 = PROBE_FMA(a4, m, c);
        a5 = PROBE_FMA(a5, m, c);
        a6 = PROBE_FMA(a6, m, c);
        a7 = PROBE_FMA(a7, m, c);
        a8 = PROBE_FMA(a8, m, c);
        a9 = PROBE_FMA(a9, m, c);
        a10 = PROBE_FMA(a10, m, c);
        a11 = PROBE_FMA(a11, m, c);
    }
    probe_vec s = PROBE_ADD(PROBE_ADD(PROBE_ADD(a0, a1), PROBE_ADD(a2, a3)), PROBE_ADD(PROBE_ADD(a4, a5), a6));
    s = PROBE_ADD(s, PROBE_ADD(PROBE_ADD(a7, a8), PROBE_ADD(PROBE_ADD(a9, a10), a11)));
    return PROBE_SUM(s);
}

/* Four accumulators so the adds do not serialise on their latency; the loads are the limit. */
__attribute__((noinline)) static float s_read_loop(const float *x, size_t n)
{
    probe_vec s0 = PROBE_SET1(0.0f), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 4 * PROBE_LANES <= n; i += 4 * PROBE_LANES) {
        s0 = PROBE_ADD(s0, PROBE_LOAD(x + i));
        s1 = PROBE_ADD(s1, PROBE_LOAD(x + i + PROBE_LANES));
        s2 = PROBE_ADD(s2, PROBE_LOAD(x + i + 2 * PROBE_LANES));
        s3 = PROBE_ADD(s3, PROBE_LOAD(x + i + 3 * PROBE_LANES));
    }
    float tail = 0.0f;
    for (; i < n; i++)
        tail += x[i];
    return PROBE_SUM(PROBE_ADD(PROBE_ADD(s0, s1), PROBE_ADD(s2, s3))) + tail;
}

static void *s_worker(void *arg)
{
    struct probe_job *job = arg;
    pthread_barrier_wait(job->start);
    double t0 = s_now();
    job->sink = job->kind == 0 ? s_fma_loop(PROBE_FMA_ITERS) : s_read_loop(job->data, job->count);
    job->seconds = s_now() - t0;
    return NULL;
}

/* One timed round on `threads` threads; returns the slowest thread's seconds (the wall time of the
 * round as a whole), or a negative value if a thread could not start. */
static double s_round(int kind, int threads, const float *data, size_t floats, float *sink)
{
    pthread_t tid[PROBE_MAX_THREADS];
    struct probe_job jobs[PROBE_MAX_THREADS];
    pthread_barrier_t start;
    if (pthread_barrier_init(&start, NULL, (unsigned)threads) != 0)
        return -1.0;
    /* Slices are multiples of 64 floats so every thread's loads stay 64-byte aligned. */
    size_t per = floats / (size_t)threads / 64 * 64;
    int started = 0;
    for (int t = 0; t < threads; t++) {
        jobs[t] = (struct probe_job){.kind = kind, .data = data ? data + per * (size_t)t : NULL,
                                     .count = t == threads - 1 ? floats - per * (size_t)t : per, .start = &start};
        if (pthread_create(&tid[t], NULL, s_worker, &jobs[t]) != 0)
            break;
        started++;
    }
    if (started < threads) {
        /* The barrier can never be reached: report and give up (the started threads stay blocked). */
        fprintf(stderr, "roof_probe: could not start thread %d of %d\n", started + 1, threads);
        exit(1);
    }
    double worst = 0.0;
    for (int t = 0; t < threads; t++) {
        pthread_join(tid[t], NULL);
        if (jobs[t].seconds > worst)
            worst = jobs[t].seconds;
        *sink += jobs[t].sink;
    }
    pthread_barrier_destroy(&start);
    return worst;
}

static int s_parse_list(const char *text, long long *out, int max, const char *what)
{
    int n = 0;
    const char *p = text;
    while (*p) {
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || v <= 0 || n == max || (*end && *end != ',')) {
            fprintf(stderr, "roof_probe: %s: '%s' is not a list of positive numbers (at '%s')\n", what, text, p);
            return -1;
        }
        out[n++] = v;
        p = *end ? end + 1 : end;
    }
    return n;
}

int main(int argc, char **argv)
{
    long long threads[16] = {1}, sizes[16] = {128LL << 20};
    int nthreads = 1, nsizes = 1, repeats = 5;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--threads") && v) {
            nthreads = s_parse_list(v, threads, 16, "--threads");
            i++;
        } else if (!strcmp(argv[i], "--read-bytes") && v) {
            nsizes = s_parse_list(v, sizes, 16, "--read-bytes");
            i++;
        } else if (!strcmp(argv[i], "--repeats") && v) {
            long long r[1];
            repeats = s_parse_list(v, r, 1, "--repeats") == 1 && r[0] <= 1000 ? (int)r[0] : -1;
            i++;
        } else {
            fprintf(stderr, "usage: roof_probe [--threads 1,2] [--read-bytes N[,N...]] [--repeats R]\n");
            return 2;
        }
        if (nthreads < 0 || nsizes < 0 || repeats < 0)
            return 2;
    }
    for (int t = 0; t < nthreads; t++) {
        if (threads[t] > PROBE_MAX_THREADS) {
            fprintf(stderr, "roof_probe: --threads %lld: at most %d\n", threads[t], PROBE_MAX_THREADS);
            return 2;
        }
    }
    float sink = 0.0f;
    for (int t = 0; t < nthreads; t++) {
        int th = (int)threads[t];
        double best = 1e300;
        s_round(0, th, NULL, 0, &sink); /* warm-up: clocks settle */
        for (int r = 0; r < repeats; r++) {
            double s = s_round(0, th, NULL, 0, &sink);
            if (s > 0 && s < best)
                best = s;
        }
        double gflops = (double)th * PROBE_FMA_ITERS * 12.0 * PROBE_LANES * 2.0 / best / 1e9;
        printf("{\"probe\":\"fma\",\"threads\":%d,\"isa\":\"%s\",\"gflops\":%.2f,\"gflops_per_core\":%.2f}\n", th,
               PROBE_ISA, gflops, gflops / th);
    }
    for (int s = 0; s < nsizes; s++) {
        size_t bytes = (size_t)sizes[s] / 64 * 64;
        if (bytes < 4096 || bytes > ((size_t)16 << 30)) {
            fprintf(stderr, "roof_probe: --read-bytes %lld: between 4096 and 16 GiB\n", sizes[s]);
            return 2;
        }
        float *buf = aligned_alloc(64, bytes);
        if (!buf) {
            fprintf(stderr, "roof_probe: cannot allocate %zu bytes for the read probe\n", bytes);
            return 1;
        }
        size_t floats = bytes / sizeof(float);
        for (size_t i = 0; i < floats; i++)
            buf[i] = (float)(i & 1023) * 1e-3f;
        for (int t = 0; t < nthreads; t++) {
            int th = (int)threads[t];
            double best = 1e300;
            s_round(1, th, buf, floats, &sink); /* warm-up: pages and caches */
            /* Small buffers: repeat more so a round is not shorter than the clock's resolution. */
            int reps = repeats * (bytes < ((size_t)64 << 20) ? 20 : 1);
            for (int r = 0; r < reps; r++) {
                double sec = s_round(1, th, buf, floats, &sink);
                if (sec > 0 && sec < best)
                    best = sec;
            }
            double gbs = (double)bytes / best / 1e9;
            printf("{\"probe\":\"read\",\"threads\":%d,\"bytes\":%zu,\"gbs\":%.2f,\"gbs_per_core\":%.2f}\n", th, bytes,
                   gbs, gbs / th);
        }
        free(buf);
    }
    /* The sums are printed to stderr only so the compiler cannot drop the loops. */
    fprintf(stderr, "roof_probe: checksum %g\n", (double)sink);
    return 0;
}
