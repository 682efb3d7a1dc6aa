/*
 * knn-runner transform: batch transform, the way a SageMaker transform job runs a k-NN model
 * over an S3 prefix (spec §3.5): every object x under --input becomes x.out under --output.
 */
#include "s3_settings.h"
#include "commands.h"
#include "serve/serve_model.h"
#include "transform/transform_run.h"
#include "usage.h"

#include "knn/common/error.h"
#include "knn/common/log.h"
#include "knn/world/world.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define S_SYNOPSIS                                                                                                     \
    "usage: knn-runner transform --model SRC --input LOCATION --output LOCATION\n"                                     \
    "                            [--content-type TYPE] [--split-type Line|RecordIO|None] [--accept TYPE]\n"            \
    "                            [--batch-strategy MultiRecord|SingleRecord] [--max-payload-mb N]\n"            \
    "                            [--endpoint-url URL] [--region NAME] [--profile NAME]\n"

static void s_usage(FILE *out)
{
    fputs(S_SYNOPSIS, out);
    fprintf(out,
            "\n"
            "Runs a k-NN model over every object under --input and writes <object>.out under --output,\n"
            "as a SageMaker batch transform job does. Locations are s3://bucket/prefix or local paths;\n"
            "'-' is stdin (--input, one object) or stdout (--output, every object's answers in turn).\n"
            "\n"
            "  --model SRC           model.tar.gz (local or s3://) or a model directory\n"
            "  --content-type TYPE   text/csv[;label_size=N], application/jsonlines (default),\n"
            "                        application/json, application/x-recordio-protobuf\n"
            "  --split-type T        Line, RecordIO or None (default: Line for CSV and JSON Lines,\n"
            "                        RecordIO for RecordIO-protobuf, None for JSON)\n"
            "  --accept TYPE         application/jsonlines (default), application/json,\n"
            "                        application/x-recordio-protobuf; add '; verbose=true' for the\n"
            "                        neighbours' labels and distances\n"
            "  --batch-strategy S    MultiRecord (default: records grouped up to the max payload) or SingleRecord\n"
            "  --max-payload-mb N    largest request (default: $SAGEMAKER_MAX_PAYLOAD_IN_MB, else 6)\n"
            "  --endpoint-url URL    S3 endpoint for s3:// locations (default: $AWS_ENDPOINT_URL_S3,\n"
            "                        $AWS_ENDPOINT_URL, ~/.aws/config, AWS)\n"
            "  --region NAME         (default: $AWS_REGION, $AWS_DEFAULT_REGION, the profile's, us-east-1)\n"
            "  --profile NAME        a profile of ~/.aws/credentials and ~/.aws/config\n"
            "\n"
            "A failed object is reported and leaves no output; the others go on. Exit status 1 if any failed.\n"
            "\n"
            "examples:\n"
            "  knn-runner transform --model model.tar.gz --input s3://bucket/batch/ --output s3://bucket/batch-out/\n"
            "  knn-runner transform --model model.tar.gz --content-type text/csv --input rows/ --output answers/\n"
            "  knn-runner transform --model s3://bucket/output/my-job/output/model.tar.gz \\\n"
            "      --content-type application/x-recordio-protobuf --accept 'application/jsonlines; verbose=true' \\\n"
            "      --input test.rec --output out/\n"
            "  cut -d, -f2- test.csv | knn-runner transform --model model.tar.gz --content-type text/csv \\\n"
            "      --input - --output - > answers.jsonl\n");
}

int knn_cmd_transform(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'},          {"input", required_argument, NULL, 'i'},
        {"output", required_argument, NULL, 'o'},         {"content-type", required_argument, NULL, 'c'},
        {"split-type", required_argument, NULL, 's'},     {"accept", required_argument, NULL, 'a'},
        {"batch-strategy", required_argument, NULL, 'b'}, {"max-payload-mb", required_argument, NULL, 'M'},
        {"endpoint-url", required_argument, NULL, 'E'},   {"region", required_argument, NULL, 'G'},
        {"profile", required_argument, NULL, 'F'},        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *s3_endpoint = NULL, *s3_region = NULL, *s3_profile = NULL;
    const char *model_src = NULL, *ct_s = "application/jsonlines", *split_s = NULL, *accept_s = "application/jsonlines";
    const char *strategy_s = "MultiRecord", *payload_s = getenv("SAGEMAKER_MAX_PAYLOAD_IN_MB");
    struct knn_transform_options opts;
    int c;

    memset(&opts, 0, sizeof(opts));
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":m:i:o:c:s:a:b:M:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': model_src = optarg; break;
        case 'i': opts.input = optarg; break;
        case 'o': opts.output = optarg; break;
        case 'c': ct_s = optarg; break;
        case 's': split_s = optarg; break;
        case 'a': accept_s = optarg; break;
        case 'b': strategy_s = optarg; break;
        case 'M': payload_s = optarg; break;
        case 'E': s3_endpoint = optarg; break;
        case 'G': s3_region = optarg; break;
        case 'F': s3_profile = optarg; break;
        case 'h': s_usage(stdout); return 0;
        default: return knn_usage_getopt_error("transform", S_SYNOPSIS, c, argv);
        }
    }
    if (optind < argc)
        return knn_usage_error("transform", S_SYNOPSIS, "unexpected argument '%s'", argv[optind]);
    knn_s3_settings_set(s3_endpoint, s3_region, s3_profile);
    if (!model_src || !opts.input || !opts.output)
        return knn_usage_error("transform", S_SYNOPSIS, "--model, --input and --output are required");
    if (knn_mime_parse(&opts.content_type, ct_s) != 0)
        return knn_usage_error("transform", S_SYNOPSIS, "--content-type: %s", knn_error_message());
    switch (opts.content_type.media) {
    case KNN_MEDIA_CSV:
    case KNN_MEDIA_JSONLINES:
        opts.split = KNN_SPLIT_LINE;
        break;
    case KNN_MEDIA_RECORDIO_PB:
        opts.split = KNN_SPLIT_RECORDIO;
        break;
    case KNN_MEDIA_JSON:
        opts.split = KNN_SPLIT_NONE;
        break;
    default:
        return knn_usage_error("transform", S_SYNOPSIS, "--content-type '%s' is not one we decode", ct_s);
    }
    if (split_s && knn_split_type_parse(&opts.split, split_s) != 0)
        return knn_usage_error("transform", S_SYNOPSIS, "--split-type: %s", knn_error_message());
    if (opts.split == KNN_SPLIT_RECORDIO && opts.content_type.media != KNN_MEDIA_RECORDIO_PB)
        return knn_usage_error("transform", S_SYNOPSIS,
                               "--split-type RecordIO needs application/x-recordio-protobuf input");
    struct knn_mime any = {KNN_MEDIA_JSONLINES, 0, -1};
    if (knn_mime_negotiate(&opts.accept, accept_s, &any) != 0)
        return knn_usage_error("transform", S_SYNOPSIS, "--accept: %s", knn_error_message());
    if (strcasecmp(strategy_s, "MultiRecord") == 0 || strcasecmp(strategy_s, "MULTI_RECORD") == 0)
        opts.single_record = 0;
    else if (strcasecmp(strategy_s, "SingleRecord") == 0 || strcasecmp(strategy_s, "SINGLE_RECORD") == 0)
        opts.single_record = 1;
    else
        return knn_usage_error("transform", S_SYNOPSIS, "--batch-strategy '%s': expected MultiRecord or SingleRecord",
                               strategy_s);
    unsigned long mb = 6;
    if (payload_s && *payload_s) {
        char *end;
        mb = strtoul(payload_s, &end, 10);
        if (*end || mb == 0 || mb > 1024)
            return knn_usage_error("transform", S_SYNOPSIS, "max payload '%s': expected 1 to 1024 (MB)", payload_s);
    }
    opts.max_payload_bytes = (size_t)mb << 20;

    struct knn_model *model = NULL;
    if (knn_serve_model_load(&model, model_src) != 0) {
        KNN_LOG(KNN_LOG_ERROR, KNN_LS_JOB, "transform: cannot load the model: %s", knn_error_message());
        return 1;
    }
    /* Under mpirun the objects are spread over the ranks (i mod N); each writes its own outputs. */
    struct knn_world *world = NULL;
    if (knn_world_started_by_mpirun()) {
        if (knn_world_new(&world) != 0) {
            KNN_LOG(KNN_LOG_ERROR, KNN_LS_JOB, "transform: %s", knn_error_message());
            knn_model_destroy(model);
            return 1;
        }
        opts.part = (size_t)knn_world_rank(world);
        opts.nparts = (size_t)knn_world_size(world);
        KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB, "transform: %s of %zu ranks: objects i with i mod %zu = %zu",
                knn_world_host(world), opts.nparts, opts.nparts, opts.part);
    }
    struct knn_transform_summary sum;
    int rc = knn_transform_run(&sum, model, &opts);
    knn_model_destroy(model);
    knn_world_destroy(world);
    if (rc) {
        KNN_LOG(KNN_LOG_ERROR, KNN_LS_JOB, "transform: %s", knn_error_message());
        return 1;
    }
    KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB, "transform: done: %zu objects (%zu failed), %zu rows in %.1f s (%.0f rows/s)",
            sum.objects, sum.failed, sum.rows, sum.seconds, sum.seconds > 0 ? sum.rows / sum.seconds : 0.0);
    return sum.failed ? 1 : 0;
}
