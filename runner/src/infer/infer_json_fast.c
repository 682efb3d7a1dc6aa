/*
 * The JSON fast path of infer_impl.h. It only accepts what it fully checked against the JSON
 * grammar, and gives up (returns 0) on anything unusual, so jansson stays the reference for every
 * error and every odd case. The fuzz target fuzz_infer checks that both agree on accepted bodies.
 */
#include "infer/infer_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int knn__infer_json_fast_enabled = 1;

#define S_MAX_DEPTH 32
#define S_MAX_NUMBER 40

struct s_parser {
    const uint8_t *p, *end;
    int depth;
};

static void s_ws(struct s_parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static int s_take(struct s_parser *ps, char c)
{
    s_ws(ps);
    if (ps->p < ps->end && *ps->p == (uint8_t)c) {
        ps->p++;
        return 1;
    }
    return 0;
}

/* A string of printable ASCII with simple escapes (no \u: those go to jansson). *plain: no escapes. */
static int s_string(struct s_parser *ps, const uint8_t **s, size_t *len, int *plain)
{
    s_ws(ps);
    if (ps->p >= ps->end || *ps->p != '"')
        return 0;
    const uint8_t *start = ++ps->p;
    *plain = 1;
    while (ps->p < ps->end) {
        uint8_t c = *ps->p;
        if (c == '"') {
            *s = start;
            *len = (size_t)(ps->p - start);
            ps->p++;
            return 1;
        }
        if (c < 0x20 || c >= 0x80)
            return 0;
        if (c == '\\') {
            if (ps->p + 1 >= ps->end || !strchr("\"\\/bfnrt", ps->p[1]) || ps->p[1] == '\0')
                return 0;
            *plain = 0;
            ps->p += 2;
            continue;
        }
        ps->p++;
    }
    return 0;
}

static int s_key_is(const uint8_t *s, size_t len, const char *word)
{
    return len == strlen(word) && memcmp(s, word, len) == 0;
}

/* A JSON number (grammar checked here, value by strtod), finite and within float32 range. */
static int s_number(struct s_parser *ps, float *out)
{
    s_ws(ps);
    const uint8_t *b = ps->p, *q = b;
    int integer = 1;
    size_t int_digits = 0;
    if (q < ps->end && *q == '-')
        q++;
    if (q < ps->end && *q == '0') {
        q++;
        int_digits = 1;
    } else if (q < ps->end && *q >= '1' && *q <= '9') {
        while (q < ps->end && *q >= '0' && *q <= '9') {
            q++;
            int_digits++;
        }
    } else {
        return 0;
    }
    if (q < ps->end && *q == '.') {
        integer = 0;
        q++;
        if (q >= ps->end || *q < '0' || *q > '9')
            return 0;
        while (q < ps->end && *q >= '0' && *q <= '9')
            q++;
    }
    if (q < ps->end && (*q == 'e' || *q == 'E')) {
        integer = 0;
        q++;
        if (q < ps->end && (*q == '+' || *q == '-'))
            q++;
        if (q >= ps->end || *q < '0' || *q > '9')
            return 0;
        while (q < ps->end && *q >= '0' && *q <= '9')
            q++;
    }
    size_t len = (size_t)(q - b);
    if (len > S_MAX_NUMBER || (integer && int_digits > 18)) /* jansson: "too big integer" */
        return 0;
    char tmp[S_MAX_NUMBER + 1];
    memcpy(tmp, b, len);
    tmp[len] = '\0';
    double v = strtod(tmp, NULL);
    if (integer && v == 0.0)
        v = 0.0; /* jansson reads "-0" as the integer 0 */
    float f = (float)v;
    if (!isfinite(v) || !isfinite(f))
        return 0;
    *out = f;
    ps->p = q;
    return 1;
}

static int s_skip_value(struct s_parser *ps);

static int s_skip_container(struct s_parser *ps, char open, char close)
{
    if (!s_take(ps, open) || ++ps->depth > S_MAX_DEPTH)
        return 0;
    if (!s_take(ps, close)) {
        do {
            if (open == '{') {
                const uint8_t *k;
                size_t kl;
                int plain;
                if (!s_string(ps, &k, &kl, &plain) || !s_take(ps, ':'))
                    return 0;
            }
            if (!s_skip_value(ps))
                return 0;
        } while (s_take(ps, ','));
        if (!s_take(ps, close))
            return 0;
    }
    ps->depth--;
    return 1;
}

static int s_literal(struct s_parser *ps, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
        return 0;
    ps->p += n;
    return 1;
}

static int s_skip_value(struct s_parser *ps)
{
    s_ws(ps);
    if (ps->p >= ps->end)
        return 0;
    const uint8_t *s;
    size_t len;
    int plain;
    float f;
    switch (*ps->p) {
    case '{': return s_skip_container(ps, '{', '}');
    case '[': return s_skip_container(ps, '[', ']');
    case '"': return s_string(ps, &s, &len, &plain);
    case 't': return s_literal(ps, "true");
    case 'f': return s_literal(ps, "false");
    case 'n': return s_literal(ps, "null");
    default: return s_number(ps, &f);
    }
}

/* [n, n, ...] of exactly dim numbers into dst. */
static int s_row_array(struct s_parser *ps, float *dst, size_t dim)
{
    size_t count = 0;
    if (!s_take(ps, '['))
        return 0;
    if (s_take(ps, ']'))
        return dim == 0;
    do {
        float f;
        if (!s_number(ps, &f) || count >= dim)
            return 0;
        dst[count++] = f;
    } while (s_take(ps, ','));
    return s_take(ps, ']') && count == dim;
}

typedef int s_member_fn(struct s_parser *ps, float *dst, size_t dim);

struct s_member {
    const char *key;
    s_member_fn *parse; /* NULL: a member the fast path leaves to jansson */
};

/*
 * An object of which exactly one member named in `members` is present, once, and parsed; other
 * members are skipped. Anything else (none, two, a repeat, a NULL parser) goes to jansson.
 */
static int s_object(struct s_parser *ps, const struct s_member *members, size_t nmembers, float *dst, size_t dim)
{
    int have = 0;
    if (!s_take(ps, '{') || s_take(ps, '}'))
        return 0;
    do {
        const uint8_t *k;
        size_t kl;
        int plain;
        if (!s_string(ps, &k, &kl, &plain) || !plain || !s_take(ps, ':'))
            return 0;
        const struct s_member *m = NULL;
        for (size_t i = 0; i < nmembers && !m; i++)
            if (s_key_is(k, kl, members[i].key))
                m = &members[i];
        if (m ? !m->parse || have++ || !m->parse(ps, dst, dim) : !s_skip_value(ps))
            return 0;
    } while (s_take(ps, ','));
    return s_take(ps, '}') && have == 1;
}

/* {"values": [...], "shape": ..., other keys skipped}; "keys" (sparse) is left to jansson. */
static int s_data_features(struct s_parser *ps, float *dst, size_t dim)
{
    static const struct s_member members[] = {{"values", s_row_array}, {"keys", NULL}};
    return s_object(ps, members, 2, dst, dim);
}

/* {"features": {...}, other keys skipped} */
static int s_data(struct s_parser *ps, float *dst, size_t dim)
{
    static const struct s_member members[] = {{"features", s_data_features}};
    return s_object(ps, members, 1, dst, dim);
}

/* One instance: exactly one of "features" and "data" (both, or neither, go to jansson). */
static int s_instance(struct s_parser *ps, float *dst, size_t dim)
{
    static const struct s_member members[] = {{"features", s_row_array}, {"data", s_data}};
    return s_object(ps, members, 2, dst, dim);
}

static int s_at_end(struct s_parser *ps)
{
    s_ws(ps);
    return ps->p == ps->end;
}

int knn__infer_json_fast(struct knn_infer_rows *rows, size_t *n, const uint8_t *body, size_t len, int lines)
{
    size_t count = *n;
    if (!knn__infer_json_fast_enabled)
        return 0;
    if (lines) {
        const uint8_t *p = body, *end = body + len;
        while (p < end) {
            const uint8_t *eol = memchr(p, '\n', (size_t)(end - p));
            struct s_parser ps = {p, eol ? eol : end, 0};
            s_ws(&ps);
            if (ps.p < ps.end) {
                float *dst;
                if (knn__infer_rows_new_row(&dst, rows, count) != 0 || !s_instance(&ps, dst, rows->dim) ||
                    !s_at_end(&ps))
                    return 0;
                count++;
            }
            p = eol ? eol + 1 : end;
        }
        *n = count;
        return 1;
    }
    struct s_parser ps = {body, body + len, 0};
    int have_instances = 0;
    if (!s_take(&ps, '{') || s_take(&ps, '}'))
        return 0;
    do {
        const uint8_t *k;
        size_t kl;
        int plain;
        if (!s_string(&ps, &k, &kl, &plain) || !plain || !s_take(&ps, ':'))
            return 0;
        if (s_key_is(k, kl, "instances")) {
            if (have_instances++ || !s_take(&ps, '['))
                return 0;
            if (!s_take(&ps, ']')) {
                do {
                    float *dst;
                    if (knn__infer_rows_new_row(&dst, rows, count) != 0 || !s_instance(&ps, dst, rows->dim))
                        return 0;
                    count++;
                } while (s_take(&ps, ','));
                if (!s_take(&ps, ']'))
                    return 0;
            }
        } else if (!s_skip_value(&ps)) {
            return 0;
        }
    } while (s_take(&ps, ','));
    if (!s_take(&ps, '}') || !s_at_end(&ps) || !have_instances)
        return 0;
    *n = count;
    return 1;
}
