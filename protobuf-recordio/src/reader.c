/* The RecordIO frame reader: a byte-at-a-time-safe state machine over header, payload, padding. */
#include "knn/recordio/reader.h"

#include "knn/common/alloc.h"
#include "knn/common/buf.h"
#include "knn/common/error.h"

#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "protobuf-recordio assumes a little-endian host (as the SDK and every real RecordIO file do)"
#endif

enum s_state {
    S_HEADER,  /* collecting the 8 header bytes */
    S_PAYLOAD, /* frame_left payload bytes to go */
    S_PADDING, /* pad_left padding bytes to skip */
};

enum s_cflag {
    S_CFLAG_WHOLE = 0,
    S_CFLAG_FIRST = 1,
    S_CFLAG_MIDDLE = 2,
    S_CFLAG_LAST = 3,
};

struct knn_recordio_reader {
    size_t max_record_bytes;
    enum s_state state;
    uint8_t header[8];
    size_t header_len;
    uint64_t header_offset; /* offset of the frame header being read / last read */
    uint32_t frame_len;
    uint32_t frame_left;
    uint32_t pad_left;
    unsigned cflag;
    int in_split;  /* inside a split record (after its first piece's header) */
    int buffering; /* the record's payload is being assembled in `record` */
    struct knn_buf record;
    uint64_t offset;        /* bytes consumed */
    uint64_t record_offset; /* header offset of the record being read */
    uint64_t index;         /* index of the record being read = records completed */
    int failed;             /* sticky error */
};

static uint32_t s_le32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

int knn_recordio_reader_new(struct knn_recordio_reader **out, const struct knn_recordio_reader_options *options)
{
    struct knn_recordio_reader *r = knn_calloc(1, sizeof(*r));
    if (!r)
        return KNN_ENOMEM;
    r->max_record_bytes =
        options && options->max_record_bytes ? options->max_record_bytes : KNN_RECORDIO_DEFAULT_MAX_RECORD_BYTES;
    knn_buf_init(&r->record, r->max_record_bytes);
    r->state = S_HEADER;
    *out = r;
    return 0;
}

void knn_recordio_reader_destroy(struct knn_recordio_reader *reader)
{
    if (!reader)
        return;
    knn_buf_clean_up(&reader->record);
    knn_free(reader);
}

uint64_t knn_recordio_reader_records(const struct knn_recordio_reader *reader)
{
    return reader->index;
}

uint64_t knn_recordio_reader_offset(const struct knn_recordio_reader *reader)
{
    return reader->offset;
}

static int s_fail(struct knn_recordio_reader *r, int rc)
{
    r->failed = rc;
    return rc;
}

/* A complete 8-byte header is in `h`: check it and set up the frame. */
static int s_start_frame(struct knn_recordio_reader *r, const uint8_t *h)
{
    uint32_t magic = s_le32(h);
    uint32_t word = s_le32(h + 4);
    if (magic != KNN_RECORDIO_MAGIC)
        return knn_error_set(
            KNN_ERECORDIO_MAGIC, "record %llu at offset %llu: bad magic 0x%08x (expected 0x%08x)",
            (unsigned long long)r->index, (unsigned long long)r->header_offset, magic, KNN_RECORDIO_MAGIC);
    unsigned cflag = word >> 29;
    uint32_t len = word & KNN_RECORDIO_MAX_FRAME_LEN;
    if (cflag > S_CFLAG_LAST)
        return knn_error_set(
            KNN_EFORMAT, "record %llu at offset %llu: invalid continuation flag %u", (unsigned long long)r->index,
            (unsigned long long)r->header_offset, cflag);
    if (!r->in_split && (cflag == S_CFLAG_MIDDLE || cflag == S_CFLAG_LAST))
        return knn_error_set(
            KNN_EFORMAT, "record %llu at offset %llu: continuation frame (flag %u) without a first piece",
            (unsigned long long)r->index, (unsigned long long)r->header_offset, cflag);
    if (r->in_split && (cflag == S_CFLAG_WHOLE || cflag == S_CFLAG_FIRST))
        return knn_error_set(
            KNN_EFORMAT,
            "record %llu at offset %llu: split record not finished when a new one starts at offset %llu (flag %u)",
            (unsigned long long)r->index, (unsigned long long)r->record_offset, (unsigned long long)r->header_offset,
            cflag);

    if (!r->in_split)
        r->record_offset = r->header_offset;
    /* Total payload so far, with the magic put back between pieces: check before taking any byte. */
    size_t total = r->in_split ? r->record.len + 4 : 0;
    if (total > r->max_record_bytes || len > r->max_record_bytes - total)
        return knn_error_set(
            KNN_ETOOBIG, "record %llu at offset %llu: length %llu is over the cap of %zu bytes",
            (unsigned long long)r->index, (unsigned long long)r->record_offset, (unsigned long long)total + len,
            r->max_record_bytes);
    if (r->in_split) {
        static const uint8_t magic_bytes[4] = {0x0a, 0x23, 0xd7, 0xce};
        int rc = knn_buf_append(&r->record, magic_bytes, 4);
        if (rc)
            return rc;
    }
    if (cflag == S_CFLAG_FIRST) {
        r->in_split = 1;
        r->buffering = 1;
    }
    r->cflag = cflag;
    r->frame_len = len;
    r->frame_left = len;
    r->pad_left = (4 - (len & 3)) & 3;
    r->state = S_PAYLOAD;
    return 0;
}

/* The current frame's payload is complete; emit the record if it was the last piece. */
static int s_end_frame(struct knn_recordio_reader *r, const uint8_t *direct, knn_recordio_record_fn *fn, void *user)
{
    r->state = r->pad_left ? S_PADDING : S_HEADER;
    if (r->cflag == S_CFLAG_FIRST || r->cflag == S_CFLAG_MIDDLE)
        return 0;
    struct knn_recordio_record rec;
    if (direct) {
        rec.data = direct;
        rec.len = r->frame_len;
    } else {
        rec.data = r->record.data ? r->record.data : (const uint8_t *)"";
        rec.len = r->record.len;
    }
    rec.index = r->index;
    rec.offset = r->record_offset;
    r->in_split = 0;
    r->buffering = 0;
    int rc = fn(user, &rec);
    knn_buf_reset(&r->record);
    r->index++;
    return rc;
}

int knn_recordio_reader_feed(
    struct knn_recordio_reader *r, const void *data, size_t len, knn_recordio_record_fn *fn, void *user)
{
    if (r->failed)
        return knn_error_set(r->failed, "RecordIO reader already stopped by an earlier error");
    const uint8_t *p = data;
    const uint8_t *end = p + len;
    int rc = 0;
    while (p < end) {
        size_t avail = (size_t)(end - p);
        switch (r->state) {
            case S_HEADER:
                if (r->header_len == 0)
                    r->header_offset = r->offset;
                if (r->header_len == 0 && avail >= 8) {
                    rc = s_start_frame(r, p);
                    p += 8;
                    r->offset += 8;
                } else {
                    size_t take = 8 - r->header_len < avail ? 8 - r->header_len : avail;
                    memcpy(r->header + r->header_len, p, take);
                    r->header_len += take;
                    p += take;
                    r->offset += take;
                    if (r->header_len < 8)
                        break;
                    r->header_len = 0;
                    rc = s_start_frame(r, r->header);
                }
                if (!rc && r->frame_left == 0)
                    rc = s_end_frame(r, NULL, fn, user);
                break;
            case S_PAYLOAD:
                if (!r->buffering && avail >= r->frame_left) {
                    /* The whole payload is in this chunk: no copy. */
                    const uint8_t *payload = p;
                    p += r->frame_left;
                    r->offset += r->frame_left;
                    r->frame_left = 0;
                    rc = s_end_frame(r, payload, fn, user);
                } else {
                    size_t take = avail < r->frame_left ? avail : r->frame_left;
                    r->buffering = 1;
                    rc = knn_buf_append(&r->record, p, take);
                    if (rc)
                        break;
                    p += take;
                    r->offset += take;
                    r->frame_left -= (uint32_t)take;
                    if (r->frame_left == 0)
                        rc = s_end_frame(r, NULL, fn, user);
                }
                break;
            case S_PADDING: {
                size_t take = avail < r->pad_left ? avail : r->pad_left;
                p += take;
                r->offset += take;
                r->pad_left -= (uint32_t)take;
                if (r->pad_left == 0)
                    r->state = S_HEADER;
                break;
            }
        }
        if (rc)
            return s_fail(r, rc);
    }
    return 0;
}

int knn_recordio_reader_finish(struct knn_recordio_reader *r)
{
    if (r->failed)
        return knn_error_set(r->failed, "RecordIO reader already stopped by an earlier error");
    switch (r->state) {
        case S_HEADER:
            if (r->header_len)
                return s_fail(
                    r, knn_error_set(
                           KNN_ETRUNCATED,
                           "record %llu at offset %llu: truncated header (the data ends after %zu of its 8 bytes)",
                           (unsigned long long)r->index, (unsigned long long)r->header_offset, r->header_len));
            if (r->in_split)
                return s_fail(
                    r, knn_error_set(
                           KNN_ETRUNCATED,
                           "record %llu at offset %llu: the data ends before the split record's last piece",
                           (unsigned long long)r->index, (unsigned long long)r->record_offset));
            return 0;
        case S_PAYLOAD:
            return s_fail(
                r, knn_error_set(
                       KNN_ETRUNCATED,
                       "record %llu at offset %llu: truncated record (length %u, but the data ends after %u payload "
                       "bytes)",
                       (unsigned long long)r->index, (unsigned long long)r->header_offset, r->frame_len,
                       r->frame_len - r->frame_left));
        case S_PADDING:
            if (r->in_split)
                return s_fail(
                    r, knn_error_set(
                           KNN_ETRUNCATED,
                           "record %llu at offset %llu: the data ends before the split record's last piece",
                           (unsigned long long)r->index, (unsigned long long)r->record_offset));
            /* The last record may come without (all of) its padding. */
            return 0;
    }
    return 0;
}
