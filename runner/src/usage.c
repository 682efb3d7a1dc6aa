/* Usage errors in one style: what was wrong, the usage lines, and the pointer to --help. */
#include "usage.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int knn_usage_error(const char *command, const char *synopsis, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "knn-runner %s: ", command);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (synopsis && *synopsis) {
        fputs(synopsis, stderr);
        if (synopsis[strlen(synopsis) - 1] != '\n')
            fputc('\n', stderr);
    }
    /* "recordio convert" -> 'knn-runner recordio --help': the help is per top-level command */
    size_t len = strcspn(command, " ");
    fprintf(stderr, "Run 'knn-runner %.*s --help' for the options and examples.\n", (int)len, command);
    return 2;
}

int knn_usage_getopt_error(const char *command, const char *synopsis, int c, char **argv)
{
    const char *arg = optind > 0 ? argv[optind - 1] : "";
    if (c == ':')
        return knn_usage_error(command, synopsis, "option '%s' needs a value", arg);
    if (optopt > 0 && strncmp(arg, "--", 2) != 0)
        return knn_usage_error(command, synopsis, "unknown option '-%c'", optopt);
    return knn_usage_error(command, synopsis, "unknown option '%s'", arg);
}
