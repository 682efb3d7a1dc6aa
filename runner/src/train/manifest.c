/*
 * Job manifests shaped like a CreateTrainingJob request (spec §5.7). Every problem is collected with
 * the path of its field ("InputDataConfig[1].DataSource.S3DataSource.S3Uri: ...") and reported at
 * once. Fields SageMaker has that mean nothing locally are accepted and ignored.
 */
#include "train/job_config.h"

#include "knn/common/alloc.h"
#include "knn/common/buf.h"
#include "knn/common/error.h"
#include "knn/s3/uri.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define S_MANIFEST_MAX_BYTES (1024 * 1024)

struct s_ctx {
    struct knn_buf errs;
    int oom;      /* an append failed: report ENOMEM */
    int job_mode; /* AlgorithmSpecification.TrainingInputMode: index in s_input_modes (0 File, the default) */
};

static void s_err(struct s_ctx *c, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void s_err(struct s_ctx *c, const char *path, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* Past the cap, later problems are dropped: the first ones are the useful ones. */
    if (knn_buf_printf(&c->errs, "%s%s: %s", c->errs.len ? "; " : "", path, msg) == KNN_ENOMEM)
        c->oom = 1;
}

static const char *s_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
        case JSON_OBJECT: return "an object";
        case JSON_ARRAY: return "an array";
        case JSON_STRING: return "a string";
        case JSON_INTEGER: return "an integer";
        case JSON_REAL: return "a number";
        case JSON_TRUE:
        case JSON_FALSE: return "a boolean";
        default: return "null";
    }
}

/* out = path + "." + name (or name alone at the top), truncated to size. */
static void s_path(char *out, size_t size, const char *path, const char *name)
{
    size_t used = 0;
    const char *parts[3] = {path, *path ? "." : "", name};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(parts[i]);
        if (n > size - 1 - used)
            n = size - 1 - used;
        memcpy(out + used, parts[i], n);
        used += n;
    }
    out[used] = '\0';
}

/* Report every member of `obj` not in `allowed` (NULL-terminated). */
static void s_check_fields(struct s_ctx *c, const char *path, const json_t *obj, const char *const *allowed)
{
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)obj, key, value) {
        const char *const *a = allowed;
        while (*a && strcmp(*a, key) != 0)
            a++;
        if (!*a) {
            char p[256];
            s_path(p, sizeof(p), path, key);
            s_err(c, p, "unknown field");
        }
    }
}


/* obj[name] if present and of `type`; reports a missing required member or a wrong type. */
static const json_t *s_member(struct s_ctx *c, const char *path, const json_t *obj, const char *name, json_type type,
                              int required)
{
    char p[256];
    const json_t *v = json_object_get(obj, name);
    s_path(p, sizeof(p), path, name);
    if (!v) {
        if (required)
            s_err(c, p, "required field is missing");
        return NULL;
    }
    if (json_typeof(v) != type) {
        const char *want = type == JSON_OBJECT   ? "an object"
                           : type == JSON_ARRAY  ? "an array"
                           : type == JSON_STRING ? "a string"
                                                 : "an integer";
        s_err(c, p, "expected %s, found %s", want, s_type_name(v));
        return NULL;
    }
    return v;
}

static const char *s_string(struct s_ctx *c, const char *path, const json_t *obj, const char *name, int required)
{
    const json_t *v = s_member(c, path, obj, name, JSON_STRING, required);
    return v ? json_string_value(v) : NULL;
}

/* A string member that must be one of `choices`; returns its index, or -1. */
static int s_enum(struct s_ctx *c, const char *path, const json_t *obj, const char *name,
                  const char *const *choices, int required)
{
    const char *s = s_string(c, path, obj, name, required);
    if (!s)
        return -1;
    for (int i = 0; choices[i]; i++) {
        if (strcmp(s, choices[i]) == 0)
            return i;
    }
    char p[256], list[256] = "";
    size_t used = 0;
    for (int i = 0; choices[i]; i++) {
        int n = snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", choices[i]);
        if (n > 0 && (size_t)n < sizeof(list) - used)
            used += (size_t)n;
    }
    s_path(p, sizeof(p), path, name);
    s_err(c, p, "'%.100s' is not one of %s", s, list);
    return -1;
}

/* A JSON integer >= 1 (the API's integers are JSON numbers); 0 when absent or wrong. */
static uint64_t s_positive(struct s_ctx *c, const char *path, const json_t *obj, const char *name)
{
    const json_t *v = s_member(c, path, obj, name, JSON_INTEGER, 0);
    if (!v)
        return 0;
    if (json_integer_value(v) < 1) {
        char p[256];
        s_path(p, sizeof(p), path, name);
        s_err(c, p, "must be an integer >= 1, found %lld", (long long)json_integer_value(v));
        return 0;
    }
    return (uint64_t)json_integer_value(v);
}

static int s_is_supported_uri(const char *uri)
{
    if (strncmp(uri, "s3://", 5) == 0)
        return uri[5] != '\0' && uri[5] != '/';
    /* an AWS https:// S3 URL: SageMaker's S3Uri pattern is ^(https|s3)://, case-sensitive */
    if (strncmp(uri, "https://", 8) == 0 && knn_s3_uri_is_s3(uri))
        return 1;
    if (strncmp(uri, "file://", 7) == 0)
        return uri[7] != '\0';
    return 0;
}

static char *s_dup(struct s_ctx *c, const char *s)
{
    char *d = knn_strdup(s);
    if (!d)
        c->oom = 1;
    return d;
}

/* Fields of the request that do not apply to a local job: accepted whatever their value. */
static const char *const s_top_fields[] = {
    "TrainingJobName", "HyperParameters", "AlgorithmSpecification", "InputDataConfig", "OutputDataConfig",
    "ResourceConfig", "StoppingCondition", "EndpointUrl", "KnnRunner",
    /* ignored */
    "RoleArn", "VpcConfig", "Tags", "EnableNetworkIsolation", "EnableInterContainerTrafficEncryption",
    "EnableManagedSpotTraining", "CheckpointConfig", "Environment", "RetryStrategy", "DebugHookConfig",
    "DebugRuleConfigurations", "TensorBoardOutputConfig", "ExperimentConfig", "ProfilerConfig",
    "ProfilerRuleConfigurations", "RemoteDebugConfig", "InfraCheckConfig", "SessionChainingConfig", NULL};
static const char *const s_algo_fields[] = {
    "TrainingImage", "TrainingInputMode", "AlgorithmName", "MetricDefinitions", "ContainerEntrypoint",
    "ContainerArguments", "EnableSageMakerMetricsTimeSeries", "TrainingImageConfig", NULL};
static const char *const s_channel_fields[] = {
    "ChannelName", "DataSource", "ContentType", "CompressionType", "RecordWrapperType", "InputMode", "ShuffleConfig",
    NULL};
static const char *const s_source_fields[] = {"S3DataSource", "FileSystemDataSource", NULL};
static const char *const s_s3_fields[] = {
    "S3DataType", "S3Uri", "S3DataDistributionType", "AttributeNames", "InstanceGroupNames", NULL};
static const char *const s_output_fields[] = {"S3OutputPath", "KmsKeyId", "CompressionType", NULL};
static const char *const s_resource_fields[] = {
    "InstanceType", "InstanceCount", "VolumeSizeInGB", "VolumeKmsKeyId", "KeepAlivePeriodInSeconds",
    "InstanceGroups", NULL};
static const char *const s_stopping_fields[] = {
    "MaxRuntimeInSeconds", "MaxWaitTimeInSeconds", "MaxPendingTimeInSeconds", NULL};

static const char *const s_input_modes[] = {"File", "Pipe", "FastFile", NULL};
static const char *const s_data_types[] = {"S3Prefix", "ManifestFile", "AugmentedManifestFile", NULL};
static const char *const s_distributions[] = {"FullyReplicated", "ShardedByS3Key", NULL};
static const char *const s_compressions[] = {"None", "Gzip", NULL};
static const char *const s_wrappers[] = {"None", "RecordIO", NULL};

static void s_parse_channel(struct s_ctx *c, struct knn_job_config *cfg, const json_t *ch, size_t index)
{
    char path[64], p[256];
    snprintf(path, sizeof(path), "InputDataConfig[%zu]", index);
    if (!json_is_object(ch)) {
        s_err(c, path, "expected an object, found %s", s_type_name(ch));
        return;
    }
    s_check_fields(c, path, ch, s_channel_fields);

    const char *name = s_string(c, path, ch, "ChannelName", 1);
    struct knn_job_channel *channel = NULL;
    if (name) {
        for (int i = 0; i < KNN_CHANNEL_COUNT; i++) {
            if (strcmp(name, cfg->channels[i].name) == 0)
                channel = &cfg->channels[i];
        }
        s_path(p, sizeof(p), path, "ChannelName");
        if (!channel) {
            s_err(c, p, "channel '%.64s' is not used by k-NN (its channels are 'train' and 'test')", name);
        } else if (channel->present) {
            s_err(c, p, "channel '%s' is given twice", name);
            channel = NULL;
        }
    }

    int mode = s_enum(c, path, ch, "InputMode", s_input_modes, 0); /* we always stream */
    if (mode < 0)
        mode = c->job_mode;
    int gzip = s_enum(c, path, ch, "CompressionType", s_compressions, 0) == 1;
    if (gzip && mode != 1) {
        /* SageMaker decompresses only what it streams (Pipe); File and FastFile take the objects as they are. */
        s_path(p, sizeof(p), path, "CompressionType");
        s_err(c, p, "'Gzip' needs Pipe input mode: this channel is in %s mode, which only supports None "
                    "(set InputMode or AlgorithmSpecification.TrainingInputMode to Pipe, or give uncompressed data)",
              s_input_modes[mode]);
        gzip = 0;
    }
    if (s_enum(c, path, ch, "RecordWrapperType", s_wrappers, 0) == 1) {
        s_path(p, sizeof(p), path, "RecordWrapperType");
        s_err(c, p, "'RecordIO' is not supported: give RecordIO-protobuf data with RecordWrapperType None");
    }
    const char *content_type = s_string(c, path, ch, "ContentType", 0);
    struct knn_content_type content = {KNN_CONTENT_RECORDIO_PROTOBUF, -1};
    if (content_type && knn_content_type_parse(&content, content_type) != 0) {
        s_path(p, sizeof(p), path, "ContentType");
        s_err(c, p, "%s", knn_error_message());
    }
    const json_t *shuffle = s_member(c, path, ch, "ShuffleConfig", JSON_OBJECT, 0);
    if (shuffle) {
        static const char *const seed_only[] = {"Seed", NULL};
        s_path(p, sizeof(p), path, "ShuffleConfig");
        s_check_fields(c, p, shuffle, seed_only);
    }

    s_path(p, sizeof(p), path, "DataSource");
    const json_t *source = s_member(c, path, ch, "DataSource", JSON_OBJECT, 1);
    const char *uri = NULL;
    int data_type = -1, distribution = -1;
    if (source) {
        char sp[256];
        s_check_fields(c, p, source, s_source_fields);
        if (json_object_get(source, "FileSystemDataSource")) {
            s_path(sp, sizeof(sp), p, "FileSystemDataSource");
            s_err(c, sp, "EFS and FSx sources are not supported; use S3DataSource with an s3:// or file:// URI");
        }
        const json_t *s3 = s_member(c, p, source, "S3DataSource", JSON_OBJECT, 1);
        if (s3) {
            s_path(sp, sizeof(sp), p, "S3DataSource");
            s_check_fields(c, sp, s3, s_s3_fields);
            data_type = s_enum(c, sp, s3, "S3DataType", s_data_types, 1);
            if (data_type == 2) {
                char dp[300];
                s_path(dp, sizeof(dp), sp, "S3DataType");
                s_err(c, dp, "'AugmentedManifestFile' is not supported by k-NN");
            }
            uri = s_string(c, sp, s3, "S3Uri", 1);
            if (uri && !s_is_supported_uri(uri)) {
                char up[300];
                s_path(up, sizeof(up), sp, "S3Uri");
                s_err(c, up, "'%.200s' is not an s3://bucket/prefix, AWS https:// S3 URL or file://path URI", uri);
                uri = NULL;
            }
            distribution = s_enum(c, sp, s3, "S3DataDistributionType", s_distributions, 0);
        }
    }
    if (!channel)
        return;
    channel->present = 1;
    if (uri)
        channel->uri = s_dup(c, uri);
    channel->manifest_file = data_type == 1;
    channel->gzip = gzip;
    channel->sharded = distribution == 1;
    channel->content = content;
    if (content_type)
        channel->content_type = s_dup(c, content_type);
}

static const char *const s_ext_fields[] = {
    "TargetRecall", "RecallQueries", "IndexType", "M", "efConstruction", "efSearch", NULL};
static const char *const s_ext_index_types[] = {"ivf_sq8", "hnsw", NULL};

/* An integer member of "KnnRunner" in [lo, hi]; 0 when absent or wrong. */
static uint64_t s_ext_int(struct s_ctx *c, const json_t *obj, const char *name, long long lo, long long hi)
{
    const json_t *v = s_member(c, "KnnRunner", obj, name, JSON_INTEGER, 0);
    if (!v)
        return 0;
    if (json_integer_value(v) < lo || json_integer_value(v) > hi) {
        char p[64];
        snprintf(p, sizeof(p), "KnnRunner.%s", name);
        s_err(c, p, "must be an integer from %lld to %lld, found %lld", lo, hi, (long long)json_integer_value(v));
        return 0;
    }
    return (uint64_t)json_integer_value(v);
}

/* "KnnRunner": our extensions (job_config.h). */
static void s_parse_ext(struct s_ctx *c, struct knn_job_ext *ext, const json_t *obj)
{
    s_check_fields(c, "KnnRunner", obj, s_ext_fields);
    const json_t *v = json_object_get(obj, "TargetRecall");
    if (v && (!json_is_number(v) || !(json_number_value(v) > 0.0 && json_number_value(v) <= 1.0)))
        s_err(c, "KnnRunner.TargetRecall", "expected a number in (0, 1], found %s",
              json_is_number(v) ? "one outside" : s_type_name(v));
    else if (v)
        ext->target_recall = json_number_value(v);
    v = s_member(c, "KnnRunner", obj, "RecallQueries", JSON_INTEGER, 0);
    if (v && (json_integer_value(v) < 0 || json_integer_value(v) > KNN_JOB_MAX_RECALL_QUERIES))
        s_err(c, "KnnRunner.RecallQueries", "must be an integer from 0 to %d, found %lld", KNN_JOB_MAX_RECALL_QUERIES,
              (long long)json_integer_value(v));
    else if (v)
        ext->recall_queries = (int64_t)json_integer_value(v);
    int t = s_enum(c, "KnnRunner", obj, "IndexType", s_ext_index_types, 0);
    if (t >= 0)
        ext->index_type = s_ext_index_types[t];
    ext->hnsw_m = s_ext_int(c, obj, "M", 2, 512);
    ext->ef_construction = s_ext_int(c, obj, "efConstruction", 1, 65536);
    ext->ef_search = s_ext_int(c, obj, "efSearch", 1, 4096);
    if ((ext->hnsw_m || ext->ef_construction || ext->ef_search) && (t < 0 || strcmp(s_ext_index_types[t], "hnsw")))
        s_err(c, "KnnRunner", "M, efConstruction and efSearch apply only with \"IndexType\": \"hnsw\"");
}

int knn_job_config_from_manifest(struct knn_job_config *cfg, const json_t *root, const char *source)
{
    struct s_ctx c = {KNN_BUF_INIT(16 * 1024), 0, 0};
    int rc = 0;

    knn_job_config_clean_up(cfg);
    if (!json_is_object(root)) {
        rc = knn_error_set(KNN_ECONFIG, "job manifest %s: expected a JSON object (a CreateTrainingJob request)",
                           source);
        goto on_error;
    }
    s_check_fields(&c, "", root, s_top_fields);

    const char *name = s_string(&c, "", root, "TrainingJobName", 1);
    if (name && !knn_job_name_is_valid(name))
        s_err(&c, "TrainingJobName", "'%.100s' must be 1 to 63 letters, digits and hyphens, starting and ending with "
                                     "a letter or digit", name);
    else if (name)
        cfg->name = s_dup(&c, name);

    const json_t *hp = json_object_get(root, "HyperParameters");
    if (hp && !json_is_object(hp)) {
        s_err(&c, "HyperParameters", "expected an object of strings, found %s", s_type_name(hp));
    } else {
        /* CreateTrainingJob's own limits (spec §1.1): what SageMaker would refuse, we refuse. */
        const char *key;
        json_t *value;
        if (hp && json_object_size(hp) > 100)
            s_err(&c, "HyperParameters", "%zu entries, more than the 100 SageMaker accepts", json_object_size(hp));
        if (hp) {
            json_object_foreach((json_t *)hp, key, value) {
                char p[256];
                s_path(p, sizeof(p), "HyperParameters", key);
                if (strlen(key) > 256)
                    s_err(&c, p, "the name is longer than 256 characters");
                else if (json_is_string(value) && json_string_length(value) > 256)
                    s_err(&c, p, "the value is longer than 256 characters");
            }
        }
        cfg->hyperparameters = hp ? json_incref((json_t *)hp) : json_object();
    }

    const json_t *algo = s_member(&c, "", root, "AlgorithmSpecification", JSON_OBJECT, 0);
    if (algo) {
        s_check_fields(&c, "AlgorithmSpecification", algo, s_algo_fields);
        int job_mode = s_enum(&c, "AlgorithmSpecification", algo, "TrainingInputMode", s_input_modes, 0);
        c.job_mode = job_mode < 0 ? 0 : job_mode;
    }

    const json_t *inputs = s_member(&c, "", root, "InputDataConfig", JSON_ARRAY, 1);
    if (inputs) {
        size_t i;
        const json_t *ch;
        json_array_foreach(inputs, i, ch) s_parse_channel(&c, cfg, ch, i);
        if (!cfg->channels[KNN_CHANNEL_TRAIN].present)
            s_err(&c, "InputDataConfig", "the 'train' channel is required");
    }

    const json_t *output = s_member(&c, "", root, "OutputDataConfig", JSON_OBJECT, 1);
    if (output) {
        s_check_fields(&c, "OutputDataConfig", output, s_output_fields);
        const char *path = s_string(&c, "OutputDataConfig", output, "S3OutputPath", 1);
        if (path && !s_is_supported_uri(path))
            s_err(&c, "OutputDataConfig.S3OutputPath", "'%.200s' is not an s3://bucket/prefix, AWS https:// S3 URL or file://path URI",
                  path);
        else if (path)
            cfg->output_path = s_dup(&c, path);
    }

    const json_t *resources = s_member(&c, "", root, "ResourceConfig", JSON_OBJECT, 0);
    if (resources) {
        s_check_fields(&c, "ResourceConfig", resources, s_resource_fields);
        uint64_t n = s_positive(&c, "ResourceConfig", resources, "InstanceCount");
        if (n > 64)
            s_err(&c, "ResourceConfig.InstanceCount", "%llu simulated hosts is more than the 64 supported",
                  (unsigned long long)n);
        else if (n)
            cfg->instance_count = n;
    }

    const json_t *stopping = s_member(&c, "", root, "StoppingCondition", JSON_OBJECT, 0);
    if (stopping) {
        s_check_fields(&c, "StoppingCondition", stopping, s_stopping_fields);
        cfg->max_runtime_s = s_positive(&c, "StoppingCondition", stopping, "MaxRuntimeInSeconds");
    }

    const char *endpoint = s_string(&c, "", root, "EndpointUrl", 0);
    if (endpoint && strncmp(endpoint, "http://", 7) != 0 && strncmp(endpoint, "https://", 8) != 0)
        s_err(&c, "EndpointUrl", "'%.200s' is not an http:// or https:// URL", endpoint);
    else if (endpoint)
        cfg->endpoint_url = s_dup(&c, endpoint);

    const json_t *ext = s_member(&c, "", root, "KnnRunner", JSON_OBJECT, 0);
    if (ext)
        s_parse_ext(&c, &cfg->ext, ext);

    if (c.oom) {
        rc = knn_error_set(KNN_ENOMEM, "job manifest %s: out of memory", source);
        goto on_error;
    }
    if (c.errs.len) {
        rc = knn_error_set(KNN_ECONFIG, "job manifest %s: %s", source, (char *)c.errs.data);
        goto on_error;
    }
    knn_buf_clean_up(&c.errs);
    return 0;

on_error:
    knn_buf_clean_up(&c.errs);
    knn_job_config_clean_up(cfg);
    return rc;
}

int knn_job_config_from_manifest_file(struct knn_job_config *cfg, const char *path)
{
    json_t *root = NULL;
    int rc = knn_job_read_json_file(&root, path, S_MANIFEST_MAX_BYTES);
    if (rc < 0)
        return knn_error_wrap(rc, "job manifest");
    rc = knn_job_config_from_manifest(cfg, root, path);
    json_decref(root);
    return rc;
}
