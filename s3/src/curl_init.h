#ifndef KNN_S3_CURL_INIT_H
#define KNN_S3_CURL_INIT_H

/**
 * One-time global initialization of libcurl (curl_global_init) and libxml2 (xmlInitParser), which
 * are not thread-safe themselves; every entry point that uses them calls this first. Thread-safe.
 * Errors: KNN_EINTERNAL if libcurl cannot initialize.
 */
int knn__s3_curl_global_init(void);

#endif
