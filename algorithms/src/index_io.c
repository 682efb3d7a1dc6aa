/*
 * FAISS's index file format, as FAISS 1.7 writes it (faiss/impl/index_write.cpp) and reads it
 * (index_read.cpp), for the index types we have. Every field is little-endian; FAISS's
 * size_t and idx_t are 8 bytes. See algorithms/docs/faiss-format.md for the byte layout.
 *
 *   index header  fourcc, i32 d, i64 ntotal, i64 1<<20, i64 1<<20, u8 is_trained, i32 metric
 *                 (FAISS reads a float metric_arg after it when metric > 1: we do not support those)
 *   IxF2 / IxFI   header, u64 n = ntotal * d, n floats
 *   IwFl          header, u64 nlist, u64 nprobe, quantizer (a whole IxF2/IxFI), direct map
 *                 (u8 type, u64 n, n i64 [, u64 n, n pairs of i64 for a hash table]), inverted lists
 *   IwPQ          as IwFl up to the direct map, then u8 by_residual, u64 code_size, the product
 *                 quantizer (u64 d, u64 M, u64 nbits, u64 n, n floats), inverted lists
 *   IwSq          as IwFl up to the direct map, then the scalar quantizer (i32 qtype = 0 QT_8bit,
 *                 i32 rangestat = 0 RS_minmax, f32 rangestat_arg, u64 d, u64 code_size = d, u64 n = 2d,
 *                 n floats vmin then vdiff), u64 code_size, u8 by_residual, inverted lists
 *   IHNf          header, the HNSW graph (u64 n + n f64 assign_probas; u64 n + n i32
 *                 cum_nneighbor_per_level; u64 ntotal + i32 levels; u64 ntotal+1 + u64 offsets; u64 n + n
 *                 i32 neighbors; i32 entry_point, max_level, efConstruction, efSearch, upper_beam),
 *                 then the storage (a whole IxF2 / IxFI)
 *   inverted lists "ilar", u64 nlist, u64 code_size, sizes ("full", u64 nlist, nlist u64; or
 *                 "sprs", u64 2m, m pairs (u64 list, u64 size) of the non-empty lists), then for
 *                 every non-empty list in order: size * code_size bytes of codes, size i64 ids
 *
 * The reader checks every count against the bytes that remain before allocating, so a file can
 * never make us allocate much more than its own size (the IVFPQ distance tables, derived data,
 * are capped separately). Errors say the byte offset and the field.
 */
#include "index_flat.h"
#include "index_hnsw.h"
#include "index_impl.h"
#include "index_ivf.h"
#include "pq.h"
#include "sq.h"

#include "knn/algorithms/index.h"
#include "knn/algorithms/part.h"
#include "knn/common/alloc.h"
#include "knn/common/error.h"

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "index_io.c writes FAISS files (little-endian) by copying memory: port the array writes first"
#endif

#define S_FOURCC(s) ((uint32_t)(s)[0] | (uint32_t)(s)[1] << 8 | (uint32_t)(s)[2] << 16 | (uint32_t)(s)[3] << 24)

/* FAISS writes this in the two unused header fields. */
#define S_DUMMY ((int64_t)1 << 20)
/* Widest vectors we read (a sanity bound; sizes are also checked against the file length). */
#define S_MAX_DIM ((size_t)1 << 24)
/* Vectors read per step when loading a Flat index (bounds the staging buffer). */
#define S_FLAT_CHUNK 16384

/* ------------------------------------------------------------------------------------------ */
/* Writing                                                                                      */
/* ------------------------------------------------------------------------------------------ */

struct s_writer {
    knn_write_fn *write;
    void *user;
};

static int s_put(struct s_writer *w, const void *p, size_t n)
{
    return n ? w->write(w->user, p, n) : 0;
}

static int s_put_u8(struct s_writer *w, uint8_t v)
{
    return s_put(w, &v, 1);
}

static int s_put_i32(struct s_writer *w, int32_t v)
{
    return s_put(w, &v, 4);
}

static int s_put_f32(struct s_writer *w, float v)
{
    return s_put(w, &v, 4);
}

static int s_put_u64(struct s_writer *w, uint64_t v)
{
    return s_put(w, &v, 8);
}

static int s_put_fourcc(struct s_writer *w, const char *s)
{
    uint32_t v = S_FOURCC(s);
    return s_put(w, &v, 4);
}

static int s_write_header(struct s_writer *w, const char *fourcc, const struct knn_index *index)
{
    int rc;
    if (index->opts.dim > INT32_MAX)
        return knn_error_set(KNN_ERANGE, "FAISS index: dimension %zu does not fit FAISS's int", index->opts.dim);
    if ((rc = s_put_fourcc(w, fourcc)) || (rc = s_put_i32(w, (int32_t)index->opts.dim)) ||
        (rc = s_put_u64(w, (uint64_t)index->ntotal)) || (rc = s_put_u64(w, (uint64_t)S_DUMMY)) ||
        (rc = s_put_u64(w, (uint64_t)S_DUMMY)) || (rc = s_put_u8(w, index->is_trained ? 1 : 0)) ||
        (rc = s_put_i32(w, (int32_t)index->opts.metric)))
        return rc;
    return 0;
}

static int s_write_flat(struct s_writer *w, const struct knn_index *index)
{
    int ip = index->opts.metric == KNN_METRIC_INNER_PRODUCT;
    int rc = s_write_header(w, ip ? "IxFI" : "IxF2", index);
    if (rc)
        return rc;
    uint64_t n = (uint64_t)index->ntotal * index->opts.dim;
    if ((rc = s_put_u64(w, n)))
        return rc;
    return s_put(w, knn__index_flat_vectors(index), n * sizeof(float));
}

static int s_write_invlists(struct s_writer *w, const struct knn_index *index)
{
    const size_t nlist = index->opts.nlist, code_size = knn__ivf_code_size(index);
    size_t n_nonempty = 0, size;
    const uint8_t *codes;
    const int64_t *ids;
    int rc;
    for (size_t l = 0; l < nlist; l++) {
        knn__ivf_list(index, l, &size, &codes, &ids);
        n_nonempty += size > 0;
    }
    if ((rc = s_put_fourcc(w, "ilar")) || (rc = s_put_u64(w, nlist)) || (rc = s_put_u64(w, code_size)))
        return rc;
    /* FAISS's choice between the two encodings of the sizes, so our bytes are FAISS's bytes. */
    if (n_nonempty > nlist / 2) {
        if ((rc = s_put_fourcc(w, "full")) || (rc = s_put_u64(w, nlist)))
            return rc;
        for (size_t l = 0; l < nlist; l++) {
            knn__ivf_list(index, l, &size, &codes, &ids);
            if ((rc = s_put_u64(w, size)))
                return rc;
        }
    } else {
        if ((rc = s_put_fourcc(w, "sprs")) || (rc = s_put_u64(w, 2 * (uint64_t)n_nonempty)))
            return rc;
        for (size_t l = 0; l < nlist; l++) {
            knn__ivf_list(index, l, &size, &codes, &ids);
            if (size > 0 && ((rc = s_put_u64(w, l)) || (rc = s_put_u64(w, size))))
                return rc;
        }
    }
    /* The codes row-major, whatever the index's own layout: staged through one list-sized buffer. */
    size_t most = 0;
    for (size_t l = 0; l < nlist; l++) {
        knn__ivf_list(index, l, &size, &codes, &ids);
        most = size > most ? size : most;
    }
    uint8_t *rows = most ? knn_malloc_array(most, code_size) : NULL;
    if (most && !rows)
        return KNN_ENOMEM;
    for (size_t l = 0; l < nlist; l++) {
        knn__ivf_list(index, l, &size, &codes, &ids);
        if (size == 0)
            continue;
        knn__ivf_list_rows(index, l, rows);
        if ((rc = s_put(w, rows, size * code_size)) || (rc = s_put(w, ids, size * sizeof(int64_t))))
            break;
    }
    knn_free(rows);
    return rc;
}

static int s_write_ivf(struct s_writer *w, const struct knn_index *index)
{
    const int pq = index->opts.type == KNN_INDEX_IVFPQ, sq = index->opts.type == KNN_INDEX_IVFSQ8;
    const struct knn_index *quantizer = knn__ivf_quantizer(index);
    int rc;
    if (!index->is_trained || !quantizer)
        return knn_error_set(KNN_EINDEX_NOT_TRAINED, "FAISS index: cannot write an untrained %s", index->vtable->name);
    if ((rc = s_write_header(w, pq ? "IwPQ" : sq ? "IwSq" : "IwFl", index)) || (rc = s_put_u64(w, index->opts.nlist)) ||
        (rc = s_put_u64(w, index->opts.nprobe)) || (rc = s_write_flat(w, quantizer)))
        return rc;
    /* direct map: none */
    if ((rc = s_put_u8(w, 0)) || (rc = s_put_u64(w, 0)))
        return rc;
    if (pq) {
        const struct knn__pq *p = knn__ivf_pq(index);
        uint64_t nc = (uint64_t)p->m * p->ksub * p->dsub;
        if ((rc = s_put_u8(w, knn__ivf_by_residual(index) ? 1 : 0)) || (rc = s_put_u64(w, knn__ivf_code_size(index))) ||
            (rc = s_put_u64(w, p->d)) || (rc = s_put_u64(w, p->m)) || (rc = s_put_u64(w, KNN__PQ_NBITS)) ||
            (rc = s_put_u64(w, nc)) || (rc = s_put(w, p->centroids, nc * sizeof(float))))
            return rc;
    }
    if (sq) {
        const struct knn__sq *q = knn__ivf_sq(index);
        if ((rc = s_put_i32(w, KNN__SQ_QT_8BIT)) || (rc = s_put_i32(w, KNN__SQ_RS_MINMAX)) || (rc = s_put_f32(w, 0.0f)) ||
            (rc = s_put_u64(w, q->d)) || (rc = s_put_u64(w, q->d)) || (rc = s_put_u64(w, 2 * q->d)) ||
            (rc = s_put(w, q->trained, 2 * q->d * sizeof(float))) || (rc = s_put_u64(w, knn__ivf_code_size(index))) ||
            (rc = s_put_u8(w, knn__ivf_by_residual(index) ? 1 : 0)))
            return rc;
    }
    return s_write_invlists(w, index);
}

static int s_put_vec(struct s_writer *w, const void *p, uint64_t n, size_t elem)
{
    int rc = s_put_u64(w, n);
    return rc ? rc : s_put(w, p, (size_t)n * elem);
}

static int s_write_hnsw(struct s_writer *w, const struct knn_index *index)
{
    const struct knn__hnsw_graph *g = knn__hnsw_graph(index);
    int rc;
    if ((rc = s_write_header(w, "IHNf", index)) ||
        (rc = s_put_vec(w, g->assign_probas, g->nprobas, sizeof(double))) ||
        (rc = s_put_vec(w, g->cum_nneighbor_per_level, g->ncum, sizeof(int32_t))) ||
        (rc = s_put_vec(w, g->levels, index->ntotal, sizeof(int32_t))) ||
        (rc = s_put_vec(w, g->offsets, index->ntotal + 1, sizeof(uint64_t))) ||
        (rc = s_put_vec(w, g->neighbors, g->nneighbors, sizeof(int32_t))) || (rc = s_put_i32(w, g->entry_point)) ||
        (rc = s_put_i32(w, g->max_level)) || (rc = s_put_i32(w, g->ef_construction)) ||
        (rc = s_put_i32(w, (int32_t)index->opts.ef_search)) || (rc = s_put_i32(w, g->upper_beam)))
        return rc;
    return s_write_flat(w, knn__hnsw_storage(index));
}

int knn_index_write_faiss(const struct knn_index *index, knn_write_fn *write, void *user)
{
    if (!index || !write)
        return knn_error_set(KNN_EINVAL, "FAISS index: NULL argument");
    struct s_writer w = {write, user};
    switch (index->opts.type) {
        case KNN_INDEX_FLAT:
            return s_write_flat(&w, index);
        case KNN_INDEX_IVFFLAT:
        case KNN_INDEX_IVFPQ:
        case KNN_INDEX_IVFSQ8:
            return s_write_ivf(&w, index);
        case KNN_INDEX_HNSW:
            return s_write_hnsw(&w, index);
    }
    return knn_error_set(KNN_EINVAL, "FAISS index: unknown index type %d", (int)index->opts.type);
}

/* ------------------------------------------------------------------------------------------ */
/* Reading                                                                                      */
/* ------------------------------------------------------------------------------------------ */

struct s_reader {
    knn_read_fn *read;
    void *user;
    uint64_t off;   /* bytes consumed */
    uint64_t total; /* bytes available */
    /* A part of the index only (knn_index_read_faiss_part): positional reads, skips are seeks. */
    knn_pread_fn *pread;
    size_t part, nparts; /* nparts 0: the whole index */
    struct knn_index_part_info *info;
};

static uint64_t s_left(const struct s_reader *r)
{
    return r->total - r->off;
}

/* Read n bytes of `field`; fails without reading if fewer remain. */
static int s_get(struct s_reader *r, void *p, size_t n, const char *field)
{
    if (n > s_left(r))
        return knn_error_set(
            KNN_ETRUNCATED, "byte %" PRIu64 ": %s: needs %zu bytes, the file has %" PRIu64 " left", r->off, field, n,
            s_left(r));
    if (n == 0)
        return 0;
    int rc = r->pread ? r->pread(r->user, p, n, r->off) : r->read(r->user, p, n);
    if (rc != 0)
        return knn_error_wrap(rc, "byte %" PRIu64 ": %s", r->off, field);
    r->off += n;
    return 0;
}

static int s_get_u8(struct s_reader *r, uint8_t *v, const char *field)
{
    return s_get(r, v, 1, field);
}

static int s_get_i32(struct s_reader *r, int32_t *v, const char *field)
{
    return s_get(r, v, 4, field);
}

static int s_get_u64(struct s_reader *r, uint64_t *v, const char *field)
{
    return s_get(r, v, 8, field);
}

/* Consume n bytes without keeping them. */
static int s_skip(struct s_reader *r, uint64_t n, const char *field)
{
    if (n > s_left(r))
        return knn_error_set(
            KNN_ETRUNCATED, "byte %" PRIu64 ": %s: needs %" PRIu64 " bytes, the file has %" PRIu64 " left", r->off,
            field, n, s_left(r));
    if (r->pread) {
        r->off += n;
        return 0;
    }
    uint8_t buf[4096];
    while (n > 0) {
        size_t c = n < sizeof(buf) ? (size_t)n : sizeof(buf);
        int rc = s_get(r, buf, c, field);
        if (rc)
            return rc;
        n -= c;
    }
    return 0;
}

/* A malformed field: "byte <at>: <field>: <what>". */
__attribute__((format(printf, 3, 4))) static int s_bad(uint64_t at, const char *field, const char *fmt, ...)
{
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return knn_error_set(KNN_EFORMAT, "byte %" PRIu64 ": %s: %s", at, field, what);
}

static void s_fourcc_text(uint32_t h, char out[5])
{
    for (int i = 0; i < 4; i++) {
        unsigned char c = (unsigned char)(h >> (8 * i));
        out[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    out[4] = 0;
}

struct s_header {
    uint32_t fourcc;
    size_t d;
    uint64_t ntotal;
    int is_trained;
    enum knn_metric metric;
};

static int s_read_header(struct s_reader *r, struct s_header *h)
{
    int32_t d, metric;
    int64_t dummy;
    uint8_t trained;
    int rc;
    uint64_t at = r->off;
    if ((rc = s_get_i32(r, &d, "index header: d")))
        return rc;
    if (d <= 0 || (size_t)d > S_MAX_DIM)
        return s_bad(at, "index header: d", "dimension %d is out of range", (int)d);
    at = r->off;
    if ((rc = s_get_u64(r, &h->ntotal, "index header: ntotal")))
        return rc;
    if (h->ntotal > (uint64_t)INT64_MAX)
        return s_bad(at, "index header: ntotal", "%" PRIu64 " is negative", h->ntotal);
    if ((rc = s_get(r, &dummy, 8, "index header: unused field")) ||
        (rc = s_get(r, &dummy, 8, "index header: unused field")))
        return rc;
    at = r->off;
    if ((rc = s_get_u8(r, &trained, "index header: is_trained")))
        return rc;
    if (trained > 1)
        return s_bad(at, "index header: is_trained", "%u is not a bool", (unsigned)trained);
    at = r->off;
    if ((rc = s_get_i32(r, &metric, "index header: metric_type")))
        return rc;
    if (metric != KNN_METRIC_L2 && metric != KNN_METRIC_INNER_PRODUCT)
        return knn_error_set(
            KNN_EUNSUPPORTED,
            "byte %" PRIu64 ": index header: metric_type %d is not L2 (1) or "
            "inner product (0)",
            at, (int)metric);
    h->d = (size_t)d;
    h->is_trained = trained;
    h->metric = (enum knn_metric)metric;
    return 0;
}

static int s_read_index(struct s_reader *r, struct knn_index **out, int depth);

/*
 * Entries [lo, hi) of part `part` of `nparts` over n entries, cut at multiples of `align` (the
 * last part ends at n): consecutive parts meet, so every entry is in exactly one part.
 */
static void s_part_range(uint64_t n, size_t part, size_t nparts, uint64_t align, uint64_t *lo, uint64_t *hi)
{
    *lo = part == 0 ? 0 : (uint64_t)((unsigned __int128)n * part / nparts) / align * align;
    *hi = part + 1 == nparts ? n : (uint64_t)((unsigned __int128)n * (part + 1) / nparts) / align * align;
}

/* The rest of an IxF2 / IxFI after its fourcc; `sliced`: only this reader's part of the rows. */
static int s_read_flat(struct s_reader *r, struct knn_index **out, uint32_t fourcc, int sliced)
{
    struct s_header h;
    struct knn_index *index = NULL;
    float *buf = NULL;
    int rc;
    uint64_t at0 = r->off;

    if ((rc = s_read_header(r, &h)))
        return rc;
    enum knn_metric want = fourcc == S_FOURCC("IxFI") ? KNN_METRIC_INNER_PRODUCT : KNN_METRIC_L2;
    if (h.metric != want)
        return s_bad(at0 + 29, "index header: metric_type", "%d disagrees with the fourcc", (int)h.metric);
    uint64_t at = r->off, n;
    if ((rc = s_get_u64(r, &n, "Flat vectors: count")))
        return rc;
    if (h.ntotal > UINT64_MAX / h.d || n != h.ntotal * h.d)
        return s_bad(at, "Flat vectors: count", "%" PRIu64 " floats, expected ntotal * d", n);
    if (n > s_left(r) / sizeof(float))
        return knn_error_set(
            KNN_ETRUNCATED, "byte %" PRIu64 ": Flat vectors: %" PRIu64 " floats, the file has %" PRIu64 " bytes left",
            r->off, n, s_left(r));

    struct knn_index_options o = KNN_INDEX_OPTIONS_INIT;
    o.type = KNN_INDEX_FLAT;
    o.metric = h.metric;
    o.dim = h.d;
    if ((rc = knn_index_new(&index, &o)))
        goto on_error;
    uint64_t lo = 0, hi = h.ntotal;
    if (sliced) {
        s_part_range(h.ntotal, r->part, r->nparts, KNN_PART_FLAT_ALIGN, &lo, &hi);
        r->info->ntotal = h.ntotal;
        r->info->id_offset = (int64_t)lo;
        if ((rc = s_skip(r, lo * h.d * sizeof(float), "Flat vectors")))
            goto on_error;
    }
    size_t chunk = hi - lo < S_FLAT_CHUNK ? (size_t)(hi - lo) : S_FLAT_CHUNK;
    if (chunk > 0 && !(buf = knn_malloc_array(chunk, h.d * sizeof(float)))) {
        rc = KNN_ENOMEM;
        goto on_error;
    }
    for (uint64_t i0 = lo; i0 < hi; i0 += chunk) {
        size_t nb = hi - i0 < chunk ? (size_t)(hi - i0) : chunk;
        at = r->off;
        if ((rc = s_get(r, buf, nb * h.d * sizeof(float), "Flat vectors")))
            goto on_error;
        if ((rc = knn_index_add(index, nb, buf))) {
            knn_error_wrap(rc, "byte %" PRIu64 ": Flat vectors", at);
            goto on_error;
        }
    }
    if (sliced && (rc = s_skip(r, (h.ntotal - hi) * h.d * sizeof(float), "Flat vectors")))
        goto on_error;
    knn_free(buf);
    *out = index;
    return 0;

on_error:
    knn_free(buf);
    knn_index_destroy(index);
    return rc;
}

/* Every id once, in [0, ntotal): our ids are the rows of model_algo-1.labels. */
static int s_check_ids(struct s_reader *r, uint64_t at, const int64_t *ids, size_t n, uint64_t ntotal, uint8_t *seen)
{
    for (size_t i = 0; i < n; i++) {
        int64_t id = ids[i];
        if (id < 0 || (uint64_t)id >= ntotal)
            return s_bad(at + 8 * i, "inverted lists: id", "%" PRIu64 " is outside [0, ntotal)", (uint64_t)id);
        if (seen[id >> 3] & (1u << (id & 7)))
            return s_bad(at + 8 * i, "inverted lists: id", "%" PRIu64 " appears twice", (uint64_t)id);
        seen[id >> 3] |= (uint8_t)(1u << (id & 7));
    }
    return 0;
}

static int s_check_finite(struct s_reader *r, uint64_t at, const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(v[i]))
            return knn_error_set(
                KNN_ERANGE, "byte %" PRIu64 ": inverted lists: vector value is not finite", at + 4 * i);
    }
    return 0;
}

static int s_read_invlists(struct s_reader *r, struct knn_index *index, uint64_t ntotal)
{
    const size_t nlist = index->opts.nlist, code_size = knn__ivf_code_size(index);
    uint64_t *sizes = NULL;
    uint8_t *seen = NULL;
    uint32_t h;
    uint64_t v, at;
    int rc;

    at = r->off;
    if ((rc = s_get(r, &h, 4, "inverted lists: fourcc")))
        return rc;
    if (h != S_FOURCC("ilar")) {
        char t[5];
        s_fourcc_text(h, t);
        return knn_error_set(
            KNN_EUNSUPPORTED,
            "byte %" PRIu64 ": inverted lists: type \"%s\" (only \"ilar\", "
            "lists stored in the file, is supported)",
            at, t);
    }
    at = r->off;
    if ((rc = s_get_u64(r, &v, "inverted lists: nlist")))
        return rc;
    if (v != nlist)
        return s_bad(at, "inverted lists: nlist", "%" PRIu64 " differs from the index's nlist", v);
    at = r->off;
    if ((rc = s_get_u64(r, &v, "inverted lists: code_size")))
        return rc;
    if (v != code_size)
        return s_bad(at, "inverted lists: code_size", "%" PRIu64 " differs from the index's code size", v);

    if (nlist > s_left(r) / 8)
        return knn_error_set(
            KNN_ETRUNCATED, "byte %" PRIu64 ": inverted lists: %zu list sizes, the file has %" PRIu64 " bytes left",
            r->off, nlist, s_left(r));
    if (!(sizes = knn_calloc(nlist, sizeof(uint64_t))))
        return KNN_ENOMEM;
    at = r->off;
    if ((rc = s_get(r, &h, 4, "inverted lists: size encoding")))
        goto on_error;
    if (h == S_FOURCC("full")) {
        at = r->off;
        if ((rc = s_get_u64(r, &v, "inverted lists: sizes count")))
            goto on_error;
        if (v != nlist) {
            rc = s_bad(at, "inverted lists: sizes count", "%" PRIu64 " differs from nlist", v);
            goto on_error;
        }
        if ((rc = s_get(r, sizes, nlist * 8, "inverted lists: sizes")))
            goto on_error;
    } else if (h == S_FOURCC("sprs")) {
        at = r->off;
        if ((rc = s_get_u64(r, &v, "inverted lists: sparse sizes count")))
            goto on_error;
        if (v % 2 != 0 || v / 2 > nlist) {
            rc = s_bad(at, "inverted lists: sparse sizes count", "%" PRIu64 " is not 2 x (at most nlist)", v);
            goto on_error;
        }
        for (uint64_t i = 0; i < v / 2; i++) {
            uint64_t pair[2];
            at = r->off;
            if ((rc = s_get(r, pair, 16, "inverted lists: sparse sizes")))
                goto on_error;
            if (pair[0] >= nlist) {
                rc = s_bad(at, "inverted lists: sparse sizes", "list %" PRIu64 " is outside [0, nlist)", pair[0]);
                goto on_error;
            }
            sizes[pair[0]] = pair[1];
        }
    } else {
        char t[5];
        s_fourcc_text(h, t);
        rc = knn_error_set(
            KNN_EFORMAT,
            "byte %" PRIu64 ": inverted lists: size encoding \"%s\" is not \"full\" or "
            "\"sprs\"",
            at, t);
        goto on_error;
    }

    /* All the lists must fit in what is left, and hold exactly ntotal entries, before allocating. */
    uint64_t sum = 0, per = code_size + 8;
    for (size_t l = 0; l < nlist; l++) {
        if (sizes[l] > s_left(r) / per || sum + sizes[l] > s_left(r) / per) {
            rc = knn_error_set(
                KNN_ETRUNCATED,
                "byte %" PRIu64 ": inverted lists: list %zu has %" PRIu64 " entries, "
                "more than the %" PRIu64 " bytes left can hold",
                r->off, l, sizes[l], s_left(r));
            goto on_error;
        }
        sum += sizes[l];
    }
    if (sum != ntotal) {
        rc = knn_error_set(
            KNN_EFORMAT,
            "byte %" PRIu64 ": inverted lists: they hold %" PRIu64 " entries, the header "
            "says ntotal = %" PRIu64,
            r->off, sum, ntotal);
        goto on_error;
    }
    if (ntotal > 0 && !(seen = knn_calloc((size_t)((ntotal + 7) / 8), 1))) {
        rc = KNN_ENOMEM;
        goto on_error;
    }
    /* A part holds its slice [lo, hi) of every list (a seek over the rest); the whole: all of it. */
    uint64_t held = 0;
    for (size_t l = 0; l < nlist; l++) {
        uint64_t lo = 0, hi = sizes[l];
        if (r->nparts > 0)
            s_part_range(sizes[l], r->part, r->nparts, KNN_PART_LIST_ALIGN, &lo, &hi);
        if (hi == lo) {
            if ((rc = s_skip(r, sizes[l] * per, "inverted lists: codes and ids")))
                goto on_error;
            continue;
        }
        uint8_t *codes;
        int64_t *ids;
        size_t n = (size_t)(hi - lo);
        if ((rc = knn__ivf_list_alloc(index, l, n, &codes, &ids)) ||
            (rc = s_skip(r, lo * code_size, "inverted lists: codes")))
            goto on_error;
        at = r->off;
        if ((rc = s_get(r, codes, n * code_size, "inverted lists: codes")))
            goto on_error;
        if (index->opts.type == KNN_INDEX_IVFFLAT &&
            (rc = s_check_finite(r, at, (const float *)codes, n * code_size / sizeof(float))))
            goto on_error;
        if ((rc = s_skip(r, (sizes[l] - hi) * code_size, "inverted lists: codes")) ||
            (rc = s_skip(r, lo * 8, "inverted lists: ids")))
            goto on_error;
        at = r->off;
        if ((rc = s_get(r, ids, n * 8, "inverted lists: ids")) || (rc = s_check_ids(r, at, ids, n, ntotal, seen)) ||
            (rc = knn__ivf_list_finish(index, l)) || (rc = s_skip(r, (sizes[l] - hi) * 8, "inverted lists: ids")))
            goto on_error;
        held += n;
    }
    index->ntotal = (size_t)held;
    if (r->info)
        r->info->ntotal = ntotal;

on_error:
    knn_free(sizes);
    knn_free(seen);
    return rc;
}

static int s_get_f32(struct s_reader *r, float *v, const char *field)
{
    return s_get(r, v, 4, field);
}

/*
 * IwSq after the direct map: FAISS's ScalarQuantizer (only QT_8bit is ours; the range statistic
 * only mattered at training), the code size and by_residual. *trained: 2d floats, knn_malloc'ed.
 */
static int s_read_sq(struct s_reader *r, size_t d, float **trained, int *by_residual)
{
    int32_t qtype, rangestat;
    float rs_arg;
    uint64_t sd, code_size, n, at = r->off;
    uint8_t br;
    int rc;
    if ((rc = s_get_i32(r, &qtype, "scalar quantizer: qtype")))
        return rc;
    if (qtype != KNN__SQ_QT_8BIT)
        return knn_error_set(
            KNN_EUNSUPPORTED, "byte %" PRIu64 ": scalar quantizer: qtype %d (only 0, QT_8bit, is supported)", at,
            (int)qtype);
    if ((rc = s_get_i32(r, &rangestat, "scalar quantizer: rangestat")) ||
        (rc = s_get_f32(r, &rs_arg, "scalar quantizer: rangestat_arg")))
        return rc;
    at = r->off;
    if ((rc = s_get_u64(r, &sd, "scalar quantizer: d")))
        return rc;
    if (sd != d)
        return s_bad(at, "scalar quantizer: d", "%" PRIu64 " differs from the index's d", sd);
    at = r->off;
    if ((rc = s_get_u64(r, &code_size, "scalar quantizer: code_size")))
        return rc;
    if (code_size != d)
        return s_bad(at, "scalar quantizer: code_size", "%" PRIu64 " is not d bytes", code_size);
    at = r->off;
    if ((rc = s_get_u64(r, &n, "scalar quantizer: trained count")))
        return rc;
    if (n != 2 * (uint64_t)d)
        return s_bad(at, "scalar quantizer: trained count", "%" PRIu64 " floats, expected 2 * d", n);
    if (n > s_left(r) / sizeof(float))
        return knn_error_set(
            KNN_ETRUNCATED, "byte %" PRIu64 ": scalar quantizer: ranges need %" PRIu64 " bytes, the file has %" PRIu64
            " left", r->off, n * 4, s_left(r));
    float *t = knn_malloc_array((size_t)n, sizeof(float));
    if (!t)
        return KNN_ENOMEM;
    at = r->off;
    if ((rc = s_get(r, t, (size_t)n * sizeof(float), "scalar quantizer: ranges")))
        goto on_error;
    for (uint64_t i = 0; i < n; i++) {
        if (!isfinite(t[i]) || (i >= d && t[i] < 0)) {
            rc = knn_error_set(KNN_ERANGE, "byte %" PRIu64 ": scalar quantizer: range value %g is %s", at + 4 * i,
                               (double)t[i], isfinite(t[i]) ? "a negative width" : "not finite");
            goto on_error;
        }
    }
    at = r->off;
    if ((rc = s_get_u64(r, &code_size, "IVF-SQ: code_size")))
        goto on_error;
    if (code_size != d) {
        rc = s_bad(at, "IVF-SQ: code_size", "%" PRIu64 " is not d bytes", code_size);
        goto on_error;
    }
    at = r->off;
    if ((rc = s_get_u8(r, &br, "IVF-SQ: by_residual")))
        goto on_error;
    if (br > 1) {
        rc = s_bad(at, "IVF-SQ: by_residual", "%u is not a bool", (unsigned)br);
        goto on_error;
    }
    *by_residual = br;
    *trained = t;
    return 0;
on_error:
    knn_free(t);
    return rc;
}

/* The rest of an IwFl / IwPQ / IwSq after its fourcc. */
static int s_read_ivf(struct s_reader *r, struct knn_index **out, uint32_t fourcc, int depth)
{
    const int pq = fourcc == S_FOURCC("IwPQ"), sq = fourcc == S_FOURCC("IwSq");
    struct s_header h;
    struct knn_index *index = NULL, *quantizer = NULL;
    float *centroids = NULL;
    uint64_t nlist, nprobe, at;
    int rc;

    if ((rc = s_read_header(r, &h)))
        return rc;
    if (!h.is_trained)
        return knn_error_set(KNN_EUNSUPPORTED, "byte %" PRIu64 ": the IVF index is not trained", r->off);
    at = r->off;
    if ((rc = s_get_u64(r, &nlist, "IVF: nlist")))
        return rc;
    if (nlist == 0 || nlist > INT32_MAX)
        return s_bad(at, "IVF: nlist", "%" PRIu64 " is outside [1, 2^31 - 1]", nlist);
    if (nlist > s_left(r) / (h.d * sizeof(float)))
        return knn_error_set(
            KNN_ETRUNCATED,
            "byte %" PRIu64 ": IVF: nlist: %" PRIu64 " centroids of d = %zu do not "
            "fit in the %" PRIu64 " bytes left",
            at, nlist, h.d, s_left(r));
    at = r->off;
    if ((rc = s_get_u64(r, &nprobe, "IVF: nprobe")))
        return rc;
    if (nprobe == 0 || nprobe > nlist)
        nprobe = nprobe == 0 ? 1 : nlist;

    at = r->off;
    if ((rc = s_read_index(r, &quantizer, depth + 1))) {
        knn_error_wrap(rc, "IVF quantizer");
        goto on_error;
    }
    if (quantizer->opts.type != KNN_INDEX_FLAT || quantizer->opts.dim != h.d || quantizer->ntotal != nlist) {
        rc = knn_error_set(
            KNN_EFORMAT, "byte %" PRIu64 ": IVF quantizer: not a Flat index of nlist = %" PRIu64 " vectors of d = %zu",
            at, nlist, h.d);
        goto on_error;
    }

    /* The direct map: we keep none (FAISS's default); skip one if the file has it. */
    uint8_t dm_type;
    uint64_t n;
    at = r->off;
    if ((rc = s_get_u8(r, &dm_type, "IVF direct map: type")))
        goto on_error;
    if (dm_type > 2) {
        rc = s_bad(at, "IVF direct map: type", "%u is not 0, 1 or 2", (unsigned)dm_type);
        goto on_error;
    }
    if ((rc = s_get_u64(r, &n, "IVF direct map: array size")) ||
        (rc = s_skip(r, n > UINT64_MAX / 8 ? UINT64_MAX : n * 8, "IVF direct map: array")))
        goto on_error;
    if (dm_type == 2 && ((rc = s_get_u64(r, &n, "IVF direct map: hash table size")) ||
                         (rc = s_skip(r, n > UINT64_MAX / 16 ? UINT64_MAX : n * 16, "IVF direct map: hash table"))))
        goto on_error;

    struct knn_index_options o = KNN_INDEX_OPTIONS_INIT;
    o.type = pq ? KNN_INDEX_IVFPQ : sq ? KNN_INDEX_IVFSQ8 : KNN_INDEX_IVFFLAT;
    o.metric = h.metric;
    o.dim = h.d;
    o.nlist = (size_t)nlist;
    o.nprobe = (size_t)nprobe;
    int by_residual = 1;
    if (sq && (rc = s_read_sq(r, h.d, &centroids, &by_residual)))
        goto on_error;
    if (pq) {
        uint8_t br;
        uint64_t code_size, pd, m, nbits;
        at = r->off;
        if ((rc = s_get_u8(r, &br, "IVFPQ: by_residual")))
            goto on_error;
        if (br > 1) {
            rc = s_bad(at, "IVFPQ: by_residual", "%u is not a bool", (unsigned)br);
            goto on_error;
        }
        by_residual = br;
        at = r->off;
        if ((rc = s_get_u64(r, &code_size, "IVFPQ: code_size")))
            goto on_error;
        uint64_t at_pq = r->off;
        if ((rc = s_get_u64(r, &pd, "product quantizer: d")) || (rc = s_get_u64(r, &m, "product quantizer: M")) ||
            (rc = s_get_u64(r, &nbits, "product quantizer: nbits")))
            goto on_error;
        if (pd != h.d) {
            rc = s_bad(at_pq, "product quantizer: d", "%" PRIu64 " differs from the index's d", pd);
            goto on_error;
        }
        if (m == 0 || h.d % m != 0) {
            rc = s_bad(at_pq + 8, "product quantizer: M", "%" PRIu64 " does not divide d", m);
            goto on_error;
        }
        if (nbits != KNN__PQ_NBITS) {
            rc = knn_error_set(
                KNN_EUNSUPPORTED,
                "byte %" PRIu64 ": product quantizer: nbits = %" PRIu64 " (only 8 "
                "is supported)",
                at_pq + 16, nbits);
            goto on_error;
        }
        if (code_size != m) {
            rc = s_bad(at, "IVFPQ: code_size", "%" PRIu64 " is not M bytes", code_size);
            goto on_error;
        }
        if (h.metric != KNN_METRIC_L2) {
            rc = knn_error_set(KNN_EUNSUPPORTED, "IVFPQ with the inner-product metric is not supported");
            goto on_error;
        }
        o.pq_m = (size_t)m;
        at = r->off;
        if ((rc = s_get_u64(r, &n, "product quantizer: centroids count")))
            goto on_error;
        if (n != (uint64_t)KNN__PQ_KSUB * h.d) {
            rc = s_bad(at, "product quantizer: centroids count", "%" PRIu64 " floats, expected 256 * d", n);
            goto on_error;
        }
        if (n > s_left(r) / sizeof(float)) {
            rc = knn_error_set(
                KNN_ETRUNCATED,
                "byte %" PRIu64 ": product quantizer: centroids need %" PRIu64 " bytes, the file has %" PRIu64 " left",
                r->off, n * 4, s_left(r));
            goto on_error;
        }
        if (!(centroids = knn_malloc_array((size_t)n, sizeof(float)))) {
            rc = KNN_ENOMEM;
            goto on_error;
        }
        at = r->off;
        if ((rc = s_get(r, centroids, (size_t)n * sizeof(float), "product quantizer: centroids")))
            goto on_error;
        for (uint64_t i = 0; i < n; i++) {
            if (!isfinite(centroids[i])) {
                rc = knn_error_set(
                    KNN_ERANGE, "byte %" PRIu64 ": product quantizer: centroid value is not finite", at + 4 * i);
                goto on_error;
            }
        }
    }

    if ((rc = knn_index_new(&index, &o)))
        goto on_error;
    rc = knn__ivf_install(index, quantizer, centroids, by_residual);
    quantizer = NULL; /* taken */
    if (rc)
        goto on_error;
    if ((rc = s_read_invlists(r, index, h.ntotal)))
        goto on_error;
    knn_free(centroids);
    *out = index;
    return 0;

on_error:
    knn_index_destroy(quantizer);
    knn_index_destroy(index);
    knn_free(centroids);
    return rc;
}

/* A FAISS vector of `elem`-byte items: u64 n then the items, n checked against the bytes left. */
static int s_get_vec(struct s_reader *r, void **out, size_t *n_out, size_t elem, const char *field)
{
    uint64_t n, at = r->off;
    int rc = s_get_u64(r, &n, field);
    if (rc)
        return rc;
    if (n > s_left(r) / elem)
        return knn_error_set(KNN_ETRUNCATED,
                             "byte %" PRIu64 ": %s: %" PRIu64 " items of %zu bytes, the file has %" PRIu64 " left",
                             at, field, n, elem, s_left(r));
    void *p = knn_malloc_array(n ? (size_t)n : 1, elem);
    if (!p)
        return KNN_ENOMEM;
    if ((rc = s_get(r, p, (size_t)n * elem, field))) {
        knn_free(p);
        return rc;
    }
    *out = p;
    *n_out = (size_t)n;
    return 0;
}

/* The rest of an IHNf after its fourcc: the graph, then the Flat storage. */
static int s_read_hnsw(struct s_reader *r, struct knn_index **out, int depth)
{
    struct s_header h;
    struct knn__hnsw_graph g;
    struct knn_index *index = NULL, *storage = NULL;
    size_t nlevels = 0, noffsets = 0;
    uint64_t at;
    int rc;
    memset(&g, 0, sizeof(g));
    if (r->nparts > 0)
        return knn_error_set(KNN_EUNSUPPORTED, "an HNSW index cannot be read in parts (it is one graph)");
    if ((rc = s_read_header(r, &h)))
        return rc;
    if (h.ntotal > INT32_MAX)
        return knn_error_set(KNN_EFORMAT, "HNSW: %" PRIu64 " vectors, more than FAISS's 2^31 - 1", h.ntotal);
    if ((rc = s_get_vec(r, (void **)&g.assign_probas, &g.nprobas, sizeof(double), "HNSW: assign_probas")) ||
        (rc = s_get_vec(r, (void **)&g.cum_nneighbor_per_level, &g.ncum, sizeof(int32_t),
                        "HNSW: cum_nneighbor_per_level")))
        goto on_error;
    at = r->off;
    if ((rc = s_get_vec(r, (void **)&g.levels, &nlevels, sizeof(int32_t), "HNSW: levels")))
        goto on_error;
    if (nlevels != h.ntotal) {
        rc = s_bad(at, "HNSW: levels", "%zu entries for %" PRIu64 " vectors", nlevels, h.ntotal);
        goto on_error;
    }
    at = r->off;
    if ((rc = s_get_vec(r, (void **)&g.offsets, &noffsets, sizeof(uint64_t), "HNSW: offsets")))
        goto on_error;
    if (noffsets != h.ntotal + 1) {
        rc = s_bad(at, "HNSW: offsets", "%zu entries for %" PRIu64 " vectors", noffsets, h.ntotal);
        goto on_error;
    }
    if ((rc = s_get_vec(r, (void **)&g.neighbors, &g.nneighbors, sizeof(int32_t), "HNSW: neighbors")) ||
        (rc = s_get_i32(r, &g.entry_point, "HNSW: entry_point")) ||
        (rc = s_get_i32(r, &g.max_level, "HNSW: max_level")) ||
        (rc = s_get_i32(r, &g.ef_construction, "HNSW: efConstruction")) ||
        (rc = s_get_i32(r, &g.ef_search, "HNSW: efSearch")) || (rc = s_get_i32(r, &g.upper_beam, "HNSW: upper_beam")))
        goto on_error;
    at = r->off;
    if ((rc = s_read_index(r, &storage, depth + 1))) {
        knn_error_wrap(rc, "HNSW storage");
        goto on_error;
    }
    if (storage->opts.type != KNN_INDEX_FLAT || storage->opts.dim != h.d || storage->ntotal != h.ntotal ||
        storage->opts.metric != h.metric) {
        rc = knn_error_set(KNN_EFORMAT,
                           "byte %" PRIu64 ": HNSW storage: not a Flat index of the header's %" PRIu64
                           " vectors of d = %zu and its metric",
                           at, h.ntotal, h.d);
        goto on_error;
    }
    struct knn_index_options o = KNN_INDEX_OPTIONS_INIT;
    o.type = KNN_INDEX_HNSW;
    o.metric = h.metric;
    o.dim = h.d;
    if ((rc = knn_index_new(&index, &o)))
        goto on_error;
    rc = knn__hnsw_install(index, &g, storage);
    storage = NULL; /* taken */
    if (rc) {
        knn_error_wrap(rc, "byte %" PRIu64, at);
        goto on_error;
    }
    *out = index;
    return 0;
on_error:
    knn__hnsw_graph_clean_up(&g);
    knn_index_destroy(storage);
    knn_index_destroy(index);
    return rc;
}

static int s_read_index(struct s_reader *r, struct knn_index **out, int depth)
{
    uint32_t h;
    uint64_t at = r->off;
    int rc = s_get(r, &h, 4, "index fourcc");
    if (rc)
        return rc;
    if (h == S_FOURCC("IxF2") || h == S_FOURCC("IxFI"))
        return s_read_flat(r, out, h, depth == 0 && r->nparts > 0);
    if ((h == S_FOURCC("IwFl") || h == S_FOURCC("IwPQ") || h == S_FOURCC("IwSq")) && depth == 0)
        return s_read_ivf(r, out, h, depth);
    if (h == S_FOURCC("IHNf") && depth == 0)
        return s_read_hnsw(r, out, depth);
    char t[5];
    s_fourcc_text(h, t);
    if (depth > 0)
        return knn_error_set(
            KNN_EUNSUPPORTED,
            "byte %" PRIu64 ": index fourcc \"%s\": an IVF quantizer must be a "
            "Flat index (IxF2 or IxFI), as must an HNSW storage",
            at, t);
    return knn_error_set(
        KNN_EUNSUPPORTED,
        "byte %" PRIu64 ": index fourcc \"%s\" is not one we read (IxF2, IxFI, "
        "IwFl, IwPQ, IwSq, IHNf)",
        at, t);
}

/* A whole file's index: nothing may follow it. */
static int s_read_top(struct s_reader *r, struct knn_index **out)
{
    struct knn_index *index = NULL;
    int rc = s_read_index(r, &index, 0);
    if (rc)
        return rc;
    if (s_left(r) != 0) {
        knn_index_destroy(index);
        return knn_error_set(
            KNN_EFORMAT, "byte %" PRIu64 ": %" PRIu64 " bytes follow the end of the index", r->off, s_left(r));
    }
    *out = index;
    return 0;
}

int knn_index_read_faiss(struct knn_index **out, knn_read_fn *read, void *user, uint64_t total_len)
{
    if (!out || !read)
        return knn_error_set(KNN_EINVAL, "FAISS index: NULL argument");
    *out = NULL;
    struct s_reader r = {read, user, 0, total_len, NULL, 0, 0, NULL};
    return s_read_top(&r, out);
}

int knn_index_read_faiss_part(
    struct knn_index **out, struct knn_index_part_info *info, knn_pread_fn *pread, void *user, uint64_t total_len,
    size_t part, size_t nparts)
{
    if (!out || !info || !pread)
        return knn_error_set(KNN_EINVAL, "FAISS index: NULL argument");
    *out = NULL;
    if (nparts == 0 || part >= nparts)
        return knn_error_set(KNN_EINVAL, "FAISS index: part %zu of %zu does not exist", part, nparts);
    memset(info, 0, sizeof(*info));
    struct s_reader r = {NULL, user, 0, total_len, pread, part, nparts, info};
    int rc = s_read_top(&r, out);
    if (rc == 0)
        info->held = knn_index_ntotal(*out);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Files                                                                                        */
/* ------------------------------------------------------------------------------------------ */

static int s_file_write(void *user, const void *data, size_t len)
{
    if (fwrite(data, 1, len, user) != len)
        return knn_error_set(KNN_EIO, "write failed: %s", strerror(errno));
    return 0;
}

static int s_file_read(void *user, void *data, size_t len)
{
    FILE *f = user;
    if (fread(data, 1, len, f) != len)
        return ferror(f) ? knn_error_set(KNN_EIO, "read failed: %s", strerror(errno))
                         : knn_error_set(KNN_ETRUNCATED, "the file ended early");
    return 0;
}

int knn_index_write_faiss_file(const struct knn_index *index, const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return knn_error_set(KNN_EIO, "%s: cannot create: %s", path, strerror(errno));
    int rc = knn_index_write_faiss(index, s_file_write, f);
    if (rc == 0 && (fflush(f) != 0 || fsync(fileno(f)) != 0))
        rc = knn_error_set(KNN_EIO, "write failed: %s", strerror(errno));
    if (fclose(f) != 0 && rc == 0)
        rc = knn_error_set(KNN_EIO, "close failed: %s", strerror(errno));
    if (rc)
        return knn_error_wrap(rc, "%s", path);
    return 0;
}

int knn_index_read_faiss_file(struct knn_index **out, const char *path)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return knn_error_set(errno == ENOENT ? KNN_ENOTFOUND : KNN_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    int rc;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode))
        rc = knn_error_set(KNN_EIO, "not a regular file");
    else
        rc = knn_index_read_faiss(out, s_file_read, f, (uint64_t)st.st_size);
    fclose(f);
    if (rc)
        return knn_error_wrap(rc, "%s", path);
    return 0;
}
