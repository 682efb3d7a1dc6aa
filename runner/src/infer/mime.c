#include "infer/mime.h"

#include "knn/common/error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
    enum knn_media media;
    const char *name;
} s_media_names[] = {
    {KNN_MEDIA_CSV, "text/csv"},
    {KNN_MEDIA_JSON, "application/json"},
    {KNN_MEDIA_JSONLINES, "application/jsonlines"},
    {KNN_MEDIA_RECORDIO_PB, "application/x-recordio-protobuf"},
};

const char *knn_media_name(enum knn_media media)
{
    for (size_t i = 0; i < sizeof(s_media_names) / sizeof(s_media_names[0]); i++) {
        if (s_media_names[i].media == media)
            return s_media_names[i].name;
    }
    return "";
}

static int s_is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* Trim [*b, *e) of spaces and tabs. */
static void s_trim(const char **b, const char **e)
{
    while (*b < *e && s_is_space(**b))
        (*b)++;
    while (*e > *b && s_is_space((*e)[-1]))
        (*e)--;
}

static int s_eq(const char *b, const char *e, const char *word)
{
    size_t n = strlen(word);
    return (size_t)(e - b) == n && strncasecmp(b, word, n) == 0;
}

static int s_parse_param(struct knn_mime *out, const char *b, const char *e)
{
    const char *eq = memchr(b, '=', (size_t)(e - b));
    s_trim(&b, &e);
    if (b == e)
        return 0; /* "type/sub;" with an empty parameter: tolerated */
    if (!eq)
        return knn_error_set(KNN_EFORMAT, "media type parameter '%.*s' has no '='", (int)(e - b), b);
    const char *nb = b, *ne = eq, *vb = eq + 1, *ve = e;
    s_trim(&nb, &ne);
    s_trim(&vb, &ve);
    if (ve - vb >= 2 && *vb == '"' && ve[-1] == '"') {
        vb++;
        ve--;
    }
    if (s_eq(nb, ne, "verbose")) {
        if (s_eq(vb, ve, "true"))
            out->verbose = 1;
        else if (s_eq(vb, ve, "false"))
            out->verbose = 0;
        else
            return knn_error_set(KNN_EFORMAT, "verbose='%.*s': expected true or false", (int)(ve - vb), vb);
    } else if (s_eq(nb, ne, "label_size")) {
        long v = 0;
        if (vb == ve || ve - vb > 6)
            return knn_error_set(KNN_EFORMAT, "label_size='%.*s': expected an integer >= 0", (int)(ve - vb), vb);
        for (const char *p = vb; p < ve; p++) {
            if (*p < '0' || *p > '9')
                return knn_error_set(
                    KNN_EFORMAT, "label_size='%.*s': expected an integer >= 0", (int)(ve - vb), vb);
            v = v * 10 + (*p - '0');
        }
        out->label_size = (int)v;
    } else if (s_eq(nb, ne, "charset") || s_eq(nb, ne, "encoding")) {
        if (!s_eq(vb, ve, "utf-8") && !s_eq(vb, ve, "utf8") && !s_eq(vb, ve, "us-ascii"))
            return knn_error_set(
                KNN_EUNSUPPORTED, "%.*s='%.*s': only UTF-8 is supported", (int)(ne - nb), nb, (int)(ve - vb), vb);
    }
    return 0;
}

/* Parse [b, e) which holds exactly one media range. */
static int s_parse_range(struct knn_mime *out, const char *b, const char *e)
{
    struct knn_mime m = KNN_MIME_INIT;
    const char *semi = memchr(b, ';', (size_t)(e - b));
    const char *tb = b, *te = semi ? semi : e;
    s_trim(&tb, &te);
    if (tb == te) {
        *out = m;
        return semi ? knn_error_set(KNN_EFORMAT, "media type '%.*s' has parameters but no type", (int)(e - b), b) : 0;
    }
    if (!memchr(tb, '/', (size_t)(te - tb)))
        return knn_error_set(KNN_EFORMAT, "media type '%.*s' has no '/'", (int)(te - tb), tb);
    m.media = KNN_MEDIA_UNKNOWN;
    if (s_eq(tb, te, "*/*") || s_eq(tb, te, "application/*")) {
        m.media = KNN_MEDIA_ANY;
    } else {
        for (size_t i = 0; i < sizeof(s_media_names) / sizeof(s_media_names[0]); i++) {
            if (s_eq(tb, te, s_media_names[i].name))
                m.media = s_media_names[i].media;
        }
    }
    while (semi) {
        const char *pb = semi + 1;
        semi = memchr(pb, ';', (size_t)(e - pb));
        int rc = s_parse_param(&m, pb, semi ? semi : e);
        if (rc)
            return knn_error_wrap(rc, "media type '%.*s'", (int)(e - b), b);
    }
    *out = m;
    return 0;
}

int knn_mime_parse(struct knn_mime *out, const char *value)
{
    struct knn_mime none = KNN_MIME_INIT;
    *out = none;
    if (!value)
        return 0;
    return s_parse_range(out, value, value + strlen(value));
}

static int s_producible(enum knn_media m)
{
    return m == KNN_MEDIA_JSON || m == KNN_MEDIA_JSONLINES || m == KNN_MEDIA_RECORDIO_PB;
}

int knn_mime_negotiate(struct knn_mime *out, const char *accept, const struct knn_mime *fallback)
{
    const char *p = accept ? accept : "";
    int seen = 0;
    for (;;) {
        const char *comma = strchr(p, ',');
        const char *e = comma ? comma : p + strlen(p);
        struct knn_mime m;
        int rc = s_parse_range(&m, p, e);
        if (m.media == KNN_MEDIA_NONE && rc == 0) {
            /* an empty entry: skip */
        } else {
            seen = 1;
            if (rc == 0 && m.media == KNN_MEDIA_ANY) {
                *out = *fallback;
                if (m.verbose)
                    out->verbose = 1;
                return 0;
            }
            if (rc == 0 && s_producible(m.media)) {
                *out = m;
                return 0;
            }
            if (rc != 0 && rc != KNN_EUNSUPPORTED)
                return rc;
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    if (!seen) {
        *out = *fallback;
        return 0;
    }
    return knn_error_set(
        KNN_EUNSUPPORTED, "Accept '%s': none of application/json, application/jsonlines, "
                          "application/x-recordio-protobuf", accept);
}
