/* Job manifests (CreateTrainingJob shape), content types, data manifests, the /opt/ml contract. */
#include "knn_test.h"

#include "train/channels.h"
#include "train/job_config.h"
#include "train/job_report.h"

#include "knn/common/alloc.h"
#include "knn/common/error.h"

#include <jansson.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* The spec's §5.7 example, with placeholders for extra members. */
#define CHANNEL_TRAIN                                                                                               \
    "{\"ChannelName\": \"train\", \"DataSource\": {\"S3DataSource\": {\"S3DataType\": \"S3Prefix\", "              \
    "\"S3Uri\": \"s3://b/knn/train/\", \"S3DataDistributionType\": \"ShardedByS3Key\"}}, "                         \
    "\"ContentType\": \"application/x-recordio-protobuf\"}"
#define CHANNEL_TEST                                                                                                \
    "{\"ChannelName\": \"test\", \"DataSource\": {\"S3DataSource\": {\"S3DataType\": \"S3Prefix\", "               \
    "\"S3Uri\": \"s3://b/knn/test/\", \"S3DataDistributionType\": \"FullyReplicated\"}}, "                         \
    "\"ContentType\": \"text/csv;label_size=1\"}"
#define HPS                                                                                                         \
    "{\"feature_dim\": \"54\", \"k\": \"10\", \"sample_size\": \"200000\", \"predictor_type\": \"classifier\"}"

static int s_manifest(struct knn_job_config *cfg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int s_manifest(struct knn_job_config *cfg, const char *fmt, ...)
{
    char text[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    if (!root) {
        fprintf(stderr, "bad test JSON (%s): %s\n", jerr.text, text);
        return -999;
    }
    knn_job_config_init(cfg);
    knn_error_clear();
    int rc = knn_job_config_from_manifest(cfg, root, "job.json");
    json_decref(root);
    return rc;
}

/* A manifest with the given top-level extra members ("" for none), train and test channels. */
#define MANIFEST(extra)                                                                                             \
    "{\"TrainingJobName\": \"knn-2024-01-01-00-00-00\", "                                                         \
    "\"AlgorithmSpecification\": {\"TrainingImage\": \"174872318107.dkr.ecr.us-west-2.amazonaws.com/knn:1\", "    \
    "\"TrainingInputMode\": \"File\"}, \"HyperParameters\": " HPS ", "                                            \
    "\"InputDataConfig\": [" CHANNEL_TRAIN ", " CHANNEL_TEST "], "                                                \
    "\"OutputDataConfig\": {\"S3OutputPath\": \"s3://b/knn/output\"}, "                                           \
    "\"ResourceConfig\": {\"InstanceType\": \"ml.m5.2xlarge\", \"InstanceCount\": 1, \"VolumeSizeInGB\": 10}, "   \
    "\"StoppingCondition\": {\"MaxRuntimeInSeconds\": 3600}, "                                                    \
    "\"RoleArn\": \"arn:aws:iam::123456789012:role/SageMakerRole\"" extra "}"

int test_manifest_spec_example(void)
{
    struct knn_job_config cfg;
    ASSERT_OK(s_manifest(&cfg, "%s", MANIFEST("")));
    ASSERT_STR_EQ("knn-2024-01-01-00-00-00", cfg.name);
    ASSERT_FALSE(cfg.container);
    ASSERT_STR_EQ("s3://b/knn/output", cfg.output_path);
    ASSERT_UINT_EQ(1, cfg.instance_count);
    ASSERT_UINT_EQ(3600, cfg.max_runtime_s);
    ASSERT_TRUE(cfg.endpoint_url == NULL);
    const struct knn_job_channel *train = &cfg.channels[KNN_CHANNEL_TRAIN], *test = &cfg.channels[KNN_CHANNEL_TEST];
    ASSERT_TRUE(train->present && test->present);
    ASSERT_STR_EQ("s3://b/knn/train/", train->uri);
    ASSERT_TRUE(train->sharded);
    ASSERT_FALSE(train->manifest_file);
    ASSERT_INT_EQ(KNN_CONTENT_RECORDIO_PROTOBUF, train->content.kind);
    ASSERT_STR_EQ("s3://b/knn/test/", test->uri);
    ASSERT_FALSE(test->sharded);
    ASSERT_INT_EQ(KNN_CONTENT_CSV, test->content.kind);
    ASSERT_INT_EQ(1, test->content.label_size);
    ASSERT_STR_EQ("text/csv;label_size=1", test->content_type);
    ASSERT_STR_EQ("10", json_string_value(json_object_get(cfg.hyperparameters, "k")));
    knn_job_config_clean_up(&cfg);
    return 0;
}

/* Each field SageMaker has that does not apply locally is accepted (spec §5.7 and newer API fields). */
int test_manifest_ignored_fields_accepted(void)
{
    static const char *const top[] = {
        "\"VpcConfig\": {\"SecurityGroupIds\": [\"sg-1\"], \"Subnets\": [\"s-1\"]}",
        "\"Tags\": [{\"Key\": \"team\", \"Value\": \"search\"}]",
        "\"EnableNetworkIsolation\": true",
        "\"EnableInterContainerTrafficEncryption\": false",
        "\"EnableManagedSpotTraining\": false",
        "\"CheckpointConfig\": {\"S3Uri\": \"s3://b/ckpt\"}",
        "\"Environment\": {\"A\": \"1\"}",
        "\"RetryStrategy\": {\"MaximumRetryAttempts\": 2}",
        "\"DebugHookConfig\": {}",
        "\"DebugRuleConfigurations\": []",
        "\"TensorBoardOutputConfig\": {}",
        "\"ExperimentConfig\": {}",
        "\"ProfilerConfig\": {}",
        "\"ProfilerRuleConfigurations\": []",
        "\"RemoteDebugConfig\": {}",
        "\"InfraCheckConfig\": {}",
        "\"SessionChainingConfig\": {}",
    };
    struct knn_job_config cfg;
    char extra[512];
    for (size_t i = 0; i < sizeof(top) / sizeof(top[0]); i++) {
        snprintf(extra, sizeof(extra), ", %s", top[i]);
        char text[8192];
        snprintf(text, sizeof(text), MANIFEST("%s"), extra);
        ASSERT_OK(s_manifest(&cfg, "%s", text));
        knn_job_config_clean_up(&cfg);
    }
    /* Nested ignored fields. */
    ASSERT_OK(s_manifest(
        &cfg,
        "{\"TrainingJobName\": \"j\", \"HyperParameters\": " HPS ", "
        "\"AlgorithmSpecification\": {\"TrainingImage\": \"x\", \"TrainingInputMode\": \"Pipe\", \"AlgorithmName\": "
        "\"a\", \"MetricDefinitions\": [{\"Name\": \"m\", \"Regex\": \"r\"}], \"ContainerEntrypoint\": [\"e\"], "
        "\"ContainerArguments\": [\"x\"], \"EnableSageMakerMetricsTimeSeries\": true, \"TrainingImageConfig\": {}}, "
        "\"InputDataConfig\": [{\"ChannelName\": \"train\", \"DataSource\": {\"S3DataSource\": {\"S3DataType\": "
        "\"S3Prefix\", \"S3Uri\": \"s3://b/p\", \"AttributeNames\": [\"a\"], \"InstanceGroupNames\": [\"g\"]}}, "
        "\"CompressionType\": \"None\", \"RecordWrapperType\": \"None\", \"InputMode\": \"FastFile\", "
        "\"ShuffleConfig\": {\"Seed\": 3}}], "
        "\"OutputDataConfig\": {\"S3OutputPath\": \"s3://b/o\", \"KmsKeyId\": \"k\", \"CompressionType\": \"GZIP\"}, "
        "\"ResourceConfig\": {\"InstanceType\": \"ml.c5.xlarge\", \"InstanceCount\": 2, \"VolumeSizeInGB\": 1, "
        "\"VolumeKmsKeyId\": \"k\", \"KeepAlivePeriodInSeconds\": 0, \"InstanceGroups\": []}, "
        "\"StoppingCondition\": {\"MaxRuntimeInSeconds\": 5, \"MaxWaitTimeInSeconds\": 9, "
        "\"MaxPendingTimeInSeconds\": 9}}"));
    ASSERT_UINT_EQ(2, cfg.instance_count);
    ASSERT_UINT_EQ(5, cfg.max_runtime_s);
    ASSERT_FALSE(cfg.channels[KNN_CHANNEL_TEST].present);
    ASSERT_FALSE(cfg.channels[KNN_CHANNEL_TRAIN].sharded); /* FullyReplicated is the default */
    knn_job_config_clean_up(&cfg);
    return 0;
}

int test_manifest_unknown_fields_named(void)
{
    struct knn_job_config cfg;
    ASSERT_ERR(KNN_ECONFIG, s_manifest(&cfg, "%s", MANIFEST(", \"TrainingJobNam\": \"x\"")));
    ASSERT_CONTAINS(knn_error_message(), "job manifest job.json: TrainingJobNam: unknown field");
    ASSERT_ERR(KNN_ECONFIG,
               s_manifest(&cfg, "{\"TrainingJobName\": \"j\", \"InputDataConfig\": [{\"ChannelName\": \"train\", "
                                "\"DataSource\": {\"S3DataSource\": {\"S3DataType\": \"S3Prefix\", \"S3Uri\": "
                                "\"s3://b/p\", \"S3Urii\": \"x\"}}}], \"OutputDataConfig\": {\"S3OutputPath\": "
                                "\"s3://b/o\", \"Path\": 1}, \"ResourceConfig\": {\"Count\": 1}}"));
    ASSERT_CONTAINS(knn_error_message(), "InputDataConfig[0].DataSource.S3DataSource.S3Urii: unknown field");
    ASSERT_CONTAINS(knn_error_message(), "OutputDataConfig.Path: unknown field");
    ASSERT_CONTAINS(knn_error_message(), "ResourceConfig.Count: unknown field");
    return 0;
}

int test_manifest_bad_types(void)
{
    struct knn_job_config cfg;
    ASSERT_ERR(KNN_ECONFIG,
               s_manifest(&cfg, "{\"TrainingJobName\": 5, \"HyperParameters\": [], \"InputDataConfig\": {}, "
                                "\"OutputDataConfig\": {\"S3OutputPath\": \"s3://b/o\"}, \"ResourceConfig\": "
                                "{\"InstanceCount\": \"2\"}, \"StoppingCondition\": {\"MaxRuntimeInSeconds\": 0}}"));
    const char *m = knn_error_message();
    ASSERT_CONTAINS(m, "TrainingJobName: expected a string, found an integer");
    ASSERT_CONTAINS(m, "HyperParameters: expected an object of strings, found an array");
    ASSERT_CONTAINS(m, "InputDataConfig: expected an array, found an object");
    ASSERT_CONTAINS(m, "ResourceConfig.InstanceCount: expected an integer, found a string");
    ASSERT_CONTAINS(m, "StoppingCondition.MaxRuntimeInSeconds: must be an integer >= 1, found 0");
    ASSERT_ERR(KNN_ECONFIG, s_manifest(&cfg, "[1, 2]"));
    ASSERT_CONTAINS(knn_error_message(), "expected a JSON object");
    return 0;
}

int test_manifest_hyperparameter_limits(void)
{
    struct knn_job_config cfg;
    char members[16384] = "", value[300];
    size_t used = 0;
    for (int i = 0; i < 101; i++)
        used += (size_t)snprintf(members + used, sizeof(members) - used, "%s\"h%d\": \"1\"", i ? ", " : "", i);
    ASSERT_ERR(KNN_ECONFIG, s_manifest(&cfg, "{\"TrainingJobName\": \"j\", \"HyperParameters\": {%s}, "
                                             "\"InputDataConfig\": [" CHANNEL_TRAIN "], "
                                             "\"OutputDataConfig\": {\"S3OutputPath\": \"s3://b/o\"}}", members));
    ASSERT_CONTAINS(knn_error_message(), "HyperParameters: 101 entries, more than the 100 SageMaker accepts");
    memset(value, 'x', 257);
    value[257] = '\0';
    ASSERT_ERR(KNN_ECONFIG, s_manifest(&cfg, "{\"TrainingJobName\": \"j\", \"HyperParameters\": {\"k\": \"%s\"}, "
                                             "\"InputDataConfig\": [" CHANNEL_TRAIN "], "
                                             "\"OutputDataConfig\": {\"S3OutputPath\": \"s3://b/o\"}}", value));
    ASSERT_CONTAINS(knn_error_message(), "HyperParameters.k: the value is longer than 256 characters");
    return 0;
}

int test_manifest_required_fields(void)
{
    struct knn_job_config cfg;
    ASSERT_ERR(KNN_ECONFIG, s_manifest(&cfg, "{}"));
    const char *m = knn_error_message();
    ASSERT_CONTAINS(m, "TrainingJobName: required field is missing");
    ASSERT_CONTAINS(m, "InputDataConfig: required field is missing");
    ASSERT_CONTAINS(m, "OutputDataConfig: required field is missing");
    ASSERT_ERR(KNN_ECONFIG,
               s_manifest(&cfg, "{\"TrainingJobName\": \"j\", \"InputDataConfig\": [{\"ChannelName\": \"train\", "
                                "\"DataSource\": {\"S3DataSource\": {}}}], \"OutputDataConfig\": {}}"));
    m = knn_error_message();
    ASSERT_CONTAINS(m, "InputDataConfig[0].DataSource.S3DataSource.S3DataType: required field is missing");
    ASSERT_CONTAINS(m, "InputDataConfig[0].DataSource.S3DataSource.S3Uri: required field is missing");
    ASSERT_CONTAINS(m, "OutputDataConfig.S3OutputPath: required field is missing");
    return 0;
}

int test_manifest_train_channel_required(void)
{
    struct knn_job_config cfg;
    ASSERT_ERR(KNN_ECONFIG, s_manifest(&cfg, "{\"TrainingJobName\": \"j\", \"InputDataConfig\": [" CHANNEL_TEST
                                             "], \"OutputDataConfig\": {\"S3OutputPath\": \"s3://b/o\"}}"));
    ASSERT_CONTAINS(knn_error_message(), "InputDataConfig: the 'train' channel is required");
    ASSERT_ERR(KNN_ECONFIG, s_manifest(&cfg, "{\"TrainingJobName\": \"j\", \"InputDataConfig\": [], "
                                             "\"OutputDataConfig\": {\"S3OutputPath\": \"s3://b/o\"}}"));
    ASSERT_CONTAINS(knn_error_message(), "the 'train' channel is required");
    return 0;
}

int test_manifest_channel_names(void)
{
    struct knn_job_config cfg;
    ASSERT_ERR(KNN_ECONFIG,
               s_manifest(&cfg, "{\"TrainingJobName\": \"j\", \"InputDataConfig\": [" CHANNEL_TRAIN ", " CHANNEL_TRAIN
                                "], \"OutputDataConfig\": {\"S3OutputPath\": \"s3://b/o\"}}"));
    ASSERT_CONTAINS(knn_error_message(), "InputDataConfig[1].ChannelName: channel 'train' is given twice");
    ASSERT_ERR(KNN_ECONFIG,
               s_manifest(&cfg, "{\"TrainingJobName\": \"j\", \"InputDataConfig\": [" CHANNEL_TRAIN
                                ", {\"ChannelName\": \"validation\", \"DataSource\": {\"S3DataSource\": "
                                "{\"S3DataType\": \"S3Prefix\", \"S3Uri\": \"s3://b/v\"}}}], "
                                "\"OutputDataConfig\": {\"S3OutputPath\": \"s3://b/o\"}}"));
    ASSERT_CONTAINS(knn_error_message(), "InputDataConfig[1].ChannelName: channel 'validation' is not used by k-NN");
    return 0;
}

int test_manifest_job_name_rule(void)
{
    ASSERT_TRUE(knn_job_name_is_valid("a"));
    ASSERT_TRUE(knn_job_name_is_valid("knn-2024-01-01-00-00-00"));
    ASSERT_TRUE(knn_job_name_is_valid("a--b"));
    ASSERT_FALSE(knn_job_name_is_valid(""));
    ASSERT_FALSE(knn_job_name_is_valid("-a"));
    ASSERT_FALSE(knn_job_name_is_valid("a-"));
    ASSERT_FALSE(knn_job_name_is_valid("a_b"));
    ASSERT_FALSE(knn_job_name_is_valid("a/b"));
    ASSERT_TRUE(knn_job_name_is_valid("123456789012345678901234567890123456789012345678901234567890123"));
    ASSERT_FALSE(knn_job_name_is_valid("1234567890123456789012345678901234567890123456789012345678901234"));
    struct knn_job_config cfg;
    ASSERT_ERR(KNN_ECONFIG, s_manifest(&cfg, "{\"TrainingJobName\": \"my_job\", \"InputDataConfig\": [" CHANNEL_TRAIN
                                             "], \"OutputDataConfig\": {\"S3OutputPath\": \"s3://b/o\"}}"));
    ASSERT_CONTAINS(knn_error_message(), "TrainingJobName: 'my_job' must be 1 to 63 letters, digits and hyphens");
    return 0;
}

int test_manifest_uri_schemes(void)
{
    struct knn_job_config cfg;
    ASSERT_OK(s_manifest(&cfg, "{\"TrainingJobName\": \"j\", \"InputDataConfig\": [{\"ChannelName\": \"train\", "
                               "\"DataSource\": {\"S3DataSource\": {\"S3DataType\": \"S3Prefix\", \"S3Uri\": "
                               "\"file:///data/train\"}}}], \"OutputDataConfig\": {\"S3OutputPath\": \"file://out\"}}"));
    ASSERT_STR_EQ("file:///data/train", cfg.channels[0].uri);
    ASSERT_STR_EQ("file://out", cfg.output_path);
    knn_job_config_clean_up(&cfg);
    /* SageMaker's S3Uri pattern is ^(https|s3)://: AWS https:// S3 URLs are accepted too. */
    ASSERT_OK(s_manifest(&cfg, "{\"TrainingJobName\": \"j\", \"InputDataConfig\": [{\"ChannelName\": \"train\", "
                               "\"DataSource\": {\"S3DataSource\": {\"S3DataType\": \"S3Prefix\", \"S3Uri\": "
                               "\"https://b.s3.us-west-2.amazonaws.com/data/train/\"}}}], \"OutputDataConfig\": "
                               "{\"S3OutputPath\": \"https://s3.us-west-2.amazonaws.com/b/out\"}}"));
    ASSERT_STR_EQ("https://b.s3.us-west-2.amazonaws.com/data/train/", cfg.channels[0].uri);
    ASSERT_STR_EQ("https://s3.us-west-2.amazonaws.com/b/out", cfg.output_path);
    knn_job_config_clean_up(&cfg);
    static const char *const bad[] = {"http://x/y", "/local/path", "s3:///key", "s3://", "file://", "S3://b/k",
                                      "https://example.com/b/k"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ASSERT_ERR(KNN_ECONFIG,
                   s_manifest(&cfg, "{\"TrainingJobName\": \"j\", \"InputDataConfig\": [" CHANNEL_TRAIN "], "
                                    "\"OutputDataConfig\": {\"S3OutputPath\": \"%s\"}}", bad[i]));
        ASSERT_CONTAINS(knn_error_message(), "OutputDataConfig.S3OutputPath: '");
        ASSERT_CONTAINS(knn_error_message(), "is not an s3://bucket/prefix, AWS https:// S3 URL or file://path URI");
    }
    return 0;
}

int test_manifest_unsupported_values(void)
{
    struct knn_job_config cfg;
    ASSERT_ERR(KNN_ECONFIG,
               s_manifest(&cfg, "{\"TrainingJobName\": \"j\", \"InputDataConfig\": [{\"ChannelName\": \"train\", "
                                "\"CompressionType\": \"Gzip\", \"RecordWrapperType\": \"RecordIO\", "
                                "\"ContentType\": \"application/json\", \"DataSource\": {\"FileSystemDataSource\": {}, "
                                "\"S3DataSource\": {\"S3DataType\": \"AugmentedManifestFile\", \"S3Uri\": \"s3://b/p\", "
                                "\"S3DataDistributionType\": \"Sharded\"}}}], "
                                "\"OutputDataConfig\": {\"S3OutputPath\": \"s3://b/o\"}, "
                                "\"AlgorithmSpecification\": {\"TrainingInputMode\": \"file\"}}"));
    const char *m = knn_error_message();
    ASSERT_CONTAINS(m, "InputDataConfig[0].CompressionType: 'Gzip' needs Pipe input mode: this channel is in File "
                       "mode, which only supports None");
    ASSERT_CONTAINS(m, "InputDataConfig[0].RecordWrapperType: 'RecordIO' is not supported");
    ASSERT_CONTAINS(m, "InputDataConfig[0].ContentType: ContentType 'application/json' is not supported");
    ASSERT_CONTAINS(m, "InputDataConfig[0].DataSource.FileSystemDataSource: EFS and FSx sources are not supported");
    ASSERT_CONTAINS(m, "InputDataConfig[0].DataSource.S3DataSource.S3DataType: 'AugmentedManifestFile' is not "
                       "supported");
    ASSERT_CONTAINS(m, "InputDataConfig[0].DataSource.S3DataSource.S3DataDistributionType: 'Sharded' is not one of "
                       "FullyReplicated, ShardedByS3Key");
    ASSERT_CONTAINS(m, "AlgorithmSpecification.TrainingInputMode: 'file' is not one of File, Pipe, FastFile");
    return 0;
}

int test_manifest_endpoint_and_manifest_file(void)
{
    struct knn_job_config cfg;
    ASSERT_OK(s_manifest(&cfg, "{\"TrainingJobName\": \"j\", \"EndpointUrl\": \"http://127.0.0.1:9000\", "
                               "\"InputDataConfig\": [{\"ChannelName\": \"train\", \"DataSource\": {\"S3DataSource\": "
                               "{\"S3DataType\": \"ManifestFile\", \"S3Uri\": \"s3://b/p/.amazon.manifest\"}}, "
                               "\"ContentType\": \"Text/CSV ; label_size = 1\"}], "
                               "\"OutputDataConfig\": {\"S3OutputPath\": \"s3://b/o\"}}"));
    ASSERT_STR_EQ("http://127.0.0.1:9000", cfg.endpoint_url);
    ASSERT_TRUE(cfg.channels[0].manifest_file);
    ASSERT_INT_EQ(KNN_CONTENT_CSV, cfg.channels[0].content.kind);
    knn_job_config_clean_up(&cfg);
    ASSERT_ERR(KNN_ECONFIG, s_manifest(&cfg, "{\"TrainingJobName\": \"j\", \"EndpointUrl\": \"localhost:9000\", "
                                             "\"InputDataConfig\": [" CHANNEL_TRAIN "], "
                                             "\"OutputDataConfig\": {\"S3OutputPath\": \"s3://b/o\"}}"));
    ASSERT_CONTAINS(knn_error_message(), "EndpointUrl: 'localhost:9000' is not an http:// or https:// URL");
    return 0;
}

int test_manifest_file_errors(void)
{
    char dir[512], path[600];
    struct knn_job_config cfg;
    ASSERT_OK(knn_test_mkdtemp(dir, sizeof(dir)));
    snprintf(path, sizeof(path), "%s/job.json", dir);
    knn_job_config_init(&cfg);
    ASSERT_ERR(KNN_ENOTFOUND, knn_job_config_from_manifest_file(&cfg, path));
    ASSERT_CONTAINS(knn_error_message(), "job.json");
    FILE *f = fopen(path, "w");
    fputs("{\"TrainingJobName\": \"j\",\n  \"TrainingJobName\": \"k\"}", f);
    fclose(f);
    ASSERT_ERR(KNN_ECONFIG, knn_job_config_from_manifest_file(&cfg, path));
    ASSERT_CONTAINS(knn_error_message(), "invalid JSON at line 2");
    ASSERT_CONTAINS(knn_error_message(), "duplicate object key");
    f = fopen(path, "w");
    fputs("{\"TrainingJobName\": \"j\",", f);
    fclose(f);
    ASSERT_ERR(KNN_ECONFIG, knn_job_config_from_manifest_file(&cfg, path));
    ASSERT_CONTAINS(knn_error_message(), "invalid JSON at line 1");
    knn_test_rmtree(dir);
    return 0;
}

int test_content_type_parsing(void)
{
    struct knn_content_type ct;
    ASSERT_OK(knn_content_type_parse(&ct, NULL));
    ASSERT_INT_EQ(KNN_CONTENT_RECORDIO_PROTOBUF, ct.kind);
    ASSERT_OK(knn_content_type_parse(&ct, ""));
    ASSERT_INT_EQ(KNN_CONTENT_RECORDIO_PROTOBUF, ct.kind);
    ASSERT_OK(knn_content_type_parse(&ct, "application/x-recordio-protobuf"));
    ASSERT_INT_EQ(KNN_CONTENT_RECORDIO_PROTOBUF, ct.kind);
    ASSERT_INT_EQ(-1, ct.label_size);
    ASSERT_OK(knn_content_type_parse(&ct, "Application/X-RecordIO-Protobuf"));
    ASSERT_INT_EQ(KNN_CONTENT_RECORDIO_PROTOBUF, ct.kind);
    ASSERT_OK(knn_content_type_parse(&ct, "text/csv"));
    ASSERT_INT_EQ(KNN_CONTENT_CSV, ct.kind);
    ASSERT_INT_EQ(-1, ct.label_size);
    ASSERT_OK(knn_content_type_parse(&ct, "text/csv;label_size=1"));
    ASSERT_INT_EQ(1, ct.label_size);
    ASSERT_OK(knn_content_type_parse(&ct, " TEXT/csv ; Label_Size = 0 ; charset=utf-8"));
    ASSERT_INT_EQ(KNN_CONTENT_CSV, ct.kind);
    ASSERT_INT_EQ(0, ct.label_size);
    ASSERT_OK(knn_content_type_parse(&ct, "text/csv; label_size=\"1\";"));
    ASSERT_INT_EQ(1, ct.label_size);
    ASSERT_ERR(KNN_ECONFIG, knn_content_type_parse(&ct, "text/csv;label_size=-1"));
    ASSERT_CONTAINS(knn_error_message(), "label_size must be a non-negative integer");
    ASSERT_ERR(KNN_ECONFIG, knn_content_type_parse(&ct, "text/csv;label_size="));
    ASSERT_ERR(KNN_ECONFIG, knn_content_type_parse(&ct, "text/csv;label_size=one"));
    ASSERT_ERR(KNN_ECONFIG, knn_content_type_parse(&ct, "text/csv;label_size"));
    ASSERT_CONTAINS(knn_error_message(), "has no '='");
    ASSERT_ERR(KNN_ECONFIG, knn_content_type_parse(&ct, "application/jsonlines"));
    ASSERT_ERR(KNN_ECONFIG, knn_content_type_parse(&ct, "text/csvx"));
    ASSERT_ERR(KNN_ECONFIG, knn_content_type_parse(&ct, ";label_size=1"));
    return 0;
}

int test_data_manifest_parsing(void)
{
    char **uris;
    size_t n;
    const char *text = "[{\"prefix\": \"s3://bucket/some/prefix/\"}, \"matrix_0.pbr\", \"sub/matrix_1.pbr\"]";
    ASSERT_OK(knn_job_parse_data_manifest(&uris, &n, text, strlen(text), "s3://bucket/m"));
    ASSERT_UINT_EQ(2, n);
    ASSERT_STR_EQ("s3://bucket/some/prefix/matrix_0.pbr", uris[0]);
    ASSERT_STR_EQ("s3://bucket/some/prefix/sub/matrix_1.pbr", uris[1]);
    knn_job_free_strings(uris, n);

    static const char *const bad[] = {
        "{}", "[]", "[\"a\"]", "[{\"prefix\": 1}, \"a\"]", "[{\"prefix\": \"s3://b/\"}]",
        "[{\"prefix\": \"s3://b/\"}, 3]", "[{\"prefix\": \"s3://b/\"}, \"\"]", "[{\"prefix\": \"/tmp/\"}, \"a\"]",
        "[{\"prefix\": \"s3://b/\", \"x\": 1}, \"a\"]", "[{\"prefix\": \"s3://b/\"}, \"a\"", "[{\"prefix\": \"s3://b/\"}, \"a\\u0000b\"]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ASSERT_ERR(KNN_ECONFIG, knn_job_parse_data_manifest(&uris, &n, bad[i], strlen(bad[i]), "m.json"));
        ASSERT_CONTAINS(knn_error_message(), "manifest m.json: ");
        ASSERT_TRUE(uris == NULL);
    }
    return 0;
}

/* ---- the /opt/ml contract ---- */

static int s_write(const char *dir, const char *name, const char *text)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

static int s_make_tree(char *base, size_t size)
{
    char p[1024];
    if (knn_test_mkdtemp(base, size) != 0)
        return -1;
    const char *dirs[] = {"input", "input/config", "input/data", "input/data/train", "input/data/train/part",
                          "input/data/test", "model", "output"};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", base, dirs[i]);
        if (mkdir(p, 0755) != 0)
            return -1;
    }
    return 0;
}

int test_container_config_files(void)
{
    char base[512], cfgdir[600];
    struct knn_job_config cfg;
    ASSERT_OK(s_make_tree(base, sizeof(base)));
    snprintf(cfgdir, sizeof(cfgdir), "%s/input/config", base);
    ASSERT_INT_EQ(0, s_write(cfgdir, "hyperparameters.json", HPS));
    ASSERT_INT_EQ(0, s_write(cfgdir, "inputdataconfig.json",
                             "{\"train\": {\"ContentType\": \"application/x-recordio-protobuf\", "
                             "\"TrainingInputMode\": \"File\", \"S3DistributionType\": \"FullyReplicated\", "
                             "\"RecordWrapperType\": \"None\"}, "
                             "\"test\": {\"TrainingInputMode\": \"File\", \"S3DistributionType\": \"ShardedByS3Key\", "
                             "\"RecordWrapperType\": \"None\", \"ContentType\": \"text/csv;label_size=1\", "
                             "\"SomeNewPlatformKey\": 1}}"));
    ASSERT_INT_EQ(0, s_write(cfgdir, "resourceconfig.json",
                             "{\"current_host\": \"algo-1\", \"hosts\": [\"algo-1\"], \"network_interface_name\": "
                             "\"eth1\", \"current_instance_type\": \"ml.m5.large\"}"));
    setenv("TRAINING_JOB_NAME", "my-container-job", 1);
    knn_job_config_init(&cfg);
    ASSERT_OK(knn_job_config_from_container(&cfg, base));
    unsetenv("TRAINING_JOB_NAME");
    ASSERT_TRUE(cfg.container);
    ASSERT_STR_EQ("my-container-job", cfg.name);
    ASSERT_STR_EQ("algo-1", cfg.current_host);
    ASSERT_UINT_EQ(1, cfg.instance_count);
    char expect[700];
    snprintf(expect, sizeof(expect), "%s/model", base);
    ASSERT_STR_EQ(expect, cfg.output_path);
    snprintf(expect, sizeof(expect), "%s/input/data/train", base);
    ASSERT_STR_EQ(expect, cfg.channels[KNN_CHANNEL_TRAIN].uri);
    ASSERT_INT_EQ(KNN_CONTENT_RECORDIO_PROTOBUF, cfg.channels[KNN_CHANNEL_TRAIN].content.kind);
    ASSERT_TRUE(cfg.channels[KNN_CHANNEL_TEST].present);
    ASSERT_INT_EQ(KNN_CONTENT_CSV, cfg.channels[KNN_CHANNEL_TEST].content.kind);
    ASSERT_INT_EQ(1, cfg.channels[KNN_CHANNEL_TEST].content.label_size);
    ASSERT_STR_EQ("54", json_string_value(json_object_get(cfg.hyperparameters, "feature_dim")));
    knn_job_config_clean_up(&cfg);

    /* The SageMaker base directory comes from the environment. */
    setenv("SAGEMAKER_BASE_DIR", base, 1);
    ASSERT_STR_EQ(base, knn_job_container_base_dir());
    ASSERT_OK(knn_job_config_from_container(&cfg, NULL));
    ASSERT_STR_EQ("knn-training-job", cfg.name);
    knn_job_config_clean_up(&cfg);
    unsetenv("SAGEMAKER_BASE_DIR");
    ASSERT_STR_EQ("/opt/ml", knn_job_container_base_dir());
    knn_test_rmtree(base);
    return 0;
}

int test_container_pipe_mode_and_defaults(void)
{
    char base[512], cfgdir[600], expect[700];
    struct knn_job_config cfg;
    ASSERT_OK(s_make_tree(base, sizeof(base)));
    snprintf(cfgdir, sizeof(cfgdir), "%s/input/config", base);
    /* Only what the SDK's local mode writes; no resourceconfig.json, no hyperparameters.json. */
    ASSERT_INT_EQ(0, s_write(cfgdir, "inputdataconfig.json", "{\"train\": {\"TrainingInputMode\": \"Pipe\"}}"));
    knn_job_config_init(&cfg);
    ASSERT_OK(knn_job_config_from_container(&cfg, base));
    snprintf(expect, sizeof(expect), "%s/input/data/train_0", base);
    ASSERT_STR_EQ(expect, cfg.channels[KNN_CHANNEL_TRAIN].uri);
    ASSERT_TRUE(cfg.channels[KNN_CHANNEL_TRAIN].pipe);
    ASSERT_STR_EQ("algo-1", cfg.current_host);
    ASSERT_UINT_EQ(0, json_object_size(cfg.hyperparameters));
    knn_job_config_clean_up(&cfg);
    knn_test_rmtree(base);
    return 0;
}

int test_container_errors(void)
{
    char base[512], cfgdir[600];
    struct knn_job_config cfg;
    ASSERT_OK(s_make_tree(base, sizeof(base)));
    snprintf(cfgdir, sizeof(cfgdir), "%s/input/config", base);
    knn_job_config_init(&cfg);
    ASSERT_ERR(KNN_ECONFIG, knn_job_config_from_container(&cfg, base));
    ASSERT_CONTAINS(knn_error_message(), "inputdataconfig.json not found: this is not a SageMaker training container");

    ASSERT_INT_EQ(0, s_write(cfgdir, "inputdataconfig.json", "{\"test\": {}}"));
    ASSERT_ERR(KNN_ECONFIG, knn_job_config_from_container(&cfg, base));
    ASSERT_CONTAINS(knn_error_message(), "the 'train' channel is required");

    ASSERT_INT_EQ(0, s_write(cfgdir, "inputdataconfig.json", "{\"train\": {}, \"validation\": {}}"));
    ASSERT_ERR(KNN_ECONFIG, knn_job_config_from_container(&cfg, base));
    ASSERT_CONTAINS(knn_error_message(), "channel 'validation' is not used by k-NN");

    ASSERT_INT_EQ(0, s_write(cfgdir, "inputdataconfig.json", "{\"train\": {\"ContentType\": \"image/png\"}}"));
    ASSERT_ERR(KNN_ECONFIG, knn_job_config_from_container(&cfg, base));
    ASSERT_CONTAINS(knn_error_message(), "channel 'train': ContentType 'image/png' is not supported");

    ASSERT_INT_EQ(0, s_write(cfgdir, "inputdataconfig.json", "{\"train\": {}}"));
    ASSERT_INT_EQ(0, s_write(cfgdir, "resourceconfig.json",
                             "{\"current_host\": \"algo-1\", \"hosts\": [\"algo-1\", \"algo-2\"]}"));
    /* Several hosts are one Open MPI world (train checks it against mpirun); here they are read in order. */
    ASSERT_OK(knn_job_config_from_container(&cfg, base));
    ASSERT_UINT_EQ(2, cfg.instance_count);
    ASSERT_UINT_EQ(2, cfg.host_count);
    ASSERT_STR_EQ("algo-1", cfg.hosts[0]);
    ASSERT_STR_EQ("algo-2", cfg.hosts[1]);
    knn_job_config_clean_up(&cfg);
    knn_job_config_init(&cfg);
    ASSERT_INT_EQ(0, s_write(cfgdir, "resourceconfig.json", "{\"current_host\": \"algo-1\", \"hosts\": [\"algo-1\", 7]}"));
    ASSERT_ERR(KNN_ECONFIG, knn_job_config_from_container(&cfg, base));
    ASSERT_CONTAINS(knn_error_message(), "resourceconfig.json: hosts[1] is not a host name");

    ASSERT_INT_EQ(0, s_write(cfgdir, "resourceconfig.json", "{\"current_host\": \"algo-1\", \"hosts\": [\"algo-1\"]}"));
    ASSERT_INT_EQ(0, s_write(cfgdir, "hyperparameters.json", "[\"k\"]"));
    ASSERT_ERR(KNN_ECONFIG, knn_job_config_from_container(&cfg, base));
    ASSERT_CONTAINS(knn_error_message(), "hyperparameters.json: expected a JSON object of strings");
    ASSERT_INT_EQ(0, s_write(cfgdir, "hyperparameters.json", "{\"k\": "));
    ASSERT_ERR(KNN_ECONFIG, knn_job_config_from_container(&cfg, base));
    ASSERT_CONTAINS(knn_error_message(), "hyperparameters.json: invalid JSON at line 1");
    knn_test_rmtree(base);
    return 0;
}

/* ---- channel listing and the split among hosts ---- */

int test_channel_local_listing(void)
{
    char base[512], p[700];
    struct knn_object_list list;
    ASSERT_OK(knn_test_mkdtemp(base, sizeof(base)));
    snprintf(p, sizeof(p), "%s/b", base);
    ASSERT_INT_EQ(0, mkdir(p, 0755));
    snprintf(p, sizeof(p), "%s/b/c", base);
    ASSERT_INT_EQ(0, mkdir(p, 0755));
    ASSERT_INT_EQ(0, s_write(base, "z.rec", "12345"));
    ASSERT_INT_EQ(0, s_write(base, "a.rec", "1"));
    ASSERT_INT_EQ(0, s_write(base, "b/c/d.rec", "123"));
    ASSERT_INT_EQ(0, s_write(base, "b.rec", "12"));
    knn_object_list_init(&list);
    ASSERT_OK(knn_channel_list_local(&list, base));
    ASSERT_UINT_EQ(4, list.count);
    ASSERT_UINT_EQ(11, list.total_bytes);
    /* Byte order of the paths: "b.rec" < "b/c/d.rec" because '.' < '/'. */
    const char *expect[] = {"a.rec", "b.rec", "b/c/d.rec", "z.rec"};
    const uint64_t sizes[] = {1, 2, 3, 5};
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof(p), "%s/%s", base, expect[i]);
        ASSERT_STR_EQ(p, list.items[i].uri);
        ASSERT_UINT_EQ(sizes[i], list.items[i].size);
    }
    knn_object_list_clean_up(&list);
    snprintf(p, sizeof(p), "%s/z.rec", base);
    ASSERT_OK(knn_channel_list_local(&list, p));
    ASSERT_UINT_EQ(1, list.count);
    knn_object_list_clean_up(&list);
    snprintf(p, sizeof(p), "%s/missing", base);
    ASSERT_ERR(KNN_ENOTFOUND, knn_channel_list_local(&list, p));
    ASSERT_STR_EQ("/x/y", knn_file_uri_path("file:///x/y"));
    ASSERT_TRUE(knn_file_uri_path("s3://b/k") == NULL);
    knn_test_rmtree(base);
    return 0;
}

int test_channel_host_split(void)
{
    /* ShardedByS3Key over 5 objects and 2 hosts: 0, 2, 4 and 1, 3. */
    int expect0[] = {1, 0, 1, 0, 1};
    for (size_t i = 0; i < 5; i++) {
        ASSERT_INT_EQ(expect0[i], knn_channel_host_reads(i, 0, 2, 1));
        ASSERT_INT_EQ(!expect0[i], knn_channel_host_reads(i, 1, 2, 1));
        ASSERT_TRUE(knn_channel_host_reads(i, 1, 2, 0)); /* FullyReplicated */
        ASSERT_TRUE(knn_channel_host_reads(i, 0, 1, 1));
    }
    /* The doc's example: sample_size 100 over 2 workers is 50 each; remainders go first. */
    ASSERT_UINT_EQ(50, knn_channel_host_sample_size(100, 0, 2));
    ASSERT_UINT_EQ(50, knn_channel_host_sample_size(100, 1, 2));
    ASSERT_UINT_EQ(34, knn_channel_host_sample_size(100, 0, 3));
    ASSERT_UINT_EQ(33, knn_channel_host_sample_size(100, 2, 3));
    ASSERT_UINT_EQ(7, knn_channel_host_sample_size(7, 0, 1));
    return 0;
}

/* ---- failure reasons and the summary ---- */

int test_failure_reasons(void)
{
    char buf[256];
    ASSERT_STR_EQ("ClientError", knn_failure_class(KNN_ECONFIG));
    ASSERT_STR_EQ("ClientError", knn_failure_class(KNN_EFORMAT));
    ASSERT_STR_EQ("ClientError", knn_failure_class(KNN_ERECORDIO_MAGIC));
    ASSERT_STR_EQ("ClientError", knn_failure_class(KNN_ES3_NO_SUCH_BUCKET));
    ASSERT_STR_EQ("ClientError", knn_failure_class(KNN_ETIMEOUT));
    ASSERT_STR_EQ("AlgorithmError", knn_failure_class(KNN_ENOMEM));
    ASSERT_STR_EQ("AlgorithmError", knn_failure_class(KNN_ES3_NET));
    ASSERT_STR_EQ("AlgorithmError", knn_failure_class(KNN_EINTERNAL));
    ASSERT_STR_EQ("ClientError: bad k", knn_failure_reason(buf, sizeof(buf), KNN_ECONFIG, "bad k"));
    ASSERT_STR_EQ("AlgorithmError: out of memory", knn_failure_reason(buf, sizeof(buf), KNN_ENOMEM, ""));

    char dir[512], path[600];
    ASSERT_OK(knn_test_mkdtemp(dir, sizeof(dir)));
    snprintf(path, sizeof(path), "%s/failure", dir);
    ASSERT_OK(knn_failure_write_file(path, "ClientError: x"));
    uint8_t *data;
    size_t len;
    ASSERT_OK(knn_test_read_file(path, &data, &len));
    ASSERT_MEM_EQ("ClientError: x", 14, data, len);
    knn_free(data);
    knn_test_rmtree(dir);
    return 0;
}

int test_summary_json(void)
{
    struct knn_job_summary s = {0};
    s.job_name = "j";
    s.hyperparameters = json_pack("{s:s}", "k", "3");
    s.channels[0] = (struct knn_job_summary_channel){1, 2, 300, 40};
    s.rows_sampled = 40;
    s.index_vectors = 40;
    s.instance_count = 1;
    s.metric_name = "test:accuracy";
    s.metric_value = 0.75;
    s.phase_seconds[KNN_PHASE_BUILD] = 1.5;
    s.total_seconds = 2;
    s.peak_rss_bytes = 1 << 20;
    s.artifact = "s3://b/o/j/output/model.tar.gz";
    json_t *j = knn_job_summary_to_json(&s);
    ASSERT_TRUE(j != NULL);
    ASSERT_STR_EQ("Completed", json_string_value(json_object_get(j, "TrainingJobStatus")));
    ASSERT_STR_EQ("3", json_string_value(json_object_get(json_object_get(j, "HyperParameters"), "k")));
    ASSERT_INT_EQ(300, json_integer_value(json_object_get(json_object_get(json_object_get(j, "Channels"), "train"),
                                                          "bytes")));
    ASSERT_TRUE(json_object_get(json_object_get(j, "Channels"), "test") == NULL);
    ASSERT_NEAR(0.75, json_real_value(json_object_get(json_object_get(j, "FinalMetrics"), "test:accuracy")), 0);
    ASSERT_NEAR(1.5, json_real_value(json_object_get(json_object_get(j, "TimingsSeconds"), "build")), 0);
    ASSERT_STR_EQ("s3://b/o/j/output/model.tar.gz", json_string_value(json_object_get(j, "ModelArtifacts")));
    json_decref(j);
    s.failed = 1;
    s.failure_reason = "ClientError: no";
    j = knn_job_summary_to_json(&s);
    ASSERT_STR_EQ("Failed", json_string_value(json_object_get(j, "TrainingJobStatus")));
    ASSERT_STR_EQ("ClientError: no", json_string_value(json_object_get(j, "FailureReason")));
    ASSERT_TRUE(json_object_get(j, "ModelArtifacts") == NULL);
    json_decref(j);
    json_decref(s.hyperparameters);
    ASSERT_TRUE(knn_peak_rss_bytes() > 0);
    return 0;
}
