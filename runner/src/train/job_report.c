/* Failure reasons (ClientError / AlgorithmError) and the job summary. */
#include "train/job_report.h"

#include "knn/common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

const char *knn_score_repr(char *buf, size_t size, double value)
{
    if (isnan(value)) {
        snprintf(buf, size, "nan");
        return buf;
    }
    if (isinf(value)) {
        snprintf(buf, size, "%sinf", value < 0 ? "-" : "");
        return buf;
    }
    int n = snprintf(buf, size, "%.17g", value);
    /* Only digits (after a sign): Python adds ".0" so the value still reads as a float. */
    if (n > 0 && (size_t)n + 2 < size && strspn(buf + (buf[0] == '-'), "0123456789") == (size_t)n - (buf[0] == '-'))
        memcpy(buf + n, ".0", 3);
    return buf;
}

const char *knn_failure_class(int code)
{
    switch (code) {
        /* The user's side: what they asked for, the data they gave, where they pointed us. */
        case KNN_EINVAL:
        case KNN_EFORMAT:
        case KNN_ETRUNCATED:
        case KNN_ETOOBIG:
        case KNN_ENOTFOUND:
        case KNN_EEXISTS:
        case KNN_EUNSUPPORTED:
        case KNN_ERANGE:
        case KNN_ECANCELED:
        case KNN_ETIMEOUT:
        case KNN_EMISMATCH:
        case KNN_ECONFIG:
        case KNN_ES3_CREDENTIALS:
        case KNN_ES3_NO_SUCH_KEY:
        case KNN_ES3_NO_SUCH_BUCKET:
        case KNN_ES3_ACCESS_DENIED:
        case KNN_ES3_CHANGED:
        case KNN_ES3_UNREACHABLE: /* the endpoint the user configured */
            return "ClientError";
        default:
            /* Data decoding errors have their own range. */
            if (code <= -100 && code > -200)
                return "ClientError";
            return "AlgorithmError";
    }
}

const char *knn_failure_reason(char *buf, size_t size, int code, const char *message)
{
    if (!message || !*message)
        message = knn_error_str(code);
    snprintf(buf, size, "%s: %s", knn_failure_class(code), message);
    return buf;
}

int knn_failure_write_file(const char *path, const char *reason)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return knn_error_set(KNN_EIO, "%s: %s", path, strerror(errno));
    size_t len = strlen(reason), off = 0;
    int rc = 0;
    while (off < len) {
        ssize_t n = write(fd, reason + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = knn_error_set(KNN_EIO, "%s: write failed: %s", path, strerror(errno));
            break;
        }
        off += (size_t)n;
    }
    if (close(fd) != 0 && rc == 0)
        rc = knn_error_set(KNN_EIO, "%s: close failed: %s", path, strerror(errno));
    return rc;
}

const char *knn_job_phase_name(enum knn_job_phase phase)
{
    static const char *const names[KNN_PHASE_COUNT] = {"setup", "sample", "build", "score", "save", "upload"};
    return (unsigned)phase < KNN_PHASE_COUNT ? names[phase] : "?";
}

uint64_t knn_peak_rss_bytes(void)
{
    /*
     * VmHWM, the high-water mark of this program's own address space. getrusage's ru_maxrss is not
     * it: Linux carries the maximum over execve, so a job started by a big parent (a Python script
     * holding its data) reports the parent's resident size at fork time.
     */
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        char line[256];
        unsigned long long kib = 0;
        int found = 0;
        while (!found && fgets(line, sizeof(line), f))
            found = sscanf(line, "VmHWM: %llu kB", &kib) == 1;
        fclose(f);
        if (found)
            return (uint64_t)kib * 1024;
    }
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (uint64_t)ru.ru_maxrss * 1024; /* Linux reports KiB */
}

static int s_set(json_t *obj, const char *key, json_t *value)
{
    return value ? json_object_set_new(obj, key, value) : -1;
}

static const char *s_status(const struct knn_job_summary *s)
{
    return s->failed ? "Failed" : s->dry_run ? "Validated" : "Completed";
}

static json_t *s_recall_json(const struct knn_job_summary_recall *r)
{
    json_t *o = json_object();
    int bad = !o;
    if (o) {
        bad |= s_set(o, "k", json_integer((json_int_t)r->k));
        bad |= s_set(o, r->param ? r->param : "nprobe", json_integer((json_int_t)r->param_value));
        bad |= s_set(o, "queries", json_integer((json_int_t)r->queries));
        bad |= s_set(o, "value", json_real(r->value));
        bad |= s_set(o, "seconds", json_real(r->seconds));
        if (r->target > 0) {
            bad |= s_set(o, "target", json_real(r->target));
            bad |= s_set(o, "reached", json_boolean(r->reached));
        }
    }
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* "World": {"Engine", "Size"} and "Hosts": [{"Host", "Rank", "Pid", ...}, ...]. */
static int s_set_world(json_t *root, const struct knn_job_summary *s)
{
    json_t *world = json_object(), *hosts = json_array();
    int bad = s_set(root, "World", world) | s_set(root, "Hosts", hosts);
    if (bad)
        return -1;
    bad |= s_set(world, "Engine", json_string(s->world_engine));
    bad |= s_set(world, "Size", json_integer((json_int_t)s->world_size));
    for (size_t i = 0; i < s->host_count && !bad; i++) {
        const struct knn_job_host *h = &s->hosts[i];
        json_t *o = json_object(), *secs = json_object();
        if (!o || !secs || json_array_append_new(hosts, o) != 0) {
            json_decref(o);
            json_decref(secs);
            return -1;
        }
        bad |= s_set(o, "Host", json_string(h->host));
        bad |= s_set(o, "Rank", json_integer((json_int_t)h->rank));
        bad |= s_set(o, "Pid", json_integer((json_int_t)h->pid));
        bad |= s_set(o, "Objects", json_integer((json_int_t)h->objects));
        bad |= s_set(o, "Bytes", json_integer((json_int_t)h->bytes));
        bad |= s_set(o, "Rows", json_integer((json_int_t)h->rows));
        bad |= s_set(o, "RowsSampled", json_integer((json_int_t)h->rows_sampled));
        bad |= s_set(o, "PeakMemoryBytes", json_integer((json_int_t)h->peak_memory_bytes));
        bad |= s_set(o, "Seconds", secs);
        bad |= s_set(secs, "sample", json_real(h->sample_seconds));
        bad |= s_set(secs, "gather", json_real(h->gather_seconds));
    }
    return bad ? -1 : 0;
}

json_t *knn_job_summary_to_json(const struct knn_job_summary *s)
{
    static const char *const channel_names[2] = {"train", "test"};
    json_t *root = json_object(), *channels = json_object(), *timings = json_object(), *metrics = json_object();
    int bad = !root || !channels || !timings || !metrics;

    if (bad)
        goto on_error;
    bad |= s_set(root, "TrainingJobName", json_string(s->job_name ? s->job_name : ""));
    bad |= s_set(root, "TrainingJobStatus", json_string(s_status(s)));
    if (s->failed)
        bad |= s_set(root, "FailureReason", json_string(s->failure_reason ? s->failure_reason : ""));
    bad |= s_set(root, "HyperParameters", s->hyperparameters ? json_incref(s->hyperparameters) : json_null());
    for (int i = 0; i < 2; i++) {
        if (!s->channels[i].present)
            continue;
        json_t *ch = json_object();
        bad |= s_set(channels, channel_names[i], ch);
        if (ch) {
            bad |= s_set(ch, "objects", json_integer((json_int_t)s->channels[i].objects));
            bad |= s_set(ch, "bytes", json_integer((json_int_t)s->channels[i].bytes));
            bad |= s_set(ch, "rows", json_integer((json_int_t)s->channels[i].rows));
        }
    }
    bad |= s_set(root, "Channels", json_incref(channels));
    bad |= s_set(root, "InstanceCount", json_integer((json_int_t)s->instance_count));
    bad |= s_set(root, "RowsSampled", json_integer((json_int_t)s->rows_sampled));
    bad |= s_set(root, "IndexVectors", json_integer((json_int_t)s->index_vectors));
    if (s->metric_name)
        bad |= s_set(metrics, s->metric_name, json_real(s->metric_value));
    bad |= s_set(root, "FinalMetrics", json_incref(metrics));
    if (s->recall.present)
        bad |= s_set(root, "Recall", s_recall_json(&s->recall));
    for (int p = 0; p < KNN_PHASE_COUNT; p++)
        bad |= s_set(timings, knn_job_phase_name((enum knn_job_phase)p), json_real(s->phase_seconds[p]));
    bad |= s_set(timings, "total", json_real(s->total_seconds));
    bad |= s_set(root, "TimingsSeconds", json_incref(timings));
    bad |= s_set(root, "PeakMemoryBytes", json_integer((json_int_t)s->peak_rss_bytes));
    if (!s->failed && s->artifact)
        bad |= s_set(root, "ModelArtifacts", json_string(s->artifact));
    if (s->world_engine)
        bad |= s_set_world(root, s);
    if (s->s3_retries)
        bad |= s_set(root, "S3Retries", json_incref(s->s3_retries));
    if (bad)
        goto on_error;
    json_decref(channels);
    json_decref(timings);
    json_decref(metrics);
    return root;

on_error:
    json_decref(root);
    json_decref(channels);
    json_decref(timings);
    json_decref(metrics);
    return NULL;
}

static void s_bytes(char *buf, size_t size, uint64_t bytes)
{
    if (bytes >= (uint64_t)1 << 30)
        snprintf(buf, size, "%.2f GiB", (double)bytes / (double)((uint64_t)1 << 30));
    else if (bytes >= (uint64_t)1 << 20)
        snprintf(buf, size, "%.1f MiB", (double)bytes / (double)(1 << 20));
    else if (bytes >= 1024)
        snprintf(buf, size, "%.1f KiB", (double)bytes / 1024.0);
    else
        snprintf(buf, size, "%llu B", (unsigned long long)bytes);
}

void knn_job_summary_print(FILE *out, const struct knn_job_summary *s)
{
    static const char *const channel_names[2] = {"train", "test"};
    char a[32];
    fprintf(out, "Training job%s%s: %s\n", s->job_name ? " " : "", s->job_name ? s->job_name : "",
            s_status(s));
    if (s->failed)
        fprintf(out, "  FailureReason: %s\n", s->failure_reason ? s->failure_reason : "");
    for (int i = 0; i < 2; i++) {
        if (!s->channels[i].present)
            continue;
        s_bytes(a, sizeof(a), s->channels[i].bytes);
        fprintf(out, "  %-6s %llu object(s), %s, %llu rows\n", channel_names[i],
                (unsigned long long)s->channels[i].objects, a, (unsigned long long)s->channels[i].rows);
    }
    if (!s->failed && !s->dry_run)
        fprintf(out, "  sample: %llu rows; index: %llu vectors\n", (unsigned long long)s->rows_sampled,
                (unsigned long long)s->index_vectors);
    if (s->metric_name)
        fprintf(out, "  %s = %.17g\n", s->metric_name, s->metric_value);
    if (s->recall.present)
        fprintf(out, "  recall@%llu = %.4f at %s %llu (%llu held-out queries, %.2f s)\n", (unsigned long long)s->recall.k,
                s->recall.value, s->recall.param ? s->recall.param : "nprobe", (unsigned long long)s->recall.param_value,
                (unsigned long long)s->recall.queries, s->recall.seconds);
    fprintf(out, "  time:");
    for (int p = 0; p < KNN_PHASE_COUNT; p++) {
        if (s->phase_seconds[p] > 0)
            fprintf(out, " %s %.2f s,", knn_job_phase_name((enum knn_job_phase)p), s->phase_seconds[p]);
    }
    s_bytes(a, sizeof(a), s->peak_rss_bytes);
    fprintf(out, " total %.2f s; peak memory %s\n", s->total_seconds, a);
    if (!s->failed && s->artifact)
        fprintf(out, "  model%s: %s\n", s->dry_run ? " (would be written to)" : "", s->artifact);
    if (s->s3_retries && json_object_size(s->s3_retries) > 0) {
        const char *cause;
        json_t *n;
        const char *sep = "";
        fprintf(out, "  S3 retries:");
        json_object_foreach(s->s3_retries, cause, n) {
            fprintf(out, "%s %s %lld", sep, cause, (long long)json_integer_value(n));
            sep = ",";
        }
        fprintf(out, "\n");
    }
}
