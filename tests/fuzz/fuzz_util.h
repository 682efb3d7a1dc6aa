/* Helpers of the fuzz targets that read files: a private scratch folder and whole-file writes. */
#ifndef KNN_FUZZ_UTIL_H
#define KNN_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

/** The target's scratch folder (made once per process under $TMPDIR, removed at exit); NULL if none. */
const char *knn_fuzz_scratch(void);

/** Write data to dir/name (replaced); 0 or -1. */
int knn_fuzz_write(const char *dir, const char *name, const uint8_t *data, size_t len);

/** Remove everything inside dir (not dir itself). */
void knn_fuzz_empty(const char *dir);

/**
 * Split data at its first `n - 1` NUL bytes into n parts (the last part takes the rest; missing
 * parts are empty): parts[i], lens[i].
 */
void knn_fuzz_split(const uint8_t *data, size_t size, size_t n, const uint8_t **parts, size_t *lens);

#endif
