/*
 * The SageMaker training-container contract (spec §5.2): the platform writes the job's settings to
 * the JSON files of <base>/input/config and the channel data under <base>/input/data/ before starting
 * `<image> train`. The files are the platform's, so keys we do not use are ignored here (newer
 * platforms add some); the values we use are checked.
 */
#include "train/job_config.h"

#include "knn/common/alloc.h"
#include "knn/common/buf.h"
#include "knn/common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_CONFIG_MAX_BYTES (1024 * 1024)

static char *s_join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), n;
    if (knn_add_size(&n, la, lb) < 0 || knn_add_size(&n, n, 2) < 0)
        return NULL;
    char *out = knn_malloc(n);
    if (!out)
        return NULL;
    snprintf(out, n, "%s/%s", a, b);
    return out;
}

static int s_optional_enum(const json_t *obj, const char *name, const char *const *choices, const char *file,
                           const char *channel, int *out)
{
    const json_t *v = json_object_get(obj, name);
    *out = 0;
    if (!v)
        return 0;
    if (json_is_string(v)) {
        for (int i = 0; choices[i]; i++) {
            if (strcmp(json_string_value(v), choices[i]) == 0) {
                *out = i;
                return 0;
            }
        }
    }
    return knn_error_set(KNN_ECONFIG, "%s: channel '%s': %s has an unsupported value", file, channel, name);
}

static int s_read_channels(struct knn_job_config *cfg, const char *config_dir)
{
    static const char *const modes[] = {"File", "FastFile", "Pipe", NULL};
    static const char *const distributions[] = {"FullyReplicated", "ShardedByS3Key", NULL};
    static const char *const wrappers[] = {"None", "RecordIO", NULL};
    static const char *const compressions[] = {"None", "Gzip", NULL};
    char *path = s_join(config_dir, "inputdataconfig.json");
    json_t *root = NULL;
    int rc;

    if (!path)
        return KNN_ENOMEM;
    rc = knn_job_read_json_file(&root, path, S_CONFIG_MAX_BYTES);
    if (rc == KNN_ENOTFOUND) {
        rc = knn_error_set(KNN_ECONFIG,
                           "%s not found: this is not a SageMaker training container (run `knn-runner train "
                           "--manifest job.json`, or set SAGEMAKER_BASE_DIR)",
                           path);
        goto done;
    }
    if (rc < 0)
        goto done;
    if (!json_is_object(root)) {
        rc = knn_error_set(KNN_ECONFIG, "%s: expected a JSON object of channels", path);
        goto done;
    }
    const char *name;
    json_t *ch;
    json_object_foreach(root, name, ch) {
        struct knn_job_channel *channel = NULL;
        for (int i = 0; i < KNN_CHANNEL_COUNT; i++) {
            if (strcmp(name, cfg->channels[i].name) == 0)
                channel = &cfg->channels[i];
        }
        if (!channel) {
            rc = knn_error_set(KNN_ECONFIG, "%s: channel '%.64s' is not used by k-NN (its channels are 'train' and "
                                            "'test')", path, name);
            goto done;
        }
        if (!json_is_object(ch)) {
            rc = knn_error_set(KNN_ECONFIG, "%s: channel '%s' must be an object", path, name);
            goto done;
        }
        int mode, distribution, wrapper, compression;
        if ((rc = s_optional_enum(ch, "TrainingInputMode", modes, path, name, &mode)) < 0 ||
            (rc = s_optional_enum(ch, "S3DistributionType", distributions, path, name, &distribution)) < 0 ||
            (rc = s_optional_enum(ch, "RecordWrapperType", wrappers, path, name, &wrapper)) < 0 ||
            (rc = s_optional_enum(ch, "CompressionType", compressions, path, name, &compression)) < 0)
            goto done;
        if (wrapper == 1) {
            rc = knn_error_set(KNN_ECONFIG, "%s: channel '%s': RecordWrapperType RecordIO is not supported", path, name);
            goto done;
        }
        /* In Pipe mode SageMaker gunzips the objects into the FIFO itself; File mode copies them as they are. */
        if (compression == 1 && mode != 2) {
            rc = knn_error_set(KNN_ECONFIG, "%s: channel '%s': CompressionType Gzip needs Pipe input mode; %s mode "
                                            "only supports None", path, name, mode == 1 ? "FastFile" : "File");
            goto done;
        }
        const json_t *ct = json_object_get(ch, "ContentType");
        if (ct && !json_is_string(ct)) {
            rc = knn_error_set(KNN_ECONFIG, "%s: channel '%s': ContentType must be a string", path, name);
            goto done;
        }
        if (ct && (rc = knn_content_type_parse(&channel->content, json_string_value(ct))) < 0) {
            rc = knn_error_wrap(rc, "%s: channel '%s'", path, name);
            goto done;
        }
        if (ct && !(channel->content_type = knn_strdup(json_string_value(ct)))) {
            rc = KNN_ENOMEM;
            goto done;
        }
        channel->present = 1;
        channel->pipe = mode == 2;
        channel->sharded = distribution == 1; /* informative: the platform already sharded */
        char dir[64];
        snprintf(dir, sizeof(dir), "input/data/%s%s", name, channel->pipe ? "_0" : "");
        if (!(channel->uri = s_join(cfg->base_dir, dir))) {
            rc = KNN_ENOMEM;
            goto done;
        }
    }
    if (!cfg->channels[KNN_CHANNEL_TRAIN].present)
        rc = knn_error_set(KNN_ECONFIG, "%s: the 'train' channel is required", path);
done:
    json_decref(root);
    knn_free(path);
    return rc;
}

/*
 * resourceconfig.json's "hosts": several hosts are one Open MPI world, rank r on hosts[r] (started
 * from the first host with a hostfile listing them in this order; see runner/README.md). The
 * instance count is their number; train checks it against the world and current_host against the
 * rank.
 */
#define S_MAX_HOSTS 4096

static int s_read_hosts(struct knn_job_config *cfg, const json_t *hosts, const char *path)
{
    size_t n = json_array_size(hosts);
    if (n == 0)
        return 0;
    if (n > S_MAX_HOSTS)
        return knn_error_set(KNN_ECONFIG, "%s: %zu hosts, more than the %d supported", path, n, S_MAX_HOSTS);
    if (!(cfg->hosts = knn_calloc(n, sizeof(*cfg->hosts))))
        return KNN_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const json_t *h = json_array_get(hosts, i);
        if (!json_is_string(h) || json_string_length(h) == 0 || json_string_length(h) > 255)
            return knn_error_set(KNN_ECONFIG, "%s: hosts[%zu] is not a host name", path, i);
        if (!(cfg->hosts[i] = knn_strdup(json_string_value(h))))
            return KNN_ENOMEM;
        cfg->host_count = i + 1;
    }
    cfg->instance_count = n;
    return 0;
}

static int s_read_resources(struct knn_job_config *cfg, const char *config_dir)
{
    char *path = s_join(config_dir, "resourceconfig.json");
    json_t *root = NULL;
    const char *host = "algo-1";
    int rc;

    if (!path)
        return KNN_ENOMEM;
    rc = knn_job_read_json_file(&root, path, S_CONFIG_MAX_BYTES);
    if (rc == KNN_ENOTFOUND) {
        rc = 0; /* local runs may leave it out: one host, algo-1 */
    } else if (rc == 0) {
        const json_t *current = json_object_get(root, "current_host");
        const json_t *hosts = json_object_get(root, "hosts");
        if (!json_is_object(root) || (current && !json_is_string(current)) || (hosts && !json_is_array(hosts))) {
            rc = knn_error_set(KNN_ECONFIG, "%s: expected {\"current_host\": \"algo-1\", \"hosts\": [...]}", path);
            goto done;
        }
        if (current)
            host = json_string_value(current);
        if (hosts && (rc = s_read_hosts(cfg, hosts, path)) < 0)
            goto done;
    }
    if (rc == 0 && !(cfg->current_host = knn_strdup(host)))
        rc = KNN_ENOMEM;
done:
    json_decref(root);
    knn_free(path);
    return rc;
}

int knn_job_config_from_container(struct knn_job_config *cfg, const char *base_dir)
{
    char *config_dir = NULL, *path = NULL;
    json_t *hp = NULL;
    int rc;

    knn_job_config_clean_up(cfg);
    cfg->container = 1;
    if (!base_dir)
        base_dir = knn_job_container_base_dir();
    const char *job_name = getenv("TRAINING_JOB_NAME");
    if (!(cfg->base_dir = knn_strdup(base_dir)) || !(config_dir = s_join(base_dir, "input/config")) ||
        !(cfg->output_path = s_join(base_dir, "model")) ||
        !(cfg->name = knn_strdup(job_name && *job_name ? job_name : "knn-training-job"))) {
        rc = KNN_ENOMEM;
        goto on_error;
    }
    if ((rc = s_read_channels(cfg, config_dir)) < 0 || (rc = s_read_resources(cfg, config_dir)) < 0)
        goto on_error;

    if (!(path = s_join(config_dir, "hyperparameters.json"))) {
        rc = KNN_ENOMEM;
        goto on_error;
    }
    rc = knn_job_read_json_file(&hp, path, S_CONFIG_MAX_BYTES);
    if (rc == KNN_ENOTFOUND) {
        hp = json_object(); /* no hyperparameters: validation names the required ones */
        rc = hp ? 0 : KNN_ENOMEM;
    }
    if (rc < 0)
        goto on_error;
    if (!json_is_object(hp)) {
        rc = knn_error_set(KNN_ECONFIG, "%s: expected a JSON object of strings", path);
        goto on_error;
    }
    cfg->hyperparameters = hp;
    knn_free(config_dir);
    knn_free(path);
    return 0;

on_error:
    json_decref(hp);
    knn_free(config_dir);
    knn_free(path);
    knn_job_config_clean_up(cfg);
    return rc;
}
