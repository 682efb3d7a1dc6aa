/*
 * The training job: configuration -> channels -> sample -> index -> test score -> model.tar.gz.
 * See train.h for the whole story; the helpers below follow the job's order.
 */
#include "train/train.h"

#include "train/channels.h"
#include "train/hyperparams.h"
#include "train/job_config.h"
#include "train/job_report.h"
#include "model_archive.h"
#include "progress.h"
#include "train/train_io.h"
#include "train/train_world.h"

#include "knn/algorithms/model.h"
#include "knn/algorithms/recall.h"
#include "knn/algorithms/sample.h"
#include "knn/common/alloc.h"
#include "knn/common/buf.h"
#include "knn/common/clock.h"
#include "knn/common/error.h"
#include "knn/common/log.h"
#include "knn/recordio/rows.h"
#include "knn/s3/client.h"
#include "knn/world/world.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_CSV_STREAMS 2
#define S_MAX_THREADS 64
#define S_SAMPLE_SEED 0x6b6e6e2d73616d70ULL /* "knn-samp" */
#define S_SAMPLE_BATCH_BYTES ((size_t)4 << 20)
#define S_SCORE_BATCH_BYTES ((size_t)32 << 20)
/* S3 read-ahead per stream: 4 parts of 8 MiB. */
#define S_READ_PART_SIZE ((size_t)8 << 20)
#define S_READ_IN_FLIGHT 4
/*
 * model.tar.gz: deflate runs at ~20 MB/s on float32 index data and saves ~7%, so big models are
 * stored (still gzip); small ones, where it costs nothing, are compressed as SageMaker's are.
 */
#define S_COMPRESS_BELOW ((uint64_t)4 << 20)

static const char *const s_model_files[] = {"model_algo-1", "model_algo-1.labels", "model_algo-1.json"};
#define S_MODEL_FILES 3

/* ---- stopping: MaxRuntimeInSeconds, SIGTERM, SIGINT, or a failed worker ---- */

/* S_STOP_REMOTE: another rank of the world failed and raised its alarm. */
enum { S_STOP_NONE = 0, S_STOP_DEADLINE = 1, S_STOP_FAILED = 2, S_STOP_REMOTE = 3, S_STOP_SIGNAL = 100 };

static atomic_int s_stop = 0;
static uint64_t s_max_runtime_s;

static void s_on_signal(int signo)
{
    int expected = S_STOP_NONE;
    atomic_compare_exchange_strong(&s_stop, &expected, S_STOP_SIGNAL + signo);
}

/* 0, or the error that stops the job (its message set on the calling thread). */
static int s_check_stop(void)
{
    int why = atomic_load_explicit(&s_stop, memory_order_relaxed);
    if (why == S_STOP_NONE)
        return 0;
    if (why == S_STOP_DEADLINE)
        return knn_error_set(KNN_ETIMEOUT, "the job reached its MaxRuntimeInSeconds (%" PRIu64 " s) and was stopped",
                             s_max_runtime_s);
    if (why == S_STOP_FAILED)
        return knn_error_set(KNN_ECANCELED, "stopped: another part of the job failed");
    if (why == S_STOP_REMOTE)
        return knn_error_set(KNN_ECANCELED, "stopped: another host of the job failed");
    return knn_error_set(KNN_ECANCELED, "the job was stopped by %s", why - S_STOP_SIGNAL == SIGINT ? "SIGINT" : "SIGTERM");
}

/* The S3 client's cancel hook: a deadline, a signal or another rank's failure stops the transfers in flight. */
static int s_s3_cancelled(void *user)
{
    (void)user;
    int why = atomic_load_explicit(&s_stop, memory_order_relaxed);
    return why == S_STOP_DEADLINE || why >= S_STOP_SIGNAL || why == S_STOP_REMOTE;
}

struct s_watchdog {
    pthread_t thread;
    int started;
    atomic_int quit;
    uint64_t deadline_ns; /* 0: none */
    uint64_t grace_ns;    /* after a stop request, how long the job may take to clean up before it is ended */
    const char *failure_path;
};

/* Raises the deadline stop; ends the process if a stop request is not honoured within the grace period. */
static void *s_watchdog_main(void *arg)
{
    struct s_watchdog *w = arg;
    uint64_t stop_seen_ns = 0;
    while (!atomic_load(&w->quit)) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
        uint64_t now = knn_clock_monotonic_ns();
        if (w->deadline_ns && now >= w->deadline_ns) {
            int expected = S_STOP_NONE;
            atomic_compare_exchange_strong(&s_stop, &expected, S_STOP_DEADLINE);
        }
        int why = atomic_load(&s_stop);
        if (why == S_STOP_DEADLINE || why >= S_STOP_SIGNAL) {
            if (!stop_seen_ns)
                stop_seen_ns = now;
            else if (now - stop_seen_ns > w->grace_ns) {
                const char *reason = why == S_STOP_DEADLINE
                                         ? "ClientError: the job reached its MaxRuntimeInSeconds and did not stop "
                                           "within the grace period"
                                         : "ClientError: the job was stopped and did not finish within the grace "
                                           "period";
                KNN_LOG(KNN_LOG_ERROR, KNN_LS_JOB, "%s", reason);
                if (w->failure_path)
                    knn_failure_write_file(w->failure_path, reason);
                _exit(1);
            }
        }
    }
    return NULL;
}

/* ---- the job ---- */

struct s_job {
    const struct knn_train_options *opts;
    struct knn_world *world; /* the processes of the job: one, or the ranks of mpirun */
    size_t hosts;            /* SageMaker hosts: the world's size, or InstanceCount simulated in one process */
    size_t host_lo, host_hi; /* the hosts this process samples: its rank, or all simulated ones */
    struct knn_job_host *host_reports; /* `hosts` entries */
    struct knn_job_config cfg;
    struct knn_hyperparams hp;
    json_t *hp_json; /* the final configuration, for the summary */
    struct knn_s3_client *s3;
    struct knn_progress *progress;
    struct knn_object_list lists[KNN_CHANNEL_COUNT];
    struct knn_job_summary summary;
    struct knn_model *model;
    char *artifact;     /* model.tar.gz URI, or the model directory (container) */
    char *summary_uri;  /* job-summary.json */
    char *failure_path; /* container: <base>/output/failure */
    char *tmp_dir;      /* model files before they are packed (or moved into place) */
    int artifact_written;
    uint64_t start_ns, phase_ns;
    enum knn_job_phase phase;
    char reason[1100];
};

static void s_phase(struct s_job *job, enum knn_job_phase next)
{
    uint64_t now = knn_clock_monotonic_ns();
    job->summary.phase_seconds[job->phase] += (double)(now - job->phase_ns) / 1e9;
    job->phase = next;
    job->phase_ns = now;
}

static char *s_strdup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *s_strdup_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *out = n >= 0 ? knn_malloc((size_t)n + 1) : NULL;
    if (!out)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(out, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return out;
}

/* Local directories we build file names in (with fixed 4 KiB buffers) must leave room for them. */
#define S_MAX_DIR_LEN 3072

static int s_check_dir_len(const char *dir)
{
    if (strlen(dir) > S_MAX_DIR_LEN)
        return knn_error_set(KNN_ECONFIG, "%.64s...: directory path longer than %d bytes", dir, S_MAX_DIR_LEN);
    return 0;
}

static void s_human_bytes(char *buf, size_t size, uint64_t bytes)
{
    if (bytes == KNN_OBJECT_SIZE_UNKNOWN)
        snprintf(buf, size, "unknown size");
    else if (bytes >= (uint64_t)1 << 30)
        snprintf(buf, size, "%.2f GiB", (double)bytes / (double)((uint64_t)1 << 30));
    else if (bytes >= (uint64_t)1 << 20)
        snprintf(buf, size, "%.1f MiB", (double)bytes / (double)(1 << 20));
    else
        snprintf(buf, size, "%" PRIu64 " bytes", bytes);
}

static uint64_t s_available_memory(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    unsigned long long kib = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1)
            break;
    }
    fclose(f);
    return (uint64_t)kib * 1024;
}

/* The provided hyperparameters as SageMaker's logs print them: {'k': '10', ...}. */
static int s_format_given(const json_t *obj, struct knn_buf *out)
{
    const char *key;
    json_t *value;
    int rc, first = 1;
    if ((rc = knn_buf_append_str(out, "{")) < 0)
        return rc;
    json_object_foreach((json_t *)obj, key, value) {
        if (json_is_string(value))
            rc = knn_buf_printf(out, "%s'%s': '%s'", first ? "" : ", ", key, json_string_value(value));
        else {
            char *text = json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT);
            rc = knn_buf_printf(out, "%s'%s': %s", first ? "" : ", ", key, text ? text : "?");
            free(text);
        }
        if (rc < 0)
            return rc;
        first = 0;
    }
    return knn_buf_append_str(out, "}");
}

/* ---- configuration ---- */

/* This machine's name, for the rank's first line ("?" if unknown). */
static const char *s_machine_name(void)
{
    static char name[256];
    if (gethostname(name, sizeof(name) - 1) != 0)
        snprintf(name, sizeof(name), "?");
    return name;
}

/*
 * A container under mpirun: rank r must run on hosts[r] of resourceconfig.json (its current_host),
 * and reads its own input/data, which the platform already split for ShardedByS3Key: no second split.
 */
static int s_plan_container_rank(struct s_job *job)
{
    size_t rank = job->host_lo;
    if (job->cfg.host_count > 0 && job->cfg.current_host && strcmp(job->cfg.current_host, job->cfg.hosts[rank]) != 0)
        return knn_error_set(KNN_ECONFIG,
                             "rank %zu runs in the container of %s, but resourceconfig.json's hosts[%zu] is %s: start "
                             "rank r on hosts[r] (a hostfile listing the hosts in order, slots=1 each)",
                             rank, job->cfg.current_host, rank, job->cfg.hosts[rank]);
    struct knn_job_channel *train = &job->cfg.channels[KNN_CHANNEL_TRAIN];
    if (train->sharded) {
        KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB, "ShardedByS3Key: %s reads the shard the platform put in its input/data",
                knn_world_host(job->world));
        train->sharded = 0;
    }
    return 0;
}

/* Which hosts this process is: its rank under mpirun, or every simulated host (InstanceCount). */
static int s_plan_hosts(struct s_job *job)
{
    int rc;
    if (knn_world_is_mpi(job->world)) {
        const char *source = job->cfg.container ? "resourceconfig.json's hosts" : "ResourceConfig.InstanceCount";
        if ((rc = knn_train_world_check_size(job->world, job->cfg.instance_count, source)) < 0)
            return rc;
        job->hosts = (size_t)knn_world_size(job->world);
        job->host_lo = (size_t)knn_world_rank(job->world);
        job->host_hi = job->host_lo + 1;
        if (job->cfg.container && (rc = s_plan_container_rank(job)) < 0)
            return rc;
    } else if (job->cfg.container && job->cfg.host_count > 1) {
        return knn_error_set(KNN_ECONFIG,
                             "resourceconfig.json lists %zu hosts (%s, ...): run them as one Open MPI world, started "
                             "on %s: mpirun -np %zu --hostfile FILE knn-runner train, FILE listing the hosts in that "
                             "order with slots=1 each",
                             job->cfg.host_count, job->cfg.hosts[0], job->cfg.hosts[0], job->cfg.host_count);
    } else {
        job->hosts = (size_t)job->cfg.instance_count;
        job->host_lo = 0;
        job->host_hi = job->hosts;
    }
    if (!(job->host_reports = knn_calloc(job->hosts, sizeof(*job->host_reports))))
        return knn_error_set(KNN_ENOMEM, "out of memory");
    for (size_t h = 0; h < job->hosts; h++) {
        struct knn_job_host *r = &job->host_reports[h];
        snprintf(r->host, sizeof(r->host), "algo-%zu", h + 1);
        r->rank = h;
        r->pid = (uint64_t)getpid(); /* the others' come with their reports */
    }
    return 0;
}

static int s_is_root(const struct s_job *job)
{
    return knn_world_rank(job->world) == 0;
}

static int s_load_config(struct s_job *job)
{
    const struct knn_train_options *o = job->opts;
    int rc;
    if (o->manifest_path) {
        KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB, "knn-runner train called with argument(s): --manifest %s", o->manifest_path);
        rc = knn_job_config_from_manifest_file(&job->cfg, o->manifest_path);
    } else {
        KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB, "Docker entrypoint called with argument(s): train");
        const char *base = o->base_dir ? o->base_dir : knn_job_container_base_dir();
        if (!(job->failure_path = s_strdup_printf("%s/output/failure", base)))
            return KNN_ENOMEM;
        rc = knn_job_config_from_container(&job->cfg, base);
    }
    if (rc < 0)
        return rc;
    job->summary.job_name = job->cfg.name;
    job->summary.instance_count = job->cfg.instance_count;
    s_max_runtime_s = job->cfg.max_runtime_s;
    if ((rc = s_plan_hosts(job)) < 0)
        return rc;
    if (o->endpoint_url) {
        knn_free(job->cfg.endpoint_url);
        if (!(job->cfg.endpoint_url = knn_strdup(o->endpoint_url)))
            return KNN_ENOMEM;
    }
    return 0;
}

static int s_validate(struct s_job *job)
{
    struct knn_buf buf = KNN_BUF_INIT(256 * 1024);
    int rc;
    if ((rc = knn_hyperparams_format(&job->hp, 1, &buf)) == 0)
        KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB, "Reading default configuration from the built-in defaults: %s",
                (char *)buf.data);
    knn_buf_reset(&buf);
    if ((rc = s_format_given(job->cfg.hyperparameters, &buf)) == 0)
        KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB, "Reading provided configuration from %s%s: %s",
                job->cfg.container ? job->cfg.base_dir : "the manifest's HyperParameters",
                job->cfg.container ? "/input/config/hyperparameters.json" : "", (char *)buf.data);
    knn_buf_reset(&buf);
    rc = knn_hyperparams_parse(&job->hp, job->cfg.hyperparameters);
    if (rc == 0 && knn_hyperparams_format(&job->hp, 0, &buf) == 0)
        KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB, "Final configuration: %s", (char *)buf.data);
    knn_buf_clean_up(&buf);
    if (rc < 0)
        return rc;
    if (!(job->hp_json = knn_hyperparams_to_json(&job->hp)))
        return knn_error_set(KNN_ENOMEM, "out of memory");
    job->summary.hyperparameters = job->hp_json;

    /* k-NN needs one label per row in both channels (spec §2.2). */
    for (int i = 0; i < KNN_CHANNEL_COUNT; i++) {
        struct knn_job_channel *ch = &job->cfg.channels[i];
        if (!ch->present || ch->content.kind != KNN_CONTENT_CSV)
            continue;
        if (ch->content.label_size < 0)
            ch->content.label_size = 1;
        if (ch->content.label_size != 1)
            return knn_error_set(KNN_ECONFIG,
                                 "channel '%s': ContentType '%s': k-NN needs one label per row, in the first column "
                                 "(label_size=1)",
                                 ch->name, ch->content_type ? ch->content_type : "text/csv");
    }
    return 0;
}

static int s_open_s3(struct s_job *job)
{
    int needed = knn_train_uri_is_s3(job->cfg.output_path) && !job->cfg.container;
    for (int i = 0; i < KNN_CHANNEL_COUNT; i++)
        needed |= job->cfg.channels[i].present && job->cfg.channels[i].uri &&
                  knn_train_uri_is_s3(job->cfg.channels[i].uri);
    /* A ManifestFile on local disk may still point into S3: open the client whenever one could be used. */
    for (int i = 0; i < KNN_CHANNEL_COUNT; i++)
        needed |= job->cfg.channels[i].present && job->cfg.channels[i].manifest_file;
    if (!needed)
        return 0;
    struct knn_s3_client_options o = KNN_S3_CLIENT_OPTIONS_INIT;
    o.endpoint_url = job->cfg.endpoint_url;
    o.cancel = s_s3_cancelled;
    /* Aborting the upload and removing partial output get 4/5 of the stop timeout; the rest is the margin. */
    o.cleanup_timeout_ms = job->opts->stop_timeout_s * 800;
    int rc = knn_s3_client_new(&job->s3, &o);
    if (rc < 0)
        return knn_error_wrap(rc, "S3 client");
    KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB, "S3 endpoint %s, region %s", knn_s3_client_endpoint(job->s3),
            knn_s3_client_region(job->s3));
    return 0;
}

/* Where the artifacts go; refuse to replace an existing model unless asked to. */
static int s_plan_output(struct s_job *job)
{
    int rc, exists = 0;
    if (job->cfg.container) {
        if ((rc = s_check_dir_len(job->cfg.output_path)) < 0)
            return rc;
        if (!(job->artifact = knn_strdup(job->cfg.output_path)) ||
            !(job->summary_uri = s_strdup_printf("%s/output/data/job-summary.json", job->cfg.base_dir)))
            return KNN_ENOMEM;
        for (int i = 0; i < S_MODEL_FILES && !exists; i++) {
            char path[4096];
            struct stat st;
            snprintf(path, sizeof(path), "%s/%s", job->artifact, s_model_files[i]);
            /* SageMaker creates the model folder; a local /opt/ml tree may lack it. */
            if (i == 0 && !job->opts->dry_run && (rc = knn_train_make_parent_dirs(path)) < 0)
                return rc;
            exists = stat(path, &st) == 0;
        }
        if (exists && !job->opts->overwrite)
            return knn_error_set(KNN_EEXISTS, "%s already holds a model; pass --overwrite to replace it",
                                 job->artifact);
        return 0;
    }
    size_t len = strlen(job->cfg.output_path);
    while (len > 0 && job->cfg.output_path[len - 1] == '/')
        len--;
    if (!(job->artifact = s_strdup_printf("%.*s/%s/output/model.tar.gz", (int)len, job->cfg.output_path, job->cfg.name)) ||
        !(job->summary_uri =
              s_strdup_printf("%.*s/%s/output/job-summary.json", (int)len, job->cfg.output_path, job->cfg.name)))
        return KNN_ENOMEM;
    if ((rc = knn_train_output_exists(&exists, job->artifact, job->s3)) < 0)
        return knn_error_wrap(rc, "checking the output %s", job->artifact);
    if (exists && !job->opts->overwrite)
        return knn_error_set(KNN_EEXISTS,
                             "%s already exists (a job named '%s' ran before); choose another TrainingJobName or pass "
                             "--overwrite",
                             job->artifact, job->cfg.name);
    return 0;
}

static const char *s_content_name(const struct knn_job_channel *ch)
{
    return ch->content.kind == KNN_CONTENT_CSV ? "text/csv" : "application/x-recordio-protobuf";
}

static int s_list_channels(struct s_job *job)
{
    for (int i = 0; i < KNN_CHANNEL_COUNT; i++) {
        const struct knn_job_channel *ch = &job->cfg.channels[i];
        if (!ch->present)
            continue;
        int rc = knn_train_list_channel(&job->lists[i], ch, job->s3);
        if (rc < 0)
            return rc;
        char size[32];
        s_human_bytes(size, sizeof(size), job->lists[i].total_bytes);
        KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB, "Channel '%s': %zu object(s), %s, at %s (%s, %s)", ch->name,
                job->lists[i].count, size, ch->uri, s_content_name(ch),
                ch->sharded ? "ShardedByS3Key" : "FullyReplicated");
        job->summary.channels[i].present = 1;
        job->summary.channels[i].objects = job->lists[i].count;
    }
    return 0;
}

/* ---- decoding ---- */

static size_t s_batch_rows(const struct knn_hyperparams *hp, size_t max_bytes)
{
    size_t per_row = (size_t)hp->feature_dim * sizeof(float);
    size_t cap = per_row ? max_bytes / per_row : 1;
    if (cap < 1)
        cap = 1;
    return hp->mini_batch_size < cap ? (size_t)hp->mini_batch_size : cap;
}

/* What every chunk consumer shares: a row decoder made anew for each object. */
struct s_decode {
    const struct knn_job_channel *channel;
    const struct knn_hyperparams *hp;
    const struct knn_object *const *objects;
    size_t batch_rows;
    knn_recordio_rows_fn *sink;
    void *sink_user;
    struct knn_progress *progress;
    struct knn_recordio_rows *rows;
    uint64_t bytes;
    uint64_t rows_done;
};

static int s_decode_chunk(void *user, size_t index, const uint8_t *data, size_t len, int flags)
{
    struct s_decode *d = user;
    const char *uri = d->objects[index]->uri;
    int rc;

    if ((rc = s_check_stop()) != 0)
        return rc;
    if (flags & KNN_TRAIN_CHUNK_FIRST) {
        struct knn_recordio_rows_options o = KNN_RECORDIO_ROWS_OPTIONS_INIT;
        o.format = d->channel->content.kind == KNN_CONTENT_CSV ? KNN_RECORDIO_CSV : KNN_RECORDIO_PROTOBUF;
        o.label_size = d->channel->content.kind == KNN_CONTENT_CSV ? 1 : 0;
        o.feature_dim = (size_t)d->hp->feature_dim;
        o.labels = KNN_RECORDIO_LABELS_REQUIRE;
        o.batch_rows = d->batch_rows;
        knn_recordio_rows_destroy(d->rows);
        d->rows = NULL;
        if ((rc = knn_recordio_rows_new(&d->rows, &o, d->sink, d->sink_user)) < 0)
            return rc;
    }
    if (!d->rows)
        return knn_error_set(KNN_EINTERNAL, "%s: data before the object's start", uri);
    if (len) {
        uint64_t before = knn_recordio_rows_count(d->rows);
        rc = knn_recordio_rows_feed(d->rows, data, len);
        d->bytes += len;
        knn_progress_add(d->progress, len, knn_recordio_rows_count(d->rows) - before);
        if (rc != 0)
            return rc == KNN_ETIMEOUT || rc == KNN_ECANCELED ? rc : knn_error_wrap(rc, "%s", uri);
    }
    if (flags & KNN_TRAIN_CHUNK_LAST) {
        uint64_t before = knn_recordio_rows_count(d->rows);
        rc = knn_recordio_rows_finish(d->rows);
        knn_progress_add(d->progress, 0, knn_recordio_rows_count(d->rows) - before);
        d->rows_done += knn_recordio_rows_count(d->rows);
        knn_recordio_rows_destroy(d->rows);
        d->rows = NULL;
        if (rc != 0)
            return rc == KNN_ETIMEOUT || rc == KNN_ECANCELED ? rc : knn_error_wrap(rc, "%s", uri);
    }
    return 0;
}

/* ---- sampling: hosts x streams, on worker threads ---- */

struct s_stream {
    size_t host;
    const struct knn_object **objects;
    size_t count;
    uint64_t capacity;
    uint64_t seed;
    struct knn_reservoir *reservoir;
    struct s_decode decode;
    int rc;
    char *error; /* the failure's message (messages are per thread) */
};

struct s_pool {
    struct s_job *job;
    struct s_stream *streams;
    size_t count;
    atomic_size_t next;
    pthread_mutex_t lock;
    size_t first_failed; /* index of the stream whose error is reported; count if none */
    atomic_size_t threads_done;
};

static int s_sample_rows(void *user, const float *x, const float *labels, size_t n)
{
    struct s_stream *st = user;
    int rc = s_check_stop();
    if (rc != 0)
        return rc;
    return knn_reservoir_add(st->reservoir, n, x, labels);
}

static void *s_worker_main(void *arg)
{
    struct s_pool *pool = arg;
    struct knn_train_stream_options so = KNN_TRAIN_STREAM_OPTIONS_INIT;
    so.part_size = S_READ_PART_SIZE;
    so.max_in_flight = S_READ_IN_FLIGHT;
    so.gzip = pool->job->cfg.channels[KNN_CHANNEL_TRAIN].gzip;
    for (;;) {
        size_t i = atomic_fetch_add(&pool->next, 1);
        if (i >= pool->count)
            break;
        struct s_stream *st = &pool->streams[i];
        int rc = s_check_stop();
        if (rc == 0)
            rc = knn_reservoir_new(&st->reservoir, (size_t)st->capacity, (size_t)pool->job->hp.feature_dim, st->seed);
        if (rc == 0)
            rc = knn_train_stream_objects(st->objects, st->count, pool->job->s3, &so, s_decode_chunk, &st->decode);
        knn_recordio_rows_destroy(st->decode.rows);
        st->decode.rows = NULL;
        if (rc != 0) {
            st->rc = rc;
            st->error = knn_strdup(knn_error_message());
            pthread_mutex_lock(&pool->lock);
            /* The first failure stops the others (with KNN_ECANCELED): report the first. */
            if (pool->first_failed == pool->count)
                pool->first_failed = i;
            pthread_mutex_unlock(&pool->lock);
            int expected = S_STOP_NONE;
            atomic_compare_exchange_strong(&s_stop, &expected, S_STOP_FAILED);
        }
    }
    atomic_fetch_add(&pool->threads_done, 1);
    return NULL;
}

/*
 * Under mpirun, while the workers read, the main thread keeps this rank and the others in touch:
 * a stop here (a failed stream, SIGTERM, the deadline) raises the world's alarm, and another
 * rank's alarm stops this rank's workers, so every rank stops within moments of the first failure
 * instead of after reading its whole share.
 */
#define S_ALARM_POLL_NS (20 * 1000 * 1000)

static void s_wait_workers(struct s_job *job, struct s_pool *pool, size_t nthreads)
{
    if (!knn_world_is_mpi(job->world) || knn_world_size(job->world) < 2)
        return;
    int raised_here = 0;
    for (;;) {
        int why = atomic_load(&s_stop), raised = 0, rank = -1;
        if (why != S_STOP_NONE && why != S_STOP_REMOTE && !raised_here) {
            raised_here = 1;
            if (knn_world_alarm_raise(job->world) < 0)
                KNN_LOG(KNN_LOG_WARN, KNN_LS_JOB, "could not tell the other hosts to stop: %s", knn_error_message());
        }
        if (!raised_here && knn_world_alarm_poll(job->world, &raised, &rank) == 0 && raised) {
            int expected = S_STOP_NONE;
            if (atomic_compare_exchange_strong(&s_stop, &expected, S_STOP_REMOTE))
                KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB, "algo-%d failed: stopping", rank + 1);
        }
        if (atomic_load(&pool->threads_done) >= nthreads)
            break;
        struct timespec ts = {0, S_ALARM_POLL_NS};
        nanosleep(&ts, NULL);
    }
}

static int s_host_name(char *buf, size_t size, struct s_job *job, size_t host)
{
    if (job->cfg.container && job->cfg.current_host)
        return snprintf(buf, size, "%s", job->cfg.current_host);
    return snprintf(buf, size, "algo-%zu", host + 1);
}

/* Sample every host; on success *x_out / *labels_out hold n rows (free with knn_free), or point into *keep. */
/*
 * Read the train channel into per-host reservoir samples and hand back the combined sample
 * (*x_out: n rows, *labels_out: n labels) in our own memory, for knn_model_build_consume: no copy
 * of the sample is made on the way (one host's reservoir is detached; several hosts' are appended
 * to the first one's block, which grows in place).
 */
static int s_sample(struct s_job *job, size_t *n_out, float **x_out, float **labels_out)
{
    const struct knn_job_channel *ch = &job->cfg.channels[KNN_CHANNEL_TRAIN];
    const struct knn_object_list *list = &job->lists[KNN_CHANNEL_TRAIN];
    size_t hosts = job->hosts, local_hosts = job->host_hi - job->host_lo;
    /* RecordIO decodes at over 1 GB/s, so one stream keeps up with the network and one reservoir is
     * all the memory; parsing CSV numbers is CPU-bound and gains from a second stream. */
    size_t per_host = job->opts->streams ? job->opts->streams
                                         : ch->content.kind == KNN_CONTENT_CSV ? S_CSV_STREAMS : 1;
    struct s_pool pool = {job, NULL, 0, 0, PTHREAD_MUTEX_INITIALIZER, 0, 0};
    const struct knn_object **refs = NULL;
    size_t *host_first = NULL, *host_streams = NULL;
    pthread_t threads[S_MAX_THREADS];
    size_t nthreads = 0;
    uint64_t total_bytes = 0;
    float *x = NULL, *labels = NULL;
    int rc = 0;

    *n_out = 0;
    *x_out = *labels_out = NULL;
    char mem[32];
    uint64_t avail = s_available_memory();
    s_human_bytes(mem, sizeof(mem), avail);
    KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB,
            "Using per-worker sample size = %" PRIu64 " (Available virtual memory = %" PRIu64
            " bytes, GPU free memory = 0 bytes, number of workers = %zu). If an out-of-memory error occurs, choose a "
            "larger instance type, use dimension reduction, decrease sample_size, and/or decrease mini_batch_size.",
            knn_channel_host_sample_size(job->hp.sample_size, job->host_lo, hosts), avail, hosts);

    /* Every host's objects (in key order), dealt round-robin to its streams. */
    if (!(refs = knn_malloc_array(local_hosts * list->count + 1, sizeof(*refs))) ||
        !(host_first = knn_calloc(hosts, sizeof(*host_first))) ||
        !(host_streams = knn_calloc(hosts, sizeof(*host_streams))) ||
        !(pool.streams = knn_calloc(local_hosts * per_host, sizeof(*pool.streams)))) {
        rc = KNN_ENOMEM;
        goto done;
    }
    size_t nrefs = 0;
    for (size_t h = job->host_lo; h < job->host_hi; h++) {
        uint64_t capacity = knn_channel_host_sample_size(job->hp.sample_size, h, hosts);
        size_t mine = 0;
        for (size_t i = 0; i < list->count; i++)
            mine += knn_channel_host_reads(i, h, hosts, ch->sharded);
        size_t streams = mine < per_host ? mine : per_host;
        if (capacity == 0)
            streams = 0;
        host_first[h] = pool.count;
        host_streams[h] = streams;
        char name[64];
        s_host_name(name, sizeof(name), job, h);
        if (streams == 0)
            KNN_LOG(KNN_LOG_WARN, KNN_LS_JOB, "Worker %s: %s, it samples nothing", name,
                    mine == 0 ? "no object of the train channel is assigned to it" : "its sample size is 0");
        for (size_t s = 0; s < streams; s++) {
            struct s_stream *st = &pool.streams[pool.count++];
            st->host = h;
            st->objects = refs + nrefs;
            st->capacity = capacity;
            st->seed = S_SAMPLE_SEED + 1000003ULL * h + s;
            size_t k = 0;
            for (size_t i = 0; i < list->count; i++) {
                if (!knn_channel_host_reads(i, h, hosts, ch->sharded))
                    continue;
                if (k++ % streams == s) {
                    refs[nrefs++] = &list->items[i];
                    st->count++;
                    if (list->items[i].size != KNN_OBJECT_SIZE_UNKNOWN)
                        total_bytes += list->items[i].size;
                }
            }
            st->decode = (struct s_decode){ch, &job->hp, st->objects, s_batch_rows(&job->hp, S_SAMPLE_BATCH_BYTES),
                                           s_sample_rows, st, job->progress, NULL, 0, 0};
        }
    }
    pool.first_failed = pool.count;

    knn_progress_start_read(job->progress, "train", total_bytes ? total_bytes : UINT64_MAX);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    size_t want = job->opts->threads ? job->opts->threads : (size_t)(cores > 0 ? cores : 1);
    if (want > pool.count)
        want = pool.count;
    if (want > S_MAX_THREADS)
        want = S_MAX_THREADS;
    for (; nthreads < want; nthreads++) {
        if (pthread_create(&threads[nthreads], NULL, s_worker_main, &pool) != 0)
            break;
    }
    if (nthreads == 0 && pool.count > 0)
        s_worker_main(&pool); /* no thread could start: do the work here */
    s_wait_workers(job, &pool, nthreads);
    for (size_t t = 0; t < nthreads; t++)
        pthread_join(threads[t], NULL);
    knn_progress_end(job->progress);

    if (pool.first_failed < pool.count) {
        struct s_stream *st = &pool.streams[pool.first_failed];
        rc = knn_error_set(st->rc, "%s", st->error ? st->error : knn_error_str(st->rc));
        goto done;
    }
    if ((rc = s_check_stop()) != 0)
        goto done;

    /* Merge each host's streams, in stream order; then the hosts' samples together. */
    size_t total = 0, dim = (size_t)job->hp.feature_dim;
    for (size_t h = job->host_lo; h < job->host_hi; h++) {
        uint64_t bytes = 0, rows = 0;
        size_t objects = 0;
        struct s_stream *first = host_streams[h] ? &pool.streams[host_first[h]] : NULL;
        for (size_t s = 0; s < host_streams[h]; s++) {
            struct s_stream *st = &pool.streams[host_first[h] + s];
            bytes += st->decode.bytes;
            rows += st->decode.rows_done;
            objects += st->count;
            if (s > 0) {
                if ((rc = knn_reservoir_merge(first->reservoir, st->reservoir)) < 0)
                    goto done;
                knn_reservoir_destroy(st->reservoir);
                st->reservoir = NULL;
            }
        }
        size_t kept = first ? knn_reservoir_count(first->reservoir) : 0;
        total += kept;
        job->summary.channels[KNN_CHANNEL_TRAIN].bytes += bytes;
        job->summary.channels[KNN_CHANNEL_TRAIN].rows += rows;
        struct knn_job_host *report = &job->host_reports[h];
        report->objects = objects;
        report->bytes = bytes;
        report->rows = rows;
        report->rows_sampled = kept;
        report->sample_seconds = knn_clock_seconds_since(job->phase_ns);
        report->peak_memory_bytes = knn_peak_rss_bytes();
        char name[64], size[32];
        s_host_name(name, sizeof(name), job, h);
        s_human_bytes(size, sizeof(size), bytes);
        KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB,
                "Worker %s: read %zu object(s), %s, %" PRIu64 " rows; sampled %zu rows (per-worker sample size %" PRIu64
                ")",
                name, objects, size, rows, kept, knn_channel_host_sample_size(job->hp.sample_size, h, hosts));
    }
    if (total == 0 && !knn_world_is_mpi(job->world)) {
        rc = knn_error_set(KNN_EFORMAT, "channel 'train' holds no rows (%s)", ch->uri);
        goto done;
    }
    /* The hosts' samples one after the other, in host order: the first host's block, grown in
     * place (realloc moves big blocks by remapping, not copying), then each other host's rows
     * appended and its reservoir freed. */
    size_t at = 0;
    for (size_t h = job->host_lo; h < job->host_hi; h++) {
        if (!host_streams[h])
            continue;
        struct knn_reservoir **r = &pool.streams[host_first[h]].reservoir;
        size_t kept = knn_reservoir_count(*r);
        if (!x) {
            if ((rc = knn_reservoir_detach(*r, &x, &labels, &at)) < 0)
                goto done;
            if (at < total) {
                float *bx = knn_realloc_array(x, total, dim * sizeof(float));
                if (bx)
                    x = bx;
                float *bl = bx ? knn_realloc_array(labels, total, sizeof(float)) : NULL;
                if (bl)
                    labels = bl;
                if (!bx || !bl) {
                    rc = knn_error_wrap(KNN_ENOMEM, "the combined sample of %zu rows", total);
                    goto done;
                }
            }
        } else {
            memcpy(x + at * dim, knn_reservoir_rows(*r), kept * dim * sizeof(float));
            memcpy(labels + at, knn_reservoir_labels(*r), kept * sizeof(float));
            at += kept;
        }
        knn_reservoir_destroy(*r);
        *r = NULL;
    }
    *x_out = x;
    *labels_out = labels;
    *n_out = total;
    x = labels = NULL;
done:
    knn_free(x);
    knn_free(labels);
    for (size_t i = 0; pool.streams && i < pool.count; i++) {
        knn_reservoir_destroy(pool.streams[i].reservoir);
        knn_recordio_rows_destroy(pool.streams[i].decode.rows);
        knn_free(pool.streams[i].error);
    }
    knn_free(pool.streams);
    knn_free(refs);
    knn_free(host_first);
    knn_free(host_streams);
    pthread_mutex_destroy(&pool.lock);
    return rc;
}

/* ---- the index ---- */

/* Build the model from the sample, which it takes over (freed whatever happens). */
/* Recall measurement and target (command line over the manifest's KnnRunner object). */
static void s_recall_settings(const struct s_job *job, size_t n, struct knn_model_config *mc)
{
    long queries = job->opts->recall_queries >= 0 ? job->opts->recall_queries : (long)job->cfg.ext.recall_queries;
    mc->target_recall = job->opts->target_recall > 0 ? job->opts->target_recall : job->cfg.ext.target_recall;
    mc->recall_queries = queries >= 0 ? (size_t)queries : knn_recall_default_queries(n);
    if (mc->index_type == KNN_INDEX_FLAT && mc->target_recall > 0)
        KNN_LOG(KNN_LOG_WARN, KNN_LS_JOB, "target recall %g ignored: %s is exact (recall 1)", mc->target_recall,
                knn_index_type_name(mc->index_type));
}

/* Log the recall the build measured and put it in the job summary. */
static void s_recall_report(struct s_job *job)
{
    const struct knn_model_recall *r = knn_model_recall(job->model);
    if (!r)
        return;
    struct knn_job_summary_recall *sr = &job->summary.recall;
    sr->present = 1;
    sr->k = r->k;
    sr->queries = r->queries;
    sr->param = r->param;
    sr->param_value = r->param_value;
    sr->value = r->value;
    sr->seconds = r->seconds;
    sr->target = r->target;
    sr->reached = r->reached;
    if (r->target > 0 && !r->reached)
        KNN_LOG(KNN_LOG_WARN, KNN_LS_JOB,
                "target recall %g not reached: the best setting measured is %s %zu with recall@%zu %.4f (%zu settings "
                "tried); the model uses it",
                r->target, r->param, r->param_value, r->k, r->value, r->evaluated);
    else if (r->target > 0)
        KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB, "target recall %g reached with %s %zu (the smallest of %zu settings tried)",
                r->target, r->param, r->param_value, r->evaluated);
    KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB, "#recall (%s %zu) : recall@%zu = %.4f on %zu held-out queries, measured in %.2f s",
            r->param, r->param_value, r->k, r->value, r->queries, r->seconds);
}

static int s_build(struct s_job *job, size_t n, float *x, float *labels)
{
    struct knn_model_config mc = KNN_MODEL_CONFIG_INIT;
    const struct knn_hyperparams *hp = &job->hp;
    int rc;

    mc.feature_dim = (size_t)hp->feature_dim;
    mc.k = (size_t)hp->k;
    if ((rc = knn_predictor_parse(&mc.predictor, hp->predictor_type)) < 0 ||
        (rc = knn_index_type_parse(&mc.index_type, hp->index_type)) < 0 ||
        (rc = knn_model_metric_parse(&mc.metric, hp->index_metric)) < 0 ||
        (rc = knn_dimred_type_parse(&mc.dimred, hp->dimension_reduction_type)) < 0) {
        knn_free(x);
        knn_free(labels);
        return knn_error_wrap(rc, "hyperparameters");
    }
    if (job->cfg.ext.index_type && (rc = knn_index_type_parse(&mc.index_type, job->cfg.ext.index_type)) < 0) {
        knn_free(x);
        knn_free(labels);
        return knn_error_wrap(rc, "KnnRunner.IndexType");
    }
    mc.dimred_target = (size_t)hp->dimension_reduction_target;
    mc.pq_m = (size_t)hp->pq_m;
    mc.hnsw_m = (size_t)job->cfg.ext.hnsw_m;
    mc.ef_construction = (size_t)job->cfg.ext.ef_construction;
    mc.ef_search = (size_t)job->cfg.ext.ef_search;
    if (mc.index_type != KNN_INDEX_FLAT && mc.index_type != KNN_INDEX_HNSW) {
        /* spec §8: auto = floor(sqrt(sample_size)), at least 1 and at most the rows sampled. */
        uint64_t nlist = hp->ivf_nlists ? hp->ivf_nlists : (uint64_t)floor(sqrt((double)hp->sample_size));
        if (nlist < 1)
            nlist = 1;
        if (nlist > n) {
            KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB, "faiss_index_ivf_nlists %" PRIu64 " lowered to the %zu rows sampled",
                    nlist, n);
            nlist = n;
        }
        mc.nlist = (size_t)nlist;
    }
    char what[256];
    const char *type_name = knn_index_type_name(mc.index_type);
    snprintf(what, sizeof(what), "building %s (%s%s) on %zu rows", type_name, hp->index_metric,
             strcmp(hp->dimension_reduction_type, "none") ? ", dimension reduction" : "", n);
    char extra[128] = "";
    if (mc.index_type == KNN_INDEX_HNSW)
        snprintf(extra, sizeof(extra), ", M %zu, efConstruction %zu", mc.hnsw_m ? mc.hnsw_m : 32,
                 mc.ef_construction ? mc.ef_construction : 40);
    else if (mc.index_type != KNN_INDEX_FLAT)
        snprintf(extra, sizeof(extra), ", nlist %zu", mc.nlist);
    if (mc.index_type == KNN_INDEX_IVFPQ)
        snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra), ", pq_m %zu", mc.pq_m);
    if (mc.dimred)
        snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra), ", dimension reduction %s to %zu",
                 hp->dimension_reduction_type, mc.dimred_target);
    KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB, "Building the index: %s, metric %s, %zu rows of %zu features%s", type_name,
            hp->index_metric, n, mc.feature_dim, extra);
    s_recall_settings(job, n, &mc);
    knn_progress_start_step(job->progress, what);
    uint64_t t0 = knn_clock_monotonic_ns();
    rc = knn_model_build_consume(&job->model, &mc, n, x, labels);
    knn_progress_end(job->progress);
    if (rc < 0)
        return rc;
    job->summary.index_vectors = knn_model_ntotal(job->model);
    KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB, "Index built in %.2f s: %zu vectors", knn_clock_seconds_since(t0),
            knn_model_ntotal(job->model));
    s_recall_report(job);
    return s_check_stop();
}

/* ---- the test channel ---- */

struct s_score {
    struct s_job *job;
    int classifier;
    uint64_t n;
    uint64_t correct;
    double sse;
};

static int s_score_rows(void *user, const float *x, const float *labels, size_t n)
{
    struct s_score *sc = user;
    struct knn_predict_options po = KNN_PREDICT_OPTIONS_INIT;
    struct knn_predictions pred = {0};
    int rc = s_check_stop();
    if (rc != 0)
        return rc;
    if ((rc = knn_model_predict(sc->job->model, n, x, &po, &pred)) < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (sc->classifier)
            sc->correct += pred.predicted[i] == labels[i];
        else {
            double e = (double)pred.predicted[i] - (double)labels[i];
            sc->sse += e * e;
        }
    }
    sc->n += n;
    knn_predictions_clean_up(&pred);
    return 0;
}

/* Score the test objects of rank `rank` of `ranks` (object i when i mod ranks = rank) into *sc. */
static int s_score_part(struct s_job *job, size_t rank, size_t ranks, struct s_score *sc, uint64_t *bytes)
{
    const struct knn_job_channel *ch = &job->cfg.channels[KNN_CHANNEL_TEST];
    const struct knn_object_list *list = &job->lists[KNN_CHANNEL_TEST];
    const struct knn_object **refs = NULL;
    struct knn_train_stream_options so = KNN_TRAIN_STREAM_OPTIONS_INIT;
    size_t count = 0;
    int rc;

    *bytes = 0;
    if (!(refs = knn_malloc_array(list->count + 1, sizeof(*refs))))
        return KNN_ENOMEM;
    for (size_t i = 0; i < list->count; i++) {
        if (i % ranks == rank)
            refs[count++] = &list->items[i];
    }
    if (count == 0) {
        knn_free(refs);
        return 0;
    }
    struct s_decode d = {ch, &job->hp, refs, s_batch_rows(&job->hp, S_SCORE_BATCH_BYTES), s_score_rows, sc,
                         job->progress, NULL, 0, 0};
    so.part_size = S_READ_PART_SIZE;
    so.max_in_flight = S_READ_IN_FLIGHT;
    so.gzip = ch->gzip;
    knn_progress_start_read(job->progress, "test", list->total_bytes ? list->total_bytes : UINT64_MAX);
    rc = knn_train_stream_objects(refs, count, job->s3, &so, s_decode_chunk, &d);
    knn_recordio_rows_destroy(d.rows);
    knn_progress_end(job->progress);
    knn_free(refs);
    *bytes = d.bytes;
    return rc;
}

/* The test score of every row scored, logged as SageMaker does and put in the summary. */
static int s_score_report(struct s_job *job, struct s_score sc, uint64_t bytes)
{
    const struct knn_job_channel *ch = &job->cfg.channels[KNN_CHANNEL_TEST];
    job->summary.channels[KNN_CHANNEL_TEST].bytes = bytes;
    job->summary.channels[KNN_CHANNEL_TEST].rows = sc.n;
    if (sc.n == 0)
        return knn_error_set(KNN_EFORMAT, "channel 'test' holds no rows (%s)", ch->uri);
    char host[64], repr[32];
    s_host_name(host, sizeof(host), job, 0);
    if (sc.classifier) {
        job->summary.metric_name = "test:accuracy";
        job->summary.metric_value = (double)sc.correct / (double)sc.n;
        KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB, "#test_score (%s) : ('accuracy', %s)", host,
                knn_score_repr(repr, sizeof(repr), job->summary.metric_value));
    } else {
        job->summary.metric_name = "test:mse";
        job->summary.metric_value = sc.sse / (double)sc.n;
        KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB, "#test_score (%s) : ('mse', %s)", host,
                knn_score_repr(repr, sizeof(repr), job->summary.metric_value));
    }
    return 0;
}

static int s_score(struct s_job *job)
{
    struct s_score sc = {job, strcmp(job->hp.predictor_type, "classifier") == 0, 0, 0, 0};
    uint64_t bytes = 0;
    int rc = s_score_part(job, 0, 1, &sc, &bytes);
    return rc != 0 ? rc : s_score_report(job, sc, bytes);
}

/* ---- output ---- */

/* Remove a folder of ours and the files in it. */
static void s_remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

static void s_remove_tmp_dir(struct s_job *job)
{
    if (!job->tmp_dir)
        return;
    s_remove_dir(job->tmp_dir);
    knn_free(job->tmp_dir);
    job->tmp_dir = NULL;
}

static int s_make_tmp_dir(struct s_job *job, const char *parent)
{
    char *tmpl = s_strdup_printf("%s/.knn-train-XXXXXX", parent);
    if (!tmpl)
        return KNN_ENOMEM;
    if (!mkdtemp(tmpl)) {
        int rc = knn_error_set(KNN_EIO, "%s: %s", parent, strerror(errno));
        knn_free(tmpl);
        return rc;
    }
    job->tmp_dir = tmpl;
    return 0;
}

/* The gzip level of model.tar.gz: the user's, or compressed when small and stored when big. */
static int s_gzip_level(const struct s_job *job)
{
    if (job->opts->gzip_level >= 0)
        return job->opts->gzip_level;
    uint64_t total = 0;
    for (int i = 0; i < S_MODEL_FILES; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", job->tmp_dir, s_model_files[i]);
        if (stat(path, &st) == 0)
            total += (uint64_t)st.st_size;
    }
    return total < S_COMPRESS_BELOW ? 6 : 0;
}

static int s_save(struct s_job *job)
{
    int rc;
    if (job->cfg.container) {
        /* Into a directory beside the final place, then renamed file by file: never a partial model. */
        if ((rc = s_make_tmp_dir(job, job->artifact)) < 0 || (rc = knn_model_save(job->model, job->tmp_dir)) < 0)
            return rc;
        for (int i = 0; i < S_MODEL_FILES; i++) {
            char from[4096], to[4096];
            snprintf(from, sizeof(from), "%s/%s", job->tmp_dir, s_model_files[i]);
            snprintf(to, sizeof(to), "%s/%s", job->artifact, s_model_files[i]);
            if (rename(from, to) != 0) {
                rc = knn_error_set(KNN_EIO, "%s: %s", to, strerror(errno));
                for (int j = 0; j < i; j++) {
                    snprintf(to, sizeof(to), "%s/%s", job->artifact, s_model_files[j]);
                    unlink(to);
                }
                return rc;
            }
        }
        job->artifact_written = 1;
        s_remove_tmp_dir(job);
        return 0;
    }
    const char *tmp_root = getenv("TMPDIR");
    if (!tmp_root || !*tmp_root)
        tmp_root = "/tmp";
    if ((rc = s_check_dir_len(tmp_root)) < 0 || (rc = s_make_tmp_dir(job, tmp_root)) < 0 ||
        (rc = knn_model_save(job->model, job->tmp_dir)) < 0)
        return rc;
    if (!knn_train_uri_is_s3(job->artifact)) {
        const char *path = knn_file_uri_path(job->artifact);
        if ((rc = knn_train_make_parent_dirs(path)) < 0 ||
            (rc = knn_archive_pack_level(path, job->tmp_dir, s_model_files, S_MODEL_FILES, s_gzip_level(job))) < 0)
            return rc;
        job->artifact_written = 1;
        return 0;
    }
    char tar[4096];
    snprintf(tar, sizeof(tar), "%s/model.tar.gz", job->tmp_dir);
    return knn_archive_pack_level(tar, job->tmp_dir, s_model_files, S_MODEL_FILES, s_gzip_level(job));
}

static int s_upload(struct s_job *job)
{
    int rc;
    if (!job->cfg.container && knn_train_uri_is_s3(job->artifact)) {
        char tar[4096];
        struct stat st;
        snprintf(tar, sizeof(tar), "%s/model.tar.gz", job->tmp_dir);
        if (stat(tar, &st) == 0) {
            char size[32];
            s_human_bytes(size, sizeof(size), (uint64_t)st.st_size);
            knn_progress_start_step(job->progress, "uploading model.tar.gz");
            KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB, "Uploading model.tar.gz (%s) to %s", size, job->artifact);
        }
        rc = knn_train_output_put_file(job->artifact, tar, job->s3);
        knn_progress_end(job->progress);
        if (rc < 0)
            return knn_error_wrap(rc, "uploading the model");
        job->artifact_written = 1;
    }
    s_remove_tmp_dir(job);
    KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB, "Model artifacts: %s", job->artifact);
    return s_check_stop();
}

/* The S3 client's retries by cause into the summary ("S3Retries"). */
static void s_summary_retries(struct s_job *job)
{
    struct knn_s3_retry_count r[KNN_S3_RETRY_CAUSES_MAX];
    if (!job->s3)
        return;
    size_t n = knn_s3_client_retries(job->s3, r, KNN_S3_RETRY_CAUSES_MAX);
    json_t *o = json_object();
    for (size_t i = 0; o && i < n && i < KNN_S3_RETRY_CAUSES_MAX; i++)
        json_object_set_new(o, r[i].cause, json_integer((json_int_t)r[i].count));
    json_decref(job->summary.s3_retries);
    job->summary.s3_retries = o;
}

static int s_write_summary(struct s_job *job)
{
    s_summary_retries(job);
    job->summary.total_seconds = knn_clock_seconds_since(job->start_ns);
    job->summary.peak_rss_bytes = knn_peak_rss_bytes();
    job->summary.artifact = job->artifact;
    json_t *j = knn_job_summary_to_json(&job->summary);
    if (!j)
        return knn_error_set(KNN_ENOMEM, "out of memory");
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(j);
    if (!text)
        return knn_error_set(KNN_ENOMEM, "out of memory");
    int rc = 0;
    const char *uri = job->summary_uri;
    if (job->cfg.container) {
        /* <base>/output/data becomes output.tar.gz beside model.tar.gz. */
        if ((rc = knn_train_make_parent_dirs(uri)) == 0)
            rc = knn_train_output_put(uri, text, strlen(text), "application/json", NULL);
    } else {
        rc = knn_train_output_put(uri, text, strlen(text), "application/json", job->s3);
    }
    free(text);
    return rc < 0 ? knn_error_wrap(rc, "writing the job summary %s", uri) : 0;
}

/* Undo what a failed job left at its output path. */
static void s_clean_output(struct s_job *job)
{
    s_remove_tmp_dir(job);
    if (!job->artifact_written)
        return;
    if (job->cfg.container) {
        for (int i = 0; i < S_MODEL_FILES; i++) {
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", job->artifact, s_model_files[i]);
            unlink(path);
        }
    } else if (knn_train_output_delete(job->artifact, job->s3) < 0) {
        KNN_LOG(KNN_LOG_ERROR, KNN_LS_JOB, "could not remove %s after the failure: %s", job->artifact,
                knn_error_message());
    }
    job->artifact_written = 0;
}

static void s_print_summary(struct s_job *job)
{
    s_summary_retries(job);
    job->summary.total_seconds = knn_clock_seconds_since(job->start_ns);
    job->summary.peak_rss_bytes = knn_peak_rss_bytes();
    job->summary.artifact = job->artifact;
    if (job->opts->json) {
        json_t *j = knn_job_summary_to_json(&job->summary);
        char *text = j ? json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
        if (text)
            printf("%s\n", text);
        free(text);
        json_decref(j);
    } else {
        knn_job_summary_print(stdout, &job->summary);
    }
    fflush(stdout);
}

/* ---- the world: where the ranks meet ---- */

static int s_agree(struct s_job *job, int rc)
{
    return knn_train_world_agree(job->world, rc, atomic_load(&s_stop) == S_STOP_REMOTE);
}

/* The ranks' samples to algo-1; the train channel's totals and the hosts' reports with them. */
static int s_gather(struct s_job *job, size_t *n, float **x, float **labels)
{
    int rc = knn_train_world_gather_sample(job->world, (size_t)job->hp.feature_dim, n, x, labels, job->host_reports);
    if (rc < 0 || !s_is_root(job))
        return rc;
    struct knn_job_summary_channel *train = &job->summary.channels[KNN_CHANNEL_TRAIN];
    train->bytes = train->rows = 0;
    for (size_t h = 0; h < job->hosts; h++) {
        train->bytes += job->host_reports[h].bytes;
        train->rows += job->host_reports[h].rows;
    }
    KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB, "Gathered %zu sampled rows from %zu hosts in %.2f s (with the wait for the last host)",
            *n, job->hosts, job->host_reports[0].gather_seconds);
    return 0;
}

/* Every rank takes part in scoring when algo-1 has a test channel: all must have one, or none. */
static int s_agree_test_channel(struct s_job *job)
{
    if (!knn_world_is_mpi(job->world))
        return 0;
    unsigned char mine = (unsigned char)job->cfg.channels[KNN_CHANNEL_TEST].present, first = mine;
    int rc = knn_world_broadcast(job->world, 0, &first, 1);
    if (rc < 0)
        return rc;
    if (mine != first)
        rc = knn_error_set(KNN_ECONFIG, "this host %s a 'test' channel and algo-1 %s: every host needs the same channels",
                           mine ? "has" : "has no", first ? "has one" : "has none");
    return s_agree(job, rc);
}

/* algo-1, after the gather: what only it knows (the others have handed over and wait for the model). */
static int s_check_gathered(struct s_job *job, size_t n)
{
    if (n == 0)
        return knn_error_set(KNN_EFORMAT, "channel 'train' holds no rows (%s)", job->cfg.channels[KNN_CHANNEL_TRAIN].uri);
    return s_check_stop();
}

/*
 * Under mpirun with a test channel: algo-1's model goes to every rank (`rc` is algo-1's result of
 * the build, 0 on the others, which wait here, sleeping, while it builds), each rank scores its
 * share of the test objects (object i on rank i mod N), and the counts are summed on algo-1, which
 * prints the one #test_score line.
 */
static int s_score_shared(struct s_job *job, int rc)
{
    struct knn_world *w = job->world;
    int root = s_is_root(job);
    char dir[4096] = "";
    int made = 0;

    int brc = knn_world_barrier(w);
    if (brc < 0)
        return brc;
    const char *tmp_root = getenv("TMPDIR");
    if (!tmp_root || !*tmp_root)
        tmp_root = "/tmp";
    if (rc == 0) {
        snprintf(dir, sizeof(dir), "%.3000s/.knn-train-model-XXXXXX", tmp_root);
        if (!mkdtemp(dir))
            rc = knn_error_set(KNN_EIO, "%s: %s", tmp_root, strerror(errno));
        else
            made = 1;
    }
    if (rc == 0 && root)
        rc = knn_model_save(job->model, dir);
    if ((rc = s_agree(job, rc)) == 0 && (rc = knn_train_world_share_files(w, dir, s_model_files, S_MODEL_FILES)) == 0)
        rc = s_agree(job, root ? 0 : knn_model_load(&job->model, dir));
    if (made)
        s_remove_dir(dir);
    if (rc < 0)
        return rc;

    struct s_score sc = {job, strcmp(job->hp.predictor_type, "classifier") == 0, 0, 0, 0};
    uint64_t bytes = 0;
    /* A container's sharded test channel is this host's own shard, read whole; otherwise object i is rank i mod N's. */
    int own_shard = job->cfg.container && job->cfg.channels[KNN_CHANNEL_TEST].sharded;
    rc = s_score_part(job, own_shard ? 0 : (size_t)knn_world_rank(w), own_shard ? 1 : (size_t)knn_world_size(w), &sc,
                      &bytes);
    if ((rc = s_agree(job, rc)) < 0)
        return rc;
    double sums[4] = {(double)sc.n, (double)sc.correct, sc.sse, (double)bytes};
    if ((rc = knn_train_world_sum(w, sums, 4)) < 0 || !root)
        return rc;
    sc.n = (uint64_t)sums[0];
    sc.correct = (uint64_t)sums[1];
    sc.sse = sums[2];
    return s_score_report(job, sc, (uint64_t)sums[3]);
}

/* Everything after the configuration is loaded. */
static int s_run(struct s_job *job)
{
    size_t n = 0;
    float *x = NULL, *labels = NULL;
    int rc;

    /* Only algo-1 writes the model: it alone checks the output. */
    if ((rc = s_validate(job)) == 0 && (rc = s_open_s3(job)) == 0 && (!s_is_root(job) || (rc = s_plan_output(job)) == 0) &&
        (rc = s_check_stop()) == 0)
        rc = s_list_channels(job);
    if ((rc = s_agree(job, rc)) < 0 || (rc = s_agree_test_channel(job)) < 0)
        return rc;
    if (job->opts->dry_run) {
        job->summary.dry_run = 1;
        KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB, "dry run: the job is valid; no data was read and nothing was written");
        return 0;
    }

    /* Under mpirun every rank scores its share of the test channel with algo-1's model. */
    int shared_score = knn_world_size(job->world) > 1 && job->cfg.channels[KNN_CHANNEL_TEST].present;
    s_phase(job, KNN_PHASE_SAMPLE);
    rc = s_sample(job, &n, &x, &labels);
    if (knn_world_is_mpi(job->world)) {
        /* Failures up to the end of the gather are known to every rank. */
        if ((rc = s_agree(job, rc)) == 0)
            rc = s_gather(job, &n, &x, &labels);
        if (rc < 0 || !s_is_root(job)) {
            knn_free(x);
            knn_free(labels);
            if (rc == 0 && shared_score)
                return s_score_shared(job, 0);
            return rc; /* this rank's part is done */
        }
        rc = s_check_gathered(job, n);
    }
    if (rc == 0) {
        job->summary.rows_sampled = n;
        job->summary.hosts = job->host_reports;
        job->summary.host_count = job->hosts;
        s_phase(job, KNN_PHASE_BUILD);
        /* The sample goes into the model (knn_model_build_consume): x and labels are not ours any more. */
        rc = s_build(job, n, x, labels);
    } else {
        knn_free(x);
        knn_free(labels);
    }
    if (shared_score) {
        s_phase(job, KNN_PHASE_SCORE);
        rc = s_score_shared(job, rc); /* the others wait for algo-1's model, or its failure */
    }
    if (rc < 0)
        return rc;
    if (!shared_score && job->cfg.channels[KNN_CHANNEL_TEST].present) {
        s_phase(job, KNN_PHASE_SCORE);
        if ((rc = s_score(job)) < 0)
            return rc;
    }
    s_phase(job, KNN_PHASE_SAVE);
    if ((rc = s_save(job)) < 0 || (rc = s_check_stop()) < 0)
        return rc;
    /* The model is on disk now: free it before the upload's part buffers are allocated. */
    knn_model_destroy(job->model);
    job->model = NULL;
    s_phase(job, KNN_PHASE_UPLOAD);
    if ((rc = s_upload(job)) < 0)
        return rc;
    return s_write_summary(job);
}

int knn_train_run(const struct knn_train_options *opts)
{
    struct s_job job;
    struct knn_progress_options po = KNN_PROGRESS_OPTIONS_INIT;
    struct s_watchdog dog = {0};
    struct sigaction sa, old_term, old_int;
    int rc;

    /*
     * Big buffers (read-ahead parts, decode batches, the growing reservoir, the index) come and go
     * during a job. A fixed mmap threshold keeps each of them in its own mapping, returned to the
     * system when freed and grown with mremap; glibc's moving threshold would otherwise put some in
     * the heap, where freed holes keep the peak up by tens of MiB, depending on timing.
     */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);

    memset(&job, 0, sizeof(job));
    job.opts = opts;
    knn_job_config_init(&job.cfg);
    knn_hyperparams_init(&job.hp);
    for (int i = 0; i < KNN_CHANNEL_COUNT; i++)
        knn_object_list_init(&job.lists[i]);
    job.start_ns = job.phase_ns = knn_clock_monotonic_ns();
    job.phase = KNN_PHASE_SETUP;
    atomic_store(&s_stop, S_STOP_NONE);

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = s_on_signal;
    sa.sa_flags = SA_RESETHAND; /* a second signal ends the process at once */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGINT, &sa, &old_int);

    /* Started by mpirun: one rank of the job's world; else the single world, MPI untouched. */
    if ((rc = knn_world_new(&job.world)) < 0)
        goto finish;
    job.summary.world_engine = knn_world_is_mpi(job.world) ? "Open MPI" : "single process";
    job.summary.world_size = (uint64_t)knn_world_size(job.world);
    if (knn_world_is_mpi(job.world)) {
        knn_log_set_host(knn_world_host(job.world));
        KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB, "Rank %d of %d (%s), pid %ld, on %s", knn_world_rank(job.world),
                knn_world_size(job.world), knn_world_library_version(job.world), (long)getpid(), s_machine_name());
    }
    po.interactive = opts->progress;
    if ((rc = knn_progress_new(&job.progress, &po)) == 0)
        rc = s_load_config(&job);
    /* Every rank, configured or not, meets the others here: none is left waiting for one that gave up. */
    if ((rc = knn_train_world_agree(job.world, rc, 0)) < 0)
        goto finish;
    /* MaxRuntimeInSeconds counts from the start, as SageMaker's does. */
    dog.deadline_ns = job.cfg.max_runtime_s ? job.start_ns + job.cfg.max_runtime_s * 1000000000ULL : 0;
    dog.failure_path = job.failure_path;
    dog.grace_ns = (uint64_t)opts->stop_timeout_s * 1000000000ULL;
    if (pthread_create(&dog.thread, NULL, s_watchdog_main, &dog) == 0)
        dog.started = 1;
    rc = s_run(&job);

finish:
    s_phase(&job, job.phase);
    /* The stop is the cause, not the transfer it cut short (another rank's failure: its own reason, agreed on). */
    if (rc < 0 && s_s3_cancelled(NULL) && atomic_load(&s_stop) != S_STOP_REMOTE)
        rc = s_check_stop();
    if (rc < 0) {
        knn_failure_reason(job.reason, sizeof(job.reason), rc, knn_error_message());
        s_clean_output(&job);
        job.summary.failed = 1;
        job.summary.failure_reason = job.reason;
        knn_progress_destroy(job.progress);
        job.progress = NULL;
        KNN_LOG(KNN_LOG_ERROR, KNN_LS_JOB, "%s", job.reason);
        /* Container mode: <base>/output/failure, if there is a <base> at all (else this is no container). */
        struct stat st;
        const char *base = opts->base_dir ? opts->base_dir : knn_job_container_base_dir();
        if (job.failure_path && stat(base, &st) == 0 &&
            (knn_train_make_parent_dirs(job.failure_path) < 0 || knn_failure_write_file(job.failure_path, job.reason) < 0))
            KNN_LOG(KNN_LOG_ERROR, KNN_LS_JOB, "could not write the failure file: %s", knn_error_message());
    } else {
        knn_progress_destroy(job.progress);
        job.progress = NULL;
    }
    if (!job.world || s_is_root(&job))
        s_print_summary(&job); /* algo-1 speaks for the job */

    if (dog.started) {
        atomic_store(&dog.quit, 1);
        pthread_join(dog.thread, NULL);
    }
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGINT, &old_int, NULL);
    knn_model_destroy(job.model);
    knn_s3_client_destroy(job.s3);
    for (int i = 0; i < KNN_CHANNEL_COUNT; i++)
        knn_object_list_clean_up(&job.lists[i]);
    json_decref(job.hp_json);
    json_decref(job.summary.s3_retries);
    knn_hyperparams_clean_up(&job.hp);
    knn_job_config_clean_up(&job.cfg);
    knn_free(job.artifact);
    knn_free(job.summary_uri);
    knn_free(job.failure_path);
    knn_free(job.tmp_dir);
    knn_free(job.host_reports);
    knn_world_destroy(job.world);
    knn_log_set_host(NULL);
    return rc < 0 ? 1 : 0;
}
