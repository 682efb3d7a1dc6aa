#ifndef KNN_RUNNER_USAGE_H
#define KNN_RUNNER_USAGE_H

/**
 * One style for every command's usage errors, on stderr:
 *
 *   knn-runner train: unknown option '--manfest'
 *   usage: knn-runner train --manifest job.json [options]
 *   Run 'knn-runner train --help' for the options and examples.
 *
 * `command` is the command as typed ("train", "recordio convert"); `synopsis` its usage lines
 * (the first line starting "usage: "), printed as they are. Returns 2, the usage exit status.
 */
int knn_usage_error(const char *command, const char *synopsis, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/**
 * The same for getopt_long() (called with opterr = 0 and an optstring starting with ':'): `c` is
 * what it returned ('?' an unknown option, ':' a missing value). Returns 2.
 */
int knn_usage_getopt_error(const char *command, const char *synopsis, int c, char **argv);

#endif
