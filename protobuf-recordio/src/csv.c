/* CSV lines: parsing one line of numbers, and writing floats that read back exactly. */
#define _GNU_SOURCE /* strcasestr */
#include "knn/recordio/csv.h"

#include "knn/common/error.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t knn_recordio_csv_count_columns(const char *line, size_t len)
{
    size_t n = 1;
    const char *p = line, *end = line + len;
    while (p < end && (p = memchr(p, ',', (size_t)(end - p)))) {
        n++;
        p++;
    }
    return n;
}

static int s_is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Parse one field [p, end) into *out. */
static int s_parse_field(float *out, const char *p, const char *end, uint64_t line_no, size_t col)
{
    while (p < end && s_is_blank(*p))
        p++;
    while (end > p && s_is_blank(end[-1]))
        end--;
    size_t n = (size_t)(end - p);
    if (n == 0)
        return knn_error_set(KNN_EFORMAT, "line %llu, column %zu: empty value", (unsigned long long)line_no, col);
    if (n >= KNN_RECORDIO_CSV_MAX_FIELD)
        return knn_error_set(
            KNN_EFORMAT, "line %llu, column %zu: value of %zu characters is too long (at most %d)",
            (unsigned long long)line_no, col, n, KNN_RECORDIO_CSV_MAX_FIELD - 1);
    char field[KNN_RECORDIO_CSV_MAX_FIELD];
    memcpy(field, p, n);
    field[n] = '\0';
    char *stop;
    errno = 0;
    float v = strtof(field, &stop);
    /* Only plain decimal numbers: no hex floats, no "nan"/"inf" words. */
    int ok = stop == field + n && n > 0 && strpbrk(field, "xXnNiI") == NULL;
    if (!ok) {
        /* Quote the bad value safely: printable ASCII only. */
        for (size_t i = 0; i < n; i++) {
            if ((unsigned char)field[i] < 0x20 || (unsigned char)field[i] > 0x7e)
                field[i] = '?';
        }
        if (strcasestr(field, "nan"))
            return knn_error_set(
                KNN_ERANGE, "line %llu, column %zu: '%s' is NaN", (unsigned long long)line_no, col, field);
        if (strcasestr(field, "inf"))
            return knn_error_set(
                KNN_ERANGE, "line %llu, column %zu: '%s' is infinite", (unsigned long long)line_no, col, field);
        return knn_error_set(
            KNN_EFORMAT, "line %llu, column %zu: '%s' is not a number", (unsigned long long)line_no, col, field);
    }
    if (!isfinite(v))
        return knn_error_set(
            KNN_ERANGE, "line %llu, column %zu: '%s' is outside float32's range", (unsigned long long)line_no, col,
            field);
    /* ERANGE on underflow gives a denormal or zero, which is the nearest float32: accept it. */
    *out = v;
    return 0;
}

int knn_recordio_csv_parse_line(float *values, size_t ncols, const char *line, size_t len, uint64_t line_no)
{
    if (len && line[len - 1] == '\r')
        len--;
    size_t have = knn_recordio_csv_count_columns(line, len);
    if (have != ncols)
        return knn_error_set(
            KNN_EMISMATCH, "line %llu: %zu columns, expected %zu", (unsigned long long)line_no, have, ncols);
    const char *p = line, *end = line + len;
    for (size_t col = 0; col < ncols; col++) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *field_end = comma ? comma : end;
        int rc = s_parse_field(&values[col], p, field_end, line_no, col + 1);
        if (rc)
            return rc;
        p = field_end + 1;
    }
    return 0;
}

size_t knn_recordio_format_float(char *buf, float v)
{
    int n = 0;
    for (int prec = 6; prec <= 9; prec++) {
        n = snprintf(buf, KNN_RECORDIO_FLOAT_CHARS, "%.*g", prec, (double)v);
        if (strtof(buf, NULL) == v && signbit(strtof(buf, NULL)) == signbit(v))
            break;
    }
    return (size_t)n;
}

int knn_recordio_csv_write_row(struct knn_buf *out, const float *label, const float *values, size_t n)
{
    /* Reserve the worst case up front, then format straight into the buffer. */
    size_t items = n + (label ? 1 : 0);
    if (items > (SIZE_MAX - 2) / KNN_RECORDIO_FLOAT_CHARS)
        return knn_error_set(KNN_ETOOBIG, "CSV row of %zu values is too large", items);
    int rc = knn_buf_reserve(out, items * KNN_RECORDIO_FLOAT_CHARS + 2);
    if (rc)
        return rc;
    char *p = (char *)out->data + out->len;
    char *start = p;
    if (label) {
        p += knn_recordio_format_float(p, *label);
        if (n)
            *p++ = ',';
    }
    for (size_t i = 0; i < n; i++) {
        if (i)
            *p++ = ',';
        p += knn_recordio_format_float(p, values[i]);
    }
    *p++ = '\n';
    *p = '\0';
    out->len += (size_t)(p - start);
    return 0;
}
