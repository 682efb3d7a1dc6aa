/*
 * bench_recordio_decode: decode speed of RecordIO-protobuf on one core.
 *
 *   bench_recordio_decode FILE...                      decode each file, print MB/s and rows/s
 *   bench_recordio_decode --generate FILE BYTES DIM    write ~BYTES of DIM-feature float32 rows
 *                                                      with labels, as the SDK writes them
 *
 * Each file is mapped and fed to the row decoder in 1 MiB chunks (as S3 delivers them) with
 * batches of 1024 rows, the way a training job reads a channel: "fast" is the library as shipped
 * (hand-written decoder for the SDK's dense layout), "protobuf-c" forces the generic decoder on
 * the same records. Best of 3 runs each. One line per file and path, then the ratio.
 */
#include "knn/common/buf.h"
#include "knn/common/clock.h"
#include "knn/common/error.h"
#include "knn/recordio/reader.h"
#include "knn/recordio/rows.h"
#include "knn/recordio/writer.h"
#include "record_impl.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_CHUNK ((size_t)1 << 20)

struct s_result {
    double seconds;
    uint64_t rows;
    double checksum;
};

static int s_sink(void *user, const float *features, const float *labels, size_t n)
{
    struct s_result *r = user;
    r->rows += n;
    r->checksum += features[0] + (labels ? labels[n - 1] : 0); /* keep the work observable */
    return 0;
}

static int s_run_fast(struct s_result *out, const uint8_t *data, size_t len, size_t dim)
{
    struct knn_recordio_rows_options o = KNN_RECORDIO_ROWS_OPTIONS_INIT;
    o.feature_dim = dim;
    o.batch_rows = 1024;
    struct knn_recordio_rows *rows;
    memset(out, 0, sizeof(*out));
    int rc = knn_recordio_rows_new(&rows, &o, s_sink, out);
    if (rc)
        return rc;
    uint64_t t0 = knn_clock_monotonic_ns();
    for (size_t off = 0; off < len && !rc; off += S_CHUNK)
        rc = knn_recordio_rows_feed(rows, data + off, len - off < S_CHUNK ? len - off : S_CHUNK);
    if (!rc)
        rc = knn_recordio_rows_finish(rows);
    out->seconds = knn_clock_seconds_since(t0);
    knn_recordio_rows_destroy(rows);
    return rc;
}

/* The same work with the protobuf-c decoder forced: frame reader + generic decode into a batch. */
struct s_generic {
    struct s_result *out;
    float *batch;
    float labels[1024];
    size_t n, dim;
};

static int s_generic_record(void *user, const struct knn_recordio_record *rec)
{
    struct s_generic *g = user;
    int rc = knn__record_decode_with(1, g->batch + g->n * g->dim, &g->labels[g->n], NULL, rec, g->dim);
    if (rc)
        return rc;
    if (++g->n == 1024) {
        s_sink(g->out, g->batch, g->labels, g->n);
        g->n = 0;
    }
    return 0;
}

static int s_run_generic(struct s_result *out, const uint8_t *data, size_t len, size_t dim)
{
    struct s_generic g = {out, malloc(1024 * dim * sizeof(float)), {0}, 0, dim};
    struct knn_recordio_reader *r;
    memset(out, 0, sizeof(*out));
    int rc = knn_recordio_reader_new(&r, NULL);
    if (rc || !g.batch)
        return rc ? rc : KNN_ENOMEM;
    uint64_t t0 = knn_clock_monotonic_ns();
    for (size_t off = 0; off < len && !rc; off += S_CHUNK)
        rc = knn_recordio_reader_feed(r, data + off, len - off < S_CHUNK ? len - off : S_CHUNK, s_generic_record, &g);
    if (!rc)
        rc = knn_recordio_reader_finish(r);
    if (!rc && g.n)
        s_sink(out, g.batch, NULL, g.n);
    out->seconds = knn_clock_seconds_since(t0);
    knn_recordio_reader_destroy(r);
    free(g.batch);
    return rc;
}

/* The width of the first record (all records of these files share it). */
static size_t s_first_width(const uint8_t *data, size_t len)
{
    struct knn_recordio_record rec = {data + 8, 0, 0, 0};
    uint32_t l;
    if (len < 8)
        return 0;
    memcpy(&l, data + 4, 4);
    rec.len = l & KNN_RECORDIO_MAX_FRAME_LEN;
    if (rec.len > len - 8)
        return 0;
    struct knn_recordio_record_info info;
    return knn_recordio_record_probe(&info, &rec) == 0 ? (size_t)info.width : 0;
}

static int s_bench_file(const char *path)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size == 0) {
        fprintf(stderr, "%s: cannot open or empty\n", path);
        return 1;
    }
    size_t len = (size_t)st.st_size;
    const uint8_t *data = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    close(fd);
    if (data == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    size_t dim = s_first_width(data, len);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    double best[2] = {1e30, 1e30};
    uint64_t rows = 0;
    for (int path_kind = 0; path_kind < 2; path_kind++) {
        for (int rep = 0; rep < 3; rep++) {
            struct s_result r;
            int rc = path_kind == 0 ? s_run_fast(&r, data, len, dim) : s_run_generic(&r, data, len, dim);
            if (rc) {
                fprintf(stderr, "%s: %s\n", path, knn_error_message());
                return 1;
            }
            rows = r.rows;
            if (r.seconds < best[path_kind])
                best[path_kind] = r.seconds;
        }
        printf(
            "%-28s %-11s %8.1f MiB  %9llu rows x %4zu  %8.0f MB/s  %10.0f rows/s\n", base,
            path_kind == 0 ? "fast" : "protobuf-c", len / 1048576.0, (unsigned long long)rows, dim,
            len / best[path_kind] / 1e6, rows / best[path_kind]);
    }
    printf("%-28s fast / protobuf-c = %.1fx\n", base, best[1] / best[0]);
    munmap((void *)data, len);
    return 0;
}

static int s_generate(const char *path, unsigned long long bytes, size_t dim)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        return 1;
    }
    struct knn_buf buf = KNN_BUF_INIT((size_t)64 << 20);
    float *row = malloc(dim * sizeof(float));
    uint64_t x = 0x9E3779B97F4A7C15ull, written = 0, n = 0;
    while (written < bytes) {
        for (size_t j = 0; j < dim; j++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            row[j] = (float)((int64_t)(x >> 11) - (1ll << 52)) / (float)(1ll << 52); /* uniform in [-1, 1) */
        }
        float label = (float)(n++ % 10);
        if (knn_recordio_write_dense(&buf, row, dim, &label)) {
            fprintf(stderr, "%s\n", knn_error_message());
            return 1;
        }
        if (buf.len >= ((size_t)1 << 20)) {
            if (fwrite(buf.data, 1, buf.len, f) != buf.len)
                return perror(path), 1;
            written += buf.len;
            knn_buf_reset(&buf);
        }
    }
    if (fclose(f) != 0)
        return perror(path), 1;
    printf("wrote %llu rows (%llu bytes) to %s\n", (unsigned long long)n, (unsigned long long)written, path);
    knn_buf_clean_up(&buf);
    free(row);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--generate") == 0)
        return s_generate(argv[2], strtoull(argv[3], NULL, 10), (size_t)strtoul(argv[4], NULL, 10));
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE... | --generate FILE BYTES DIM\n", argv[0]);
        return 2;
    }
    int failed = 0;
    for (int i = 1; i < argc; i++)
        failed |= s_bench_file(argv[i]);
    return failed;
}
