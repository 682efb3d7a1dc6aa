#ifndef KNN_RECORDIO_READER_H
#define KNN_RECORDIO_READER_H

/**
 * The RecordIO frame reader: byte chunks in, record payloads out.
 *
 * A RecordIO stream (spec section 4.3) is a sequence of frames: the magic 0xCED7230A and a length
 * word (both little-endian uint32; the length word's low 29 bits are the payload length, its top
 * 3 bits a continuation flag), the payload, then zero to three padding bytes up to a multiple of
 * four. A payload split over several frames (flags 1 = first, 2 = middle, 3 = last) is
 * reassembled with the 4 magic bytes put back between the pieces, as dmlc-core does. The SageMaker
 * SDK never splits and never sets the flag; we read both. Padding bytes are skipped, not checked;
 * the last record of a stream may lack its padding.
 *
 * Feed the bytes in chunks of any size as they arrive (the reader never needs the whole stream),
 * then call knn_recordio_reader_finish() at the end of the data. Each complete record is handed to
 * a callback. When a record lies whole inside one chunk it is passed without copying; otherwise it
 * is assembled in an internal buffer that grows only as bytes arrive, up to the cap.
 *
 * Errors (the message names the record index, 0-based, and the byte offset of its frame header):
 *   KNN_ERECORDIO_MAGIC  a frame does not start with the magic;
 *   KNN_ETOOBIG          a record's length is over options.max_record_bytes;
 *   KNN_EFORMAT          an impossible continuation-flag sequence;
 *   KNN_ETRUNCATED       (from finish) the data ends inside a header, a payload or a split record;
 *   KNN_ENOMEM, or whatever the callback returned.
 * After an error the reader is stopped: every later call returns the same code.
 *
 * Not thread-safe: one reader per stream.
 */

#include <stddef.h>
#include <stdint.h>

/** The RecordIO magic number (bytes 0a 23 d7 ce on disk). */
#define KNN_RECORDIO_MAGIC 0xCED7230Au
/** Largest payload one frame can carry (29 bits). */
#define KNN_RECORDIO_MAX_FRAME_LEN ((1u << 29) - 1)
/** Default cap on one record's (reassembled) payload: 64 MiB. Real records are a few KiB. */
#define KNN_RECORDIO_DEFAULT_MAX_RECORD_BYTES ((size_t)64 << 20)

/** One record: a view valid only during the callback. */
struct knn_recordio_record {
    const uint8_t *data; /* the payload: one serialized aialgs.data.Record */
    size_t len;
    uint64_t index;  /* 0-based position of the record in the stream */
    uint64_t offset; /* byte offset of the record's (first) frame header in the stream */
};

/**
 * Called for each complete record. Return 0 to go on; any other value stops the reader and is
 * returned from knn_recordio_reader_feed() (so return a KNN_E* code after knn_error_set()).
 */
typedef int(knn_recordio_record_fn)(void *user, const struct knn_recordio_record *record);

struct knn_recordio_reader_options {
    size_t max_record_bytes; /* cap on one record's payload; 0 means the default */
};

#define KNN_RECORDIO_READER_OPTIONS_INIT                                                                               \
    {                                                                                                                  \
        KNN_RECORDIO_DEFAULT_MAX_RECORD_BYTES                                                                          \
    }

struct knn_recordio_reader;

/** Create a reader. `options` may be NULL for the defaults. KNN_ENOMEM. */
int knn_recordio_reader_new(struct knn_recordio_reader **out, const struct knn_recordio_reader_options *options);

/** Free the reader (NULL is fine). */
void knn_recordio_reader_destroy(struct knn_recordio_reader *reader);

/**
 * Consume `len` bytes (the next part of the stream), calling `fn` for every record completed by
 * them. The chunk is not kept after the call returns.
 */
int knn_recordio_reader_feed(
    struct knn_recordio_reader *reader, const void *data, size_t len, knn_recordio_record_fn *fn, void *user);

/**
 * Declare the end of the stream: returns 0 if it ended cleanly between records (or inside the
 * last record's padding), KNN_ETRUNCATED if it ended inside a header, a payload or a split record.
 */
int knn_recordio_reader_finish(struct knn_recordio_reader *reader);

/** Records completed so far. */
uint64_t knn_recordio_reader_records(const struct knn_recordio_reader *reader);

/** Bytes consumed so far (the offset of the next byte in the stream). */
uint64_t knn_recordio_reader_offset(const struct knn_recordio_reader *reader);

#endif
