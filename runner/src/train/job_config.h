#ifndef KNN_RUNNER_JOB_CONFIG_H
#define KNN_RUNNER_JOB_CONFIG_H

/**
 * What a training job is asked to do, from either source SageMaker uses:
 *
 * - a job manifest shaped like a CreateTrainingJob request (spec §5.7), read by
 *   knn_job_config_from_manifest_file(): channels `train` (required) and `test` (optional) with
 *   S3Prefix or ManifestFile data, s3:// or file:// URIs, ContentType, distribution; the output
 *   path; InstanceCount (simulated hosts); MaxRuntimeInSeconds; and our one addition, the
 *   top-level "EndpointUrl" of an S3-compatible server. Fields SageMaker has that do not apply
 *   locally are accepted and ignored; unknown fields and wrong types are errors naming the field
 *   path (all of them at once);
 *
 * - the SageMaker training-container contract (spec §5.2), read by knn_job_config_from_container():
 *   <base>/input/config/{hyperparameters,inputdataconfig,resourceconfig}.json, channel files
 *   under <base>/input/data/<channel>/ (File mode) or the FIFO <base>/input/data/<channel>_0
 *   (Pipe mode); the model goes to <base>/model/, a failure reason to <base>/output/failure.
 *   <base> is $SAGEMAKER_BASE_DIR, or /opt/ml.
 *
 * Errors are KNN_ECONFIG (the runner reports them as "ClientError: ..."), KNN_ENOTFOUND /
 * KNN_EIO for unreadable files, KNN_ENOMEM. Nothing here touches the network or the data.
 */

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

enum knn_content_kind {
    KNN_CONTENT_RECORDIO_PROTOBUF = 0, /* application/x-recordio-protobuf (the default) */
    KNN_CONTENT_CSV = 1,               /* text/csv;label_size=N */
};

struct knn_content_type {
    enum knn_content_kind kind;
    int label_size; /* CSV: leading label columns; -1 when the parameter is absent */
};

/**
 * Parse a channel ContentType: `type/subtype` case-insensitive, `;`-separated parameters with
 * case-insensitive names and surrounding spaces ignored; `label_size` must be a non-negative
 * integer; other parameters (charset, ...) are ignored. NULL or "" means RecordIO-protobuf.
 * KNN_ECONFIG for another type or a malformed value.
 */
int knn_content_type_parse(struct knn_content_type *out, const char *text);

/** The two channels k-NN reads (spec §2.1). */
enum knn_channel_id {
    KNN_CHANNEL_TRAIN = 0,
    KNN_CHANNEL_TEST = 1,
    KNN_CHANNEL_COUNT = 2,
};

struct knn_job_channel {
    int present;
    const char *name;           /* "train" | "test" */
    char *uri;                  /* s3://bucket/prefix, file://path; container: a local directory or FIFO */
    int manifest_file;          /* S3DataType ManifestFile: uri names a manifest listing the objects */
    int sharded;                /* ShardedByS3Key (else FullyReplicated) */
    int pipe;                   /* container Pipe mode: uri is one FIFO read start to end */
    int gzip;                   /* manifest, Pipe mode with CompressionType Gzip: each object is gunzipped as it streams */
    struct knn_content_type content;
    char *content_type;         /* as given (NULL if absent), for logs */
};

/**
 * The manifest's top-level "KnnRunner" object: settings outside SageMaker's hyperparameters, so a
 * manifest's HyperParameters stay valid for SageMaker.
 *   "TargetRecall": R    (0 < R <= 1) tune the IVF nprobe to the smallest reaching recall@k R
 *   "RecallQueries": Q   (0..100000) held-out queries for the recall measurement; 0 = do not measure
 *   "IndexType": T       "ivf_sq8" (FAISS IndexIVFScalarQuantizer, 8-bit) or "hnsw" (FAISS
 *                        IndexHNSWFlat) instead of the hyperparameter index_type; nlists and metric
 *                        rules as for faiss.IVFFlat (ivf_sq8), any metric (hnsw)
 *   "M": m (2..512), "efConstruction": e (1..65536), "efSearch": s (1..4096)   hnsw only
 */
struct knn_job_ext {
    double target_recall;   /* 0: none */
    int64_t recall_queries; /* -1: the default, min(1000, 1% of the sample) */
    const char *index_type; /* NULL: the hyperparameter's; else a static string ("ivf_sq8", "hnsw") */
    uint64_t hnsw_m, ef_construction, ef_search; /* 0: the defaults (32, 40, 64) */
};

#define KNN_JOB_MAX_RECALL_QUERIES 100000

struct knn_job_config {
    int container;              /* 1: the /opt/ml contract */
    char *name;                 /* TrainingJobName (container: $TRAINING_JOB_NAME or "knn-training-job") */
    json_t *hyperparameters;    /* the object as given (owned reference) */
    struct knn_job_channel channels[KNN_CHANNEL_COUNT];
    char *output_path;          /* S3OutputPath; container: <base>/model */
    char *endpoint_url;         /* "EndpointUrl", or NULL (the S3 client's own resolution) */
    uint64_t instance_count;    /* simulated hosts (>= 1) */
    uint64_t max_runtime_s;     /* 0 = no limit */
    char *base_dir;             /* container: <base> */
    char *current_host;         /* "algo-1", or resourceconfig's current_host */
    char **hosts;               /* container: resourceconfig's hosts, in order (rank r runs on hosts[r]) */
    size_t host_count;          /* 0 when resourceconfig.json gives none */
    struct knn_job_ext ext;     /* "KnnRunner" */
};

void knn_job_config_init(struct knn_job_config *cfg);
void knn_job_config_clean_up(struct knn_job_config *cfg);

/** Parse a manifest held in memory (`source` names it in messages). */
int knn_job_config_from_manifest(struct knn_job_config *cfg, const json_t *root, const char *source);
/** Read and parse a manifest file (at most 1 MiB of JSON). */
int knn_job_config_from_manifest_file(struct knn_job_config *cfg, const char *path);

/** Read the container contract under `base_dir` (NULL: $SAGEMAKER_BASE_DIR or /opt/ml). */
int knn_job_config_from_container(struct knn_job_config *cfg, const char *base_dir);

/** The container base directory: $SAGEMAKER_BASE_DIR if set and not empty, else "/opt/ml". */
const char *knn_job_container_base_dir(void);

/**
 * Read a JSON document from a local file of at most `max_bytes` (parse errors name the file, line
 * and column; duplicate keys are rejected). KNN_ENOTFOUND, KNN_EIO, KNN_ETOOBIG, KNN_ECONFIG.
 */
int knn_job_read_json_file(json_t **out, const char *path, size_t max_bytes);

/**
 * A S3DataType=ManifestFile document (spec §5.7): a JSON array whose first element is
 * {"prefix": "s3://bucket/some/prefix/"} and the rest relative keys. Writes a knn_malloc'ed
 * array of knn_malloc'ed full URIs (prefix + key) to *uris and its length to *count; free with
 * knn_job_free_strings(). `source` names the manifest in messages. KNN_ECONFIG on a bad shape.
 */
int knn_job_parse_data_manifest(char ***uris, size_t *count, const char *text, size_t len, const char *source);
void knn_job_free_strings(char **strings, size_t count);

/** 1 if `name` matches SageMaker's TrainingJobName rule (1-63 chars, ^[a-zA-Z0-9](-*[a-zA-Z0-9])*$). */
int knn_job_name_is_valid(const char *name);

#endif
