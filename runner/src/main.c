/* knn-runner: SageMaker k-NN training jobs and endpoints outside SageMaker. */
#include "commands.h"

#include "knn/common/log.h"

#include <stdio.h>
#include <string.h>

#ifndef KNN_VERSION
#define KNN_VERSION "unknown"
#endif

struct s_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct s_command s_commands[] = {
    {"train", knn_cmd_train, "run a training job (--manifest job.json, or the /opt/ml container contract)"},
    {"serve", knn_cmd_serve, "serve a model with SageMaker's /ping and /invocations"},
    {"transform", knn_cmd_transform, "batch transform: run a model over an S3 or local prefix"},
    {"recordio", knn_cmd_recordio, "inspect and convert RecordIO-protobuf and CSV data"},
    {"s3", knn_cmd_s3, "ls, cp and rm against S3-compatible storage"},
};

static void s_usage(FILE *out)
{
    fprintf(out, "usage: knn-runner <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(s_commands) / sizeof(s_commands[0]); i++)
        fprintf(out, "  %-10s %s\n", s_commands[i].name, s_commands[i].summary);
    fprintf(out, "  %-10s %s\n", "version", "print the version");
    fprintf(out, "\n`knn-runner <command> --help` describes a command. Log level: KNN_LOG_LEVEL=debug.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        s_usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        s_usage(stdout);
        return 0;
    }
    if (strcmp(name, "version") == 0 || strcmp(name, "--version") == 0) {
        printf("knn-runner %s\n", KNN_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof(s_commands) / sizeof(s_commands[0]); i++) {
        if (strcmp(name, s_commands[i].name) == 0)
            return s_commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "knn-runner: unknown command '%s'\n\n", name);
    s_usage(stderr);
    return 2;
}
