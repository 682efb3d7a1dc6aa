#ifndef KNN_RUNNER_MIME_H
#define KNN_RUNNER_MIME_H

/**
 * Content-Type and Accept values of the inference endpoint and batch transform (spec §3.4):
 * `type/subtype` compared case-insensitively, parameters split on `;`, names case-insensitive,
 * spaces trimmed. Recognized parameters: `label_size` (integer >= 0, CSV), `verbose`
 * (`true`/`false`, any case), `charset` / `encoding` (only UTF-8 and US-ASCII are accepted);
 * others (`q`, ...) are ignored. Pure functions, thread-safe.
 */

#include <stddef.h>

enum knn_media {
    KNN_MEDIA_NONE = 0,      /* header absent or empty */
    KNN_MEDIA_ANY,           /* "*" + "/" + "*" (or application/ + "*") */
    KNN_MEDIA_CSV,           /* text/csv */
    KNN_MEDIA_JSON,          /* application/json */
    KNN_MEDIA_JSONLINES,     /* application/jsonlines */
    KNN_MEDIA_RECORDIO_PB,   /* application/x-recordio-protobuf */
    KNN_MEDIA_UNKNOWN,       /* well-formed but none of the above */
};

struct knn_mime {
    enum knn_media media;
    int verbose;    /* verbose=true */
    int label_size; /* -1 when absent */
};

#define KNN_MIME_INIT {KNN_MEDIA_NONE, 0, -1}

/**
 * Parse one media type with parameters, e.g. "application/jsonlines; verbose=True". A NULL or
 * blank value gives KNN_MEDIA_NONE. An unknown type gives KNN_MEDIA_UNKNOWN (not an error).
 * Errors: KNN_EFORMAT for a malformed value or parameter (bad label_size, verbose=maybe, no
 * slash), KNN_EUNSUPPORTED for a charset other than UTF-8 / US-ASCII.
 */
int knn_mime_parse(struct knn_mime *out, const char *value);

/**
 * Pick the response type from an Accept header: a comma-separated list, taken in order; the
 * first entry we can produce wins (any-type wildcards such as `application/` + `*` mean `fallback`). A NULL or blank
 * header means `fallback`. KNN_EUNSUPPORTED (HTTP 406) when no entry can be produced;
 * KNN_EFORMAT for a malformed entry that would otherwise be chosen.
 */
int knn_mime_negotiate(struct knn_mime *out, const char *accept, const struct knn_mime *fallback);

/** "text/csv", "application/json", ...; "" for NONE/ANY/UNKNOWN. */
const char *knn_media_name(enum knn_media media);

#endif
