/* knn-runner: SageMaker k-NN training jobs and endpoints outside SageMaker. */
#include "build_info.h"
#include "commands.h"

#include "knn/common/log.h"

#include <stdio.h>
#include <string.h>

struct s_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct s_command s_commands[] = {
    {"train", knn_cmd_train, "run a training job (--manifest job.json, or the /opt/ml container contract)"},
    {"serve", knn_cmd_serve, "serve a model with SageMaker's /ping and /invocations"},
    {"transform", knn_cmd_transform, "batch transform: run a model over an S3 or local prefix"},
    {"query", knn_cmd_query, "ask a model from the shell: rows in, neighbours out (a table, or JSON Lines)"},
    {"recordio", knn_cmd_recordio, "inspect and convert RecordIO-protobuf and CSV data"},
    {"s3", knn_cmd_s3, "ls, cp and rm against S3-compatible storage"},
};

static void s_usage(FILE *out)
{
    fprintf(out, "usage: knn-runner <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(s_commands) / sizeof(s_commands[0]); i++)
        fprintf(out, "  %-10s %s\n", s_commands[i].name, s_commands[i].summary);
    fprintf(out, "  %-10s %s\n", "version", "print the version, the git commit and the features built in");
    fprintf(out, "\n`knn-runner help <command>` (or `knn-runner <command> --help`) describes a command.\n"
                 "Log level: KNN_LOG_LEVEL=debug.\n"
                 "\n"
                 "examples:\n"
                 "  knn-runner recordio convert --to recordio train.csv train.rec\n"
                 "  knn-runner train --manifest job.json\n"
                 "  knn-runner serve --model model.tar.gz --port 8080\n"
                 "  knn-runner help train\n");
}

static const struct s_command *s_find(const char *name)
{
    for (size_t i = 0; i < sizeof(s_commands) / sizeof(s_commands[0]); i++)
        if (strcmp(name, s_commands[i].name) == 0)
            return &s_commands[i];
    return NULL;
}

static int s_unknown(const char *name)
{
    fprintf(stderr, "knn-runner: unknown command '%s'\nusage: knn-runner <command> [options]\n"
                    "Run 'knn-runner --help' for the commands and examples.\n", name);
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        s_usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (strcmp(name, "help") == 0 && argc > 2 && argv[2][0] != '-' && strcmp(argv[2], "version") != 0) {
        /* knn-runner help CMD: the command's own --help */
        const struct s_command *cmd = s_find(argv[2]);
        if (!cmd)
            return s_unknown(argv[2]);
        char help[] = "--help";
        char *help_argv[] = {argv[2], help, NULL};
        return cmd->run(2, help_argv);
    }
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        s_usage(stdout);
        return 0;
    }
    if (strcmp(name, "version") == 0 || strcmp(name, "--version") == 0) {
        knn_build_info_print(stdout);
        return 0;
    }
    const struct s_command *cmd = s_find(name);
    if (cmd)
        return cmd->run(argc - 1, argv + 1);
    return s_unknown(name);
}
