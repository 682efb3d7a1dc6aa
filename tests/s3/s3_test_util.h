#ifndef KNN_S3_TEST_UTIL_H
#define KNN_S3_TEST_UTIL_H

/* Helpers of the s3 test suites: child processes (fake servers, the fault proxy, awscli), test bytes. */

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/**
 * Start `argv` with stdout on a pipe and wait (up to 20 s) for its first line "PORT <n>"; the child
 * keeps running. stderr goes to `log_path` if not NULL. Returns 0 or -1 (with a message on stderr).
 */
int s3t_spawn_server(pid_t *pid, int *port, char *const argv[], const char *log_path);

/** SIGTERM, then SIGKILL after 3 s; reaps the child. */
void s3t_stop(pid_t pid);

/**
 * Run `argv` to completion, capturing at most `cap` bytes of stdout into out (NUL-terminated) when
 * out is not NULL. Returns the exit status (0-255), or -1 if it could not run or was killed.
 */
int s3t_run(char *const argv[], char *out, size_t cap);

/** $KNN_PYTHON, or /usr/bin/python3. */
const char *s3t_python(void);

/** Deterministic bytes that differ at every offset and per seed (so a splice or shift shows). */
void s3t_fill(uint8_t *p, size_t n, uint64_t seed);

#endif
