#ifndef KNN_TEST_RECORDIO_UTIL_H
#define KNN_TEST_RECORDIO_UTIL_H

/* Helpers shared by the recordio test files: fixtures, chunked reading, record collection. */

#include "knn/recordio/reader.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* The records a reader produced (copied out of the callback), and how it ended. */
struct rt_records {
    size_t n;
    size_t cap;
    uint8_t **data;
    size_t *len;
    uint64_t *index;
    uint64_t *offset;
    int rc;         /* 0, or the first error of feed/finish */
    char msg[1024]; /* its message */
};

#define RT_WHOLE ((size_t)-1)

/* Read `len` bytes in chunks of `chunk` bytes (RT_WHOLE: one chunk) with a fresh reader. */
int rt_read_records(struct rt_records *out, const uint8_t *data, size_t len, size_t chunk, size_t max_record_bytes);
void rt_records_clean_up(struct rt_records *r);

/* A fixture: fixtures/recordio/<name>.rec and its .json (NULL when there is none). */
struct rt_fixture {
    uint8_t *data;
    size_t len;
    json_t *json;
};
int rt_fixture_load(struct rt_fixture *f, const char *name);
void rt_fixture_clean_up(struct rt_fixture *f);

/* The small fixtures that carry every record in their JSON. */
extern const char *const rt_small_fixtures[];

/* A JSON number as a double (integer or real). */
double rt_json_number(const json_t *v);

/* Hex string ("0a 23 d7") to bytes; returns the count. */
size_t rt_hex(uint8_t *out, size_t cap, const char *hex);

#endif
