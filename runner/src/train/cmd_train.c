/* knn-runner train: a training job from a manifest, or as a SageMaker container's entrypoint. */
#include "commands.h"
#include "train/train.h"
#include "usage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_SYNOPSIS                                                                                                     \
    "usage: knn-runner train --manifest job.json [options]\n"                                                          \
    "       knn-runner train                      (the /opt/ml container contract)\n"

static void s_usage(FILE *out)
{
    fputs(S_SYNOPSIS, out);
    fprintf(out,
            "\n"
            "Runs a SageMaker k-NN training job: validates the hyperparameters, streams the train channel\n"
            "from S3 (or file://) into a reservoir sample, builds the index, scores the test channel, and\n"
            "writes model.tar.gz to <S3OutputPath>/<TrainingJobName>/output/ with job-summary.json beside it.\n"
            "Without --manifest it reads $SAGEMAKER_BASE_DIR (default /opt/ml)/input/config/*.json and the\n"
            "channel files under input/data/, and writes the model files to model/ (failure reason to\n"
            "output/failure), as a bring-your-own-algorithm image's entrypoint does.\n"
            "\n"
            "options:\n"
            "  --manifest FILE       a CreateTrainingJob-shaped JSON job manifest\n"
            "  --endpoint-url URL    S3-compatible endpoint (overrides the manifest's EndpointUrl;\n"
            "                        default $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, else AWS)\n"
            "  --overwrite           replace the model of an earlier job of the same name\n"
            "  --dry-run             validate the manifest and hyperparameters, check the output path and\n"
            "                        list the channels, then stop: no data is read, nothing is written\n"
            "  --json                print the job summary as JSON on stdout\n"
            "  --progress / --no-progress   force the live progress line on or off (default: on a terminal)\n"
            "  --quiet               no progress (as --no-progress); the job log stays\n"
            "  --threads N           decoding threads (default: the number of cores)\n"
            "  --streams N           decoders (each with its reservoir sample, merged at the end) per\n"
            "                        simulated host (default: 1 for RecordIO-protobuf, 2 for CSV)\n"
            "  --gzip-level N        model.tar.gz compression, 0 (stored) to 9; default: 6 for models\n"
            "                        under 4 MiB, else 0 (float32 index data shrinks ~7%% at ~20 MB/s)\n"
            "  --target-recall R     tune the IVF nprobe to the smallest reaching recall@k R (0 < R <= 1) on\n"
            "                        held-out queries, store it in the model (overrides the manifest's\n"
            "                        KnnRunner.TargetRecall)\n"
            "  --recall-queries Q    held-out queries for the recall measurement of approximate indexes\n"
            "                        (default min(1000, 1%% of the sample); 0 = do not measure)\n"
            "  --stop-timeout S      after SIGTERM, SIGINT or MaxRuntimeInSeconds, end within S seconds\n"
            "                        (1-3600, default 5): S3 transfers stop at once, the multipart upload\n"
            "                        is aborted and partial output removed in the time left\n"
            "  -h, --help            this text\n"
            "\n"
            "Exit status: 0 the job completed, 1 it failed (the reason starts with ClientError: or\n"
            "AlgorithmError:), 2 usage error.\n"
            "\n"
            "examples:\n"
            "  knn-runner train --manifest job.json --dry-run   check a job: nothing read, nothing written\n"
            "  knn-runner train --manifest job.json             run it (S3 or file:// channels and output)\n"
            "  knn-runner train --manifest job.json --overwrite --json > summary.json\n"
            "                                                   rerun under the same name, keep the summary\n"
            "  SAGEMAKER_BASE_DIR=$PWD/opt-ml knn-runner train  as a container, from opt-ml/input/config/\n");
}

static int s_count(const char *text, size_t *out)
{
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    if (!*text || *end || v < 1 || v > 1024)
        return -1;
    *out = (size_t)v;
    return 0;
}

static int s_recall_target(const char *text, double *out)
{
    char *end;
    double v = strtod(text, &end);
    if (!*text || *end || !(v > 0.0 && v <= 1.0))
        return -1;
    *out = v;
    return 0;
}

static int s_recall_queries(const char *text, long *out)
{
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    if (!*text || *end || text[0] == '-' || v > 100000)
        return -1;
    *out = (long)v;
    return 0;
}

int knn_cmd_train(int argc, char **argv)
{
    struct knn_train_options opts = KNN_TRAIN_OPTIONS_INIT;
    size_t stop_timeout;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            s_usage(stdout);
            return 0;
        } else if (strcmp(a, "--manifest") == 0 && value) {
            opts.manifest_path = value;
            i++;
        } else if (strcmp(a, "--endpoint-url") == 0 && value) {
            opts.endpoint_url = value;
            i++;
        } else if (strcmp(a, "--overwrite") == 0) {
            opts.overwrite = 1;
        } else if (strcmp(a, "--dry-run") == 0) {
            opts.dry_run = 1;
        } else if (strcmp(a, "--json") == 0) {
            opts.json = 1;
        } else if (strcmp(a, "--progress") == 0) {
            opts.progress = 1;
        } else if (strcmp(a, "--no-progress") == 0 || strcmp(a, "--quiet") == 0) {
            opts.progress = 0;
        } else if (strcmp(a, "--threads") == 0 && value && s_count(value, &opts.threads) == 0) {
            i++;
        } else if (strcmp(a, "--streams") == 0 && value && s_count(value, &opts.streams) == 0) {
            i++;
        } else if (strcmp(a, "--target-recall") == 0 && value && s_recall_target(value, &opts.target_recall) == 0) {
            i++;
        } else if (strcmp(a, "--recall-queries") == 0 && value && s_recall_queries(value, &opts.recall_queries) == 0) {
            i++;
        } else if (strcmp(a, "--stop-timeout") == 0 && value && s_count(value, &stop_timeout) == 0 &&
                   stop_timeout <= 3600) {
            opts.stop_timeout_s = (int)stop_timeout;
            i++;
        } else if (strcmp(a, "--gzip-level") == 0 && value && value[0] >= '0' && value[0] <= '9' && !value[1]) {
            opts.gzip_level = value[0] - '0';
            i++;
        } else if (a[0] != '-') {
            return knn_usage_error("train", S_SYNOPSIS, "unexpected argument '%s'", a);
        } else if (!value && (!strcmp(a, "--manifest") || !strcmp(a, "--endpoint-url") || !strcmp(a, "--threads") ||
                              !strcmp(a, "--streams") || !strcmp(a, "--gzip-level"))) {
            return knn_usage_error("train", S_SYNOPSIS, "option '%s' needs a value", a);
        } else if (value && (!strcmp(a, "--threads") || !strcmp(a, "--streams") || !strcmp(a, "--gzip-level"))) {
            return knn_usage_error("train", S_SYNOPSIS, "option '%s': bad value '%s' (%s)", a, value,
                                   strcmp(a, "--gzip-level") ? "a count from 1 to 1024" : "0 to 9");
        } else {
            return knn_usage_error("train", S_SYNOPSIS, "unknown option '%s'", a);
        }
    }
    return knn_train_run(&opts);
}
