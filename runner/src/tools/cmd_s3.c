/*
 * knn-runner s3: move data to and from S3-compatible storage (AWS S3, MinIO, Ceph RGW).
 *
 *   ls [--recursive] [--summarize] s3://bucket[/prefix]
 *   cp [--recursive] SRC DST          local -> S3 or S3 -> local ("-" is stdin / stdout)
 *   rm [--recursive] s3://bucket/key
 *
 * Options shared by every subcommand: --endpoint-url URL, --region NAME, --profile NAME,
 * --path-style | --virtual-host, --quiet. Credentials and the rest come from the environment
 * and the AWS config files, as for the AWS CLI (s3/include/knn/s3/credentials.h).
 *
 * Exit status: 0 success, 1 an operation failed (one line on stderr says which and why), 2 usage.
 */
#define _GNU_SOURCE
#include "commands.h"
#include "usage.h"

#include "knn/common/alloc.h"
#include "knn/common/buf.h"
#include "knn/common/error.h"
#include "knn/s3/client.h"
#include "knn/s3/uri.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

struct s_opts {
    const char *sub;
    const char *endpoint;
    const char *region;
    const char *profile;
    enum knn_s3_addressing addressing;
    int recursive;
    int summarize;
    int quiet;
};

struct s_state {
    struct s_opts *o;
    struct knn_s3_client *client;
    uint64_t objects;
    uint64_t bytes;
    int failures;
};

#define S_SYNOPSIS                                                                                                     \
    "usage: knn-runner s3 ls [--recursive] [--summarize] s3://bucket[/prefix]\n"                                       \
    "       knn-runner s3 cp [--recursive] SRC DST\n"                                                                  \
    "       knn-runner s3 rm [--recursive] s3://bucket/key\n"

static void s_usage(FILE *out)
{
    fputs(S_SYNOPSIS, out);
    fprintf(
        out, "\n"
             "ls   lists the objects (date and time in UTC, size in bytes, key); without --recursive,\n"
             "     keys below the next '/' are grouped as PRE lines.\n"
             "cp   copies a local file to S3 or an object to a local file; with --recursive, a local\n"
             "     folder to a prefix or a prefix to a folder. \"-\" is stdin or stdout. Large files go\n"
             "     up as parallel multipart uploads and come down as parallel ranged reads; a failed\n"
             "     copy leaves no partial object or file behind.\n"
             "rm   deletes an object, or with --recursive every object under a prefix.\n"
             "\n"
             "options:\n"
             "  --endpoint-url URL   the S3 endpoint (default: $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, AWS)\n"
             "  --region NAME        (default: $AWS_REGION, $AWS_DEFAULT_REGION, the profile's, us-east-1)\n"
             "  --profile NAME       a profile of ~/.aws/credentials and ~/.aws/config\n"
             "  --path-style         https://endpoint/bucket/key (the default for non-AWS endpoints)\n"
             "  --virtual-host       https://bucket.endpoint/key (the default for AWS)\n"
             "  --quiet              no line per object copied or deleted\n"
             "\n"
             "S3 locations are s3://bucket/key, or https:// URLs of AWS S3.\n"
             "\n"
             "examples:\n"
             "  knn-runner s3 cp train.rec s3://bucket/wine/train/train.rec\n"
             "  knn-runner s3 cp --recursive data/ s3://bucket/wine/train/\n"
             "  knn-runner s3 ls --recursive --summarize s3://bucket/wine/\n"
             "  knn-runner s3 cp s3://bucket/wine/output/my-job/output/model.tar.gz .\n"
             "  knn-runner s3 cp s3://bucket/wine/test/test.csv - | head\n"
             "  knn-runner s3 rm --recursive s3://bucket/wine/output/\n");
}

static int s_fail(const struct s_opts *o, int rc)
{
    fprintf(stderr, "knn-runner s3 %s: %s\n", o->sub, knn_error_message()[0] ? knn_error_message() : knn_error_str(rc));
    return 1;
}

static int s_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int s_usage_error(const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return knn_usage_error("s3", S_SYNOPSIS, "%s", what);
}

static int s_make_client(struct s_state *st, const struct knn_s3_uri *uri)
{
    struct knn_s3_client_options co = KNN_S3_CLIENT_OPTIONS_INIT;
    co.endpoint_url = st->o->endpoint;
    co.region = st->o->region ? st->o->region : (uri ? uri->region : NULL);
    co.profile = st->o->profile;
    co.addressing = st->o->addressing;
    return knn_s3_client_new(&st->client, &co);
}

/* ---- ls ---- */

struct s_ls {
    struct s_state *st;
    size_t strip; /* bytes of the key not shown (the prefix up to its last '/') */
};

static void s_format_time(char *out, size_t size, int64_t t)
{
    struct tm tm;
    time_t tt = (time_t)t;
    if (t <= 0 || !gmtime_r(&tt, &tm)) {
        snprintf(out, size, "%19s", "");
        return;
    }
    strftime(out, size, "%Y-%m-%d %H:%M:%S", &tm);
}

static int s_ls_cb(void *user, const struct knn_s3_list_entry *e)
{
    struct s_ls *ls = user;
    if (e->common_prefix) {
        printf("%30s %s\n", "PRE", e->common_prefix + ls->strip);
        return 0;
    }
    char when[32];
    s_format_time(when, sizeof(when), e->info->last_modified_s);
    printf("%s %10llu %s\n", when, (unsigned long long)e->info->size, e->info->key + ls->strip);
    ls->st->objects++;
    ls->st->bytes += e->info->size;
    return 0;
}

static int s_cmd_ls(struct s_state *st, int argc, char **argv)
{
    if (argc != 1)
        return s_usage_error("ls needs one s3://bucket[/prefix]");
    struct knn_s3_uri uri;
    int rc = knn_s3_uri_parse(&uri, argv[0]);
    if (rc) {
        knn_s3_uri_clean_up(&uri);
        return s_fail(st->o, rc);
    }
    if (!(rc = s_make_client(st, &uri))) {
        struct s_ls ls = {st, 0};
        if (!st->o->recursive) {
            const char *slash = strrchr(uri.key, '/');
            ls.strip = slash ? (size_t)(slash - uri.key) + 1 : 0;
        }
        rc = knn_s3_list_each(st->client, uri.bucket, uri.key, st->o->recursive ? NULL : "/", s_ls_cb, &ls);
    }
    knn_s3_uri_clean_up(&uri);
    if (rc)
        return s_fail(st->o, rc);
    if (st->o->summarize)
        printf(
            "\nTotal Objects: %llu\n   Total Size: %llu\n", (unsigned long long)st->objects,
            (unsigned long long)st->bytes);
    return 0;
}

/* ---- cp ---- */

static const char *s_basename(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static int s_is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* mkdir -p of the folder part of `path`. */
static int s_make_parents(const char *path)
{
    char *copy = knn_strdup(path);
    if (!copy)
        return KNN_ENOMEM;
    int rc = 0;
    for (char *p = copy + 1; *p && !rc; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(copy, 0755) != 0 && errno != EEXIST)
            rc = knn_error_set(KNN_EIO, "%s: cannot create the folder: %s", copy, strerror(errno));
        *p = '/';
    }
    knn_free(copy);
    return rc;
}

/* A key is safe to write below a local folder: no absolute path, no ".." component. */
static int s_key_is_safe(const char *rel)
{
    if (!*rel || rel[0] == '/')
        return 0;
    for (const char *p = rel; *p;) {
        size_t n = strcspn(p, "/");
        if ((n == 2 && p[0] == '.' && p[1] == '.') || (n == 1 && p[0] == '.'))
            return 0;
        p += n;
        while (*p == '/')
            p++;
    }
    return 1;
}

static int s_upload_one(struct s_state *st, const char *path, const char *bucket, const char *key)
{
    int rc = knn_s3_put_file(NULL, st->client, bucket, key, path, NULL);
    if (rc)
        return rc;
    if (!st->o->quiet)
        printf("upload: %s to s3://%s/%s\n", path, bucket, key);
    return 0;
}

static int s_download_one(struct s_state *st, const char *bucket, const char *key, const char *path)
{
    int rc = s_make_parents(path);
    if (!rc)
        rc = knn_s3_get_file(st->client, bucket, key, path);
    if (rc)
        return rc;
    if (!st->o->quiet && strcmp(path, "-") != 0)
        printf("download: s3://%s/%s to %s\n", bucket, key, path);
    return 0;
}

/* Walk a local folder, uploading every regular file under prefix. */
static int s_upload_tree(struct s_state *st, const char *dir, const char *rel, const char *bucket, const char *prefix)
{
    struct knn_buf path = KNN_BUF_INIT(8192);
    int rc = knn_buf_printf(&path, "%s%s%s", dir, *rel ? "/" : "", rel);
    if (rc)
        return rc;
    DIR *d = opendir((const char *)path.data);
    if (!d) {
        rc = knn_error_set(KNN_EIO, "%s: cannot read the folder: %s", (const char *)path.data, strerror(errno));
        knn_buf_clean_up(&path);
        return rc;
    }
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        struct knn_buf child_rel = KNN_BUF_INIT(8192), child = KNN_BUF_INIT(8192), key = KNN_BUF_INIT(8192);
        struct stat sb;
        if ((rc = knn_buf_printf(&child_rel, "%s%s%s", rel, *rel ? "/" : "", e->d_name)) ||
            (rc = knn_buf_printf(&child, "%s/%s", dir, (const char *)child_rel.data)) ||
            (rc = knn_buf_printf(&key, "%s%s", prefix, (const char *)child_rel.data))) {
        } else if (stat((const char *)child.data, &sb) != 0) {
            rc = knn_error_set(KNN_EIO, "%s: %s", (const char *)child.data, strerror(errno));
        } else if (S_ISDIR(sb.st_mode)) {
            rc = s_upload_tree(st, dir, (const char *)child_rel.data, bucket, prefix);
        } else if (S_ISREG(sb.st_mode)) {
            rc = s_upload_one(st, (const char *)child.data, bucket, (const char *)key.data);
            if (!rc) {
                st->objects++;
                st->bytes += (uint64_t)sb.st_size;
            }
        }
        knn_buf_clean_up(&child_rel);
        knn_buf_clean_up(&child);
        knn_buf_clean_up(&key);
    }
    closedir(d);
    knn_buf_clean_up(&path);
    return rc;
}

struct s_download_tree {
    struct s_state *st;
    const char *bucket;
    const char *prefix;
    const char *dir;
};

static int s_download_cb(void *user, const struct knn_s3_list_entry *e)
{
    struct s_download_tree *t = user;
    const char *key = e->info->key;
    const char *rel = key + strlen(t->prefix);
    if (!*rel || rel[strlen(rel) - 1] == '/') /* folder markers */
        return 0;
    if (!s_key_is_safe(rel)) {
        fprintf(
            stderr, "knn-runner s3 cp: skipping s3://%s/%s: its name would land outside %s\n", t->bucket, key, t->dir);
        t->st->failures++;
        return 0;
    }
    struct knn_buf path = KNN_BUF_INIT(8192);
    int rc = knn_buf_printf(&path, "%s/%s", t->dir, rel);
    if (!rc)
        rc = s_download_one(t->st, t->bucket, key, (const char *)path.data);
    if (!rc) {
        t->st->objects++;
        t->st->bytes += e->info->size;
    }
    knn_buf_clean_up(&path);
    return rc;
}

static int s_cmd_cp(struct s_state *st, int argc, char **argv)
{
    if (argc != 2)
        return s_usage_error("cp needs a SRC and a DST");
    const char *src = argv[0], *dst = argv[1];
    int src_s3 = knn_s3_uri_is_s3(src), dst_s3 = knn_s3_uri_is_s3(dst);
    if (src_s3 && dst_s3)
        return s_usage_error("cp copies between S3 and local files; S3 to S3 (%s) is not supported", src);
    if (!src_s3 && !dst_s3)
        return s_usage_error("cp needs one side in S3 (s3://bucket/key); %s is local", dst);
    struct knn_s3_uri uri;
    int rc = knn_s3_uri_parse(&uri, src_s3 ? src : dst);
    if (rc) {
        knn_s3_uri_clean_up(&uri);
        return s_fail(st->o, rc);
    }
    if ((rc = s_make_client(st, &uri)))
        goto done;
    struct knn_buf key = KNN_BUF_INIT(8192), path = KNN_BUF_INIT(8192);
    if (dst_s3) { /* upload */
        if (st->o->recursive) {
            if (!s_is_dir(src)) {
                rc = knn_error_set(KNN_EINVAL, "%s is not a folder (--recursive copies folders)", src);
            } else {
                size_t kl = strlen(uri.key);
                rc = knn_buf_printf(&key, "%s%s", uri.key, kl && uri.key[kl - 1] != '/' ? "/" : "");
                if (!rc)
                    rc = s_upload_tree(st, src, "", uri.bucket, (const char *)key.data);
            }
        } else {
            size_t kl = strlen(uri.key);
            if (kl == 0 || uri.key[kl - 1] == '/') { /* s3://b/dir/ names a folder: keep the file's name */
                if (strcmp(src, "-") == 0)
                    rc = knn_error_set(KNN_EINVAL, "uploading standard input needs a full key, not %s", dst);
                else
                    rc = knn_buf_printf(&key, "%s%s", uri.key, s_basename(src));
            } else {
                rc = knn_buf_append_str(&key, uri.key);
            }
            if (!rc)
                rc = s_upload_one(st, src, uri.bucket, (const char *)key.data);
        }
    } else { /* download */
        if (st->o->recursive) {
            size_t kl = strlen(uri.key);
            rc = knn_buf_printf(&key, "%s%s", uri.key, kl && uri.key[kl - 1] != '/' ? "/" : "");
            if (!rc && mkdir(dst, 0755) != 0 && errno != EEXIST)
                rc = knn_error_set(KNN_EIO, "%s: cannot create the folder: %s", dst, strerror(errno));
            if (!rc) {
                struct s_download_tree t = {st, uri.bucket, (const char *)key.data, dst};
                rc = knn_s3_list_each(st->client, uri.bucket, (const char *)key.data, NULL, s_download_cb, &t);
            }
        } else {
            size_t dl = strlen(dst);
            if (!*uri.key || uri.key[strlen(uri.key) - 1] == '/')
                rc = knn_error_set(KNN_EINVAL, "%s names a folder, not an object (use --recursive)", src);
            else if (s_is_dir(dst) || (dl && dst[dl - 1] == '/'))
                rc = knn_buf_printf(&path, "%s%s%s", dst, dst[dl - 1] == '/' ? "" : "/", s_basename(uri.key));
            else
                rc = knn_buf_append_str(&path, dst);
            if (!rc)
                rc = s_download_one(st, uri.bucket, uri.key, (const char *)path.data);
        }
    }
    knn_buf_clean_up(&key);
    knn_buf_clean_up(&path);
done:
    knn_s3_uri_clean_up(&uri);
    if (rc)
        return s_fail(st->o, rc);
    if (st->failures)
        return 1;
    return 0;
}

/* ---- rm ---- */

struct s_rm {
    struct s_state *st;
    const char *bucket;
};

static int s_rm_cb(void *user, const struct knn_s3_list_entry *e)
{
    struct s_rm *r = user;
    int rc = knn_s3_delete(r->st->client, r->bucket, e->info->key);
    if (rc)
        return rc;
    if (!r->st->o->quiet)
        printf("delete: s3://%s/%s\n", r->bucket, e->info->key);
    r->st->objects++;
    return 0;
}

static int s_cmd_rm(struct s_state *st, int argc, char **argv)
{
    if (argc != 1)
        return s_usage_error("rm needs one s3://bucket/key");
    if (!knn_s3_uri_is_s3(argv[0]))
        return s_usage_error("rm deletes S3 objects; %s is not an S3 location", argv[0]);
    struct knn_s3_uri uri;
    int rc = knn_s3_uri_parse(&uri, argv[0]);
    if (!rc && !st->o->recursive && !*uri.key)
        rc = knn_error_set(KNN_EINVAL, "%s names a bucket, not an object (use --recursive to empty a prefix)", argv[0]);
    if (!rc)
        rc = s_make_client(st, &uri);
    if (!rc && st->o->recursive) {
        struct s_rm r = {st, uri.bucket};
        rc = knn_s3_list_each(st->client, uri.bucket, uri.key, NULL, s_rm_cb, &r);
    } else if (!rc) {
        rc = knn_s3_delete(st->client, uri.bucket, uri.key);
        if (!rc && !st->o->quiet)
            printf("delete: s3://%s/%s\n", uri.bucket, uri.key);
    }
    knn_s3_uri_clean_up(&uri);
    return rc ? s_fail(st->o, rc) : 0;
}

/* ---- entry ---- */

int knn_cmd_s3(int argc, char **argv)
{
    struct s_opts o = {0};
    enum { O_ENDPOINT = 1000, O_REGION, O_PROFILE, O_PATH, O_VIRTUAL, O_SUMMARIZE };
    static const struct option longopts[] = {
        {"endpoint-url", required_argument, NULL, O_ENDPOINT},
        {"region", required_argument, NULL, O_REGION},
        {"profile", required_argument, NULL, O_PROFILE},
        {"path-style", no_argument, NULL, O_PATH},
        {"virtual-host", no_argument, NULL, O_VIRTUAL},
        {"recursive", no_argument, NULL, 'r'},
        {"summarize", no_argument, NULL, O_SUMMARIZE},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    if (argc < 2)
        return s_usage_error("needs a subcommand (ls, cp, rm)");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        s_usage(stdout);
        return 0;
    }
    o.sub = argv[1];
    if (strcmp(o.sub, "ls") != 0 && strcmp(o.sub, "cp") != 0 && strcmp(o.sub, "rm") != 0)
        return s_usage_error("unknown subcommand '%s' (ls, cp, rm)", o.sub);
    /* getopt on "s3 <sub> args...": argv[1] is the program name it skips. */
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc - 1, argv + 1, ":rqh", longopts, NULL)) != -1) {
        switch (c) {
            case O_ENDPOINT:
                o.endpoint = optarg;
                break;
            case O_REGION:
                o.region = optarg;
                break;
            case O_PROFILE:
                o.profile = optarg;
                break;
            case O_PATH:
                o.addressing = KNN_S3_ADDRESSING_PATH;
                break;
            case O_VIRTUAL:
                o.addressing = KNN_S3_ADDRESSING_VIRTUAL;
                break;
            case O_SUMMARIZE:
                o.summarize = 1;
                break;
            case 'r':
                o.recursive = 1;
                break;
            case 'q':
                o.quiet = 1;
                break;
            case 'h':
                s_usage(stdout);
                return 0;
            default:
                return knn_usage_getopt_error("s3", S_SYNOPSIS, c, argv + 1);
        }
    }
    int nargs = argc - 1 - optind;
    char **args = argv + 1 + optind;
    struct s_state st = {&o, NULL, 0, 0, 0};
    int rc;
    if (strcmp(o.sub, "ls") == 0)
        rc = s_cmd_ls(&st, nargs, args);
    else if (strcmp(o.sub, "cp") == 0)
        rc = s_cmd_cp(&st, nargs, args);
    else
        rc = s_cmd_rm(&st, nargs, args);
    knn_s3_client_destroy(st.client);
    fflush(stdout);
    return rc;
}
