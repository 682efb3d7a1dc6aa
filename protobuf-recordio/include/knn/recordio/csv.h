#ifndef KNN_RECORDIO_CSV_H
#define KNN_RECORDIO_CSV_H

/**
 * CSV rows (text/csv, spec section 2.2): no header, comma-separated numbers, the first
 * `label_size` (0 or 1) columns the label. Lines end with LF or CRLF; the last line may lack its
 * newline; empty lines are skipped (but counted in line numbers). A value is a decimal or
 * exponent number as strtof reads it in the C locale, with optional spaces or tabs around it; an
 * empty value, a quoted one, NaN and infinity (written, or reached by overflow) are errors.
 *
 * Streaming CSV parsing (chunks in, batches of rows out) is the row decoder's job
 * (knn/recordio/rows.h with KNN_RECORDIO_CSV); this header has the pieces for one line and for
 * writing rows back out. Thread-safe (no shared state).
 */

#include "knn/common/buf.h"

#include <stddef.h>
#include <stdint.h>

/** Longest value we read (characters). */
#define KNN_RECORDIO_CSV_MAX_FIELD 128
/** Default cap on one line (bytes). */
#define KNN_RECORDIO_CSV_DEFAULT_MAX_LINE ((size_t)16 << 20)
/** Room for any float formatted by knn_recordio_format_float (with its NUL). */
#define KNN_RECORDIO_FLOAT_CHARS 32

/** The number of columns of a line (1 + its commas; a line without a newline or CR). */
size_t knn_recordio_csv_count_columns(const char *line, size_t len);

/**
 * Parse a line of exactly `ncols` comma-separated values into `values` (ncols floats). `line` is
 * not NUL-terminated and holds no newline (a trailing CR is allowed). `line_no` (1-based) is only
 * used in messages: "line 3, column 2: 'x' is not a number".
 * Errors: KNN_EMISMATCH (another number of columns), KNN_EFORMAT (not a number, empty, too long),
 * KNN_ERANGE (NaN, infinite, or out of float32's range).
 */
int knn_recordio_csv_parse_line(float *values, size_t ncols, const char *line, size_t len, uint64_t line_no);

/**
 * Format `v` as the shortest of %.6g..%.9g that strtof reads back to the same float32 (so
 * -0.0f stays "-0"). Writes at most KNN_RECORDIO_FLOAT_CHARS bytes with the NUL and returns the
 * length. `v` must be finite.
 */
size_t knn_recordio_format_float(char *buf, float v);

/** Append one CSV line: the label first when `label` is not NULL, then the n values, then "\n". */
int knn_recordio_csv_write_row(struct knn_buf *out, const float *label, const float *values, size_t n);

#endif
