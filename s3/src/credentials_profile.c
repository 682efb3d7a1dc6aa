/* The profile provider: static keys from the AWS shared credentials and config files. */
#include "credentials_impl.h"
#include "knn/common/alloc.h"
#include "knn/common/buf.h"
#include "knn/common/error.h"
#include "knn/s3/credentials.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define S_MAX_FILE (1024 * 1024)

/* The files hold secrets: wipe their text before freeing it. */
static void s_wipe_buf(struct knn_buf *b)
{
    if (b->data)
        OPENSSL_cleanse(b->data, b->cap);
    knn_buf_clean_up(b);
}

/* The value of each key we care about in one profile section, as (offset, length) into the file. */
enum s_key {
    S_AK,
    S_SK,
    S_TOKEN,
    S_REGION,
    S_ENDPOINT_URL,
    S_CA_BUNDLE,
    S_SERVICES,
    S_IGNORE_ENDPOINTS,
    S_S3_ADDRESSING, /* nested: "s3 =" then indented "addressing_style = ..." */
    S_S3_ENDPOINT,   /* nested: "s3 =" then indented "endpoint_url = ..." (profile or services section) */
    S_ROLE_ARN,
    S_CREDENTIAL_PROCESS,
    S_SSO_START_URL,
    S_SSO_SESSION,
    S_WEB_IDENTITY,
    S_KEY_COUNT
};
static const char *const s_key_names[S_KEY_COUNT] = {
    "aws_access_key_id", "aws_secret_access_key", "aws_session_token", "region",      "endpoint_url",
    "ca_bundle",         "services",              "ignore_configured_endpoint_urls",  "addressing_style",
    "endpoint_url",      "role_arn",              "credential_process", "sso_start_url", "sso_session",
    "web_identity_token_file",
};

/* Keys read inside the nested "s3 =" block; the others only at the top level. */
static int s_key_is_nested(int k)
{
    return k == S_S3_ADDRESSING || k == S_S3_ENDPOINT;
}

struct s_section {
    int found;
    const char *value[S_KEY_COUNT];
    size_t len[S_KEY_COUNT];
};

static int s_read_file(struct knn_buf *out, const char *path, int *missing)
{
    *missing = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT || errno == ENOTDIR) {
            *missing = 1;
            return 0;
        }
        return knn_error_set(KNN_EIO, "%s: cannot open: %s", path, strerror(errno));
    }
    char chunk[8192];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if ((rc = knn_buf_append(out, chunk, n))) {
            rc = knn_error_wrap(rc, "%s", path);
            break;
        }
    }
    if (!rc && ferror(f))
        rc = knn_error_set(KNN_EIO, "%s: read error", path);
    /* A NUL would cut a value short (a key read as ""): such a file is not a text file we can trust. */
    const uint8_t *nul = !rc && out->len ? memchr(out->data, 0, out->len) : NULL;
    if (nul)
        rc = knn_error_set(KNN_EFORMAT, "%s: a NUL byte at offset %zu: not a text file", path,
                           (size_t)(nul - out->data));
    if (!rc)
        rc = knn_buf_append(out, "", 0);
    fclose(f);
    return rc;
}

static int s_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Find section `want` (already in its file's form: "profile x", "default" or "x") and its keys. */
static void s_parse(struct s_section *sec, const char *text, size_t size, const char *want)
{
    size_t pos = 0;
    int in_section = 0, in_s3 = 0;
    memset(sec, 0, sizeof(*sec));
    while (pos < size) {
        size_t end = pos;
        while (end < size && text[end] != '\n')
            end++;
        const char *line = text + pos;
        size_t n = end - pos;
        pos = end + 1;
        int indented = n > 0 && (line[0] == ' ' || line[0] == '\t');
        while (n > 0 && s_is_space(line[0])) {
            line++;
            n--;
        }
        while (n > 0 && s_is_space(line[n - 1]))
            n--;
        if (n == 0 || line[0] == '#' || line[0] == ';')
            continue;
        if (line[0] == '[') {
            in_section = 0;
            if (line[n - 1] != ']')
                continue;
            const char *name = line + 1;
            size_t nl = n - 2;
            while (nl > 0 && s_is_space(name[0])) {
                name++;
                nl--;
            }
            while (nl > 0 && s_is_space(name[nl - 1]))
                nl--;
            /* "profile   x" is "profile x" */
            if (nl > 8 && strncmp(name, "profile", 7) == 0 && s_is_space(name[7]) &&
                strncmp(want, "profile ", 8) == 0) {
                const char *rest = name + 7;
                size_t rl = nl - 7;
                while (rl > 0 && s_is_space(rest[0])) {
                    rest++;
                    rl--;
                }
                in_section = strlen(want + 8) == rl && strncmp(rest, want + 8, rl) == 0;
            } else {
                in_section = strlen(want) == nl && strncmp(name, want, nl) == 0;
            }
            if (in_section)
                sec->found = 1;
            continue;
        }
        if (!in_section)
            continue;
        const char *eq = memchr(line, '=', n);
        if (!eq)
            continue;
        size_t kl = (size_t)(eq - line);
        while (kl > 0 && s_is_space(line[kl - 1]))
            kl--;
        const char *v = eq + 1;
        size_t vl = n - (size_t)(v - line);
        while (vl > 0 && s_is_space(v[0])) {
            v++;
            vl--;
        }
        /* "s3 =" with no value opens a nested block of indented lines; other nested blocks are skipped. */
        if (!indented) {
            in_s3 = vl == 0 && kl == 2 && strncasecmp(line, "s3", 2) == 0;
            if (vl == 0)
                continue;
        } else if (!in_s3) {
            continue;
        }
        for (int k = 0; k < S_KEY_COUNT; k++) {
            if (s_key_is_nested(k) != indented)
                continue;
            if (strlen(s_key_names[k]) == kl && strncasecmp(line, s_key_names[k], kl) == 0) {
                sec->value[k] = v;
                sec->len[k] = vl;
            }
        }
    }
}

struct s_files {
    char *profile;
    int explicit_profile;
    char *credentials_path;
    char *config_path;
};

static void s_files_clean_up(struct s_files *f)
{
    knn_free(f->profile);
    knn_free(f->credentials_path);
    knn_free(f->config_path);
    memset(f, 0, sizeof(*f));
}

static char *s_home_path(const char *rel)
{
    const char *home = getenv("HOME");
    if (!home || !*home)
        return NULL;
    struct knn_buf b = KNN_BUF_INIT(4096);
    if (knn_buf_printf(&b, "%s/%s", home, rel)) {
        knn_buf_clean_up(&b);
        return NULL;
    }
    return (char *)knn_buf_detach(&b, NULL);
}

static int s_files_resolve(struct s_files *f, const struct knn_s3_profile_options *opts)
{
    const char *env;
    memset(f, 0, sizeof(*f));
    const char *profile = opts ? opts->profile : NULL;
    f->explicit_profile = profile != NULL;
    if (!profile && (env = getenv("AWS_PROFILE")) && *env) {
        profile = env;
        f->explicit_profile = 1;
    }
    if (!profile)
        profile = "default";
    if (!(f->profile = knn_strdup(profile)))
        goto oom;
    if (opts && opts->credentials_file)
        f->credentials_path = knn_strdup(opts->credentials_file);
    else if ((env = getenv("AWS_SHARED_CREDENTIALS_FILE")) && *env)
        f->credentials_path = knn_strdup(env);
    else
        f->credentials_path = s_home_path(".aws/credentials");
    if (opts && opts->config_file)
        f->config_path = knn_strdup(opts->config_file);
    else if ((env = getenv("AWS_CONFIG_FILE")) && *env)
        f->config_path = knn_strdup(env);
    else
        f->config_path = s_home_path(".aws/config");
    return 0;
oom:
    s_files_clean_up(f);
    return KNN_ENOMEM;
}

/* Load one file's section for the profile. *found tells whether the section exists. */
static int s_load(struct knn_buf *text, struct s_section *sec, const char *path, const char *profile, int is_config)
{
    int missing;
    memset(sec, 0, sizeof(*sec));
    if (!path)
        return 0;
    int rc = s_read_file(text, path, &missing);
    if (rc || missing)
        return rc;
    char want[512];
    if (is_config && strcmp(profile, "default") != 0)
        snprintf(want, sizeof(want), "profile %s", profile);
    else
        snprintf(want, sizeof(want), "%s", profile);
    s_parse(sec, (const char *)text->data, text->len, want);
    if (!sec->found && is_config && strcmp(profile, "default") == 0)
        s_parse(sec, (const char *)text->data, text->len, "profile default");
    return 0;
}

#define S_PROCESS_MAX_OUTPUT (64 * 1024)
#define S_PROCESS_TIMEOUT_MS (5 * 60 * 1000)

extern char **environ;

/*
 * credential_process: run the command (through /bin/sh -c, so quoting works as the user typed it;
 * its stderr is ours, for prompts and messages), read at most 64 KiB of stdout within 5 minutes,
 * and parse the JSON of the AWS CLI's contract: {"Version": 1, "AccessKeyId", "SecretAccessKey",
 * "SessionToken", "Expiration"}. The command and its output are never logged (they may hold secrets).
 */
static int s_run_process(struct knn_s3_credentials *out, const char *cmd, size_t cmd_len, const char *profile)
{
    char *command = knn_strndup(cmd, cmd_len);
    struct knn_buf text = KNN_BUF_INIT(S_PROCESS_MAX_OUTPUT);
    int fds[2] = {-1, -1}, rc = 0, status = 0;
    pid_t pid = -1;
    posix_spawn_file_actions_t fa;
    int fa_ok = 0;
    if (!command)
        return KNN_ENOMEM;
    if (pipe(fds) != 0 || fcntl(fds[0], F_SETFD, FD_CLOEXEC) != 0 || fcntl(fds[1], F_SETFD, FD_CLOEXEC) != 0) {
        rc = knn_error_set(KNN_EIO, "profile '%s': credential_process: pipe: %s", profile, strerror(errno));
        goto done;
    }
    if (posix_spawn_file_actions_init(&fa) != 0) {
        rc = KNN_ENOMEM;
        goto done;
    }
    fa_ok = 1;
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    char *argv[] = {"/bin/sh", "-c", command, NULL};
    int err = posix_spawn(&pid, "/bin/sh", &fa, NULL, argv, environ);
    close(fds[1]);
    fds[1] = -1;
    if (err != 0) {
        pid = -1;
        rc = knn_error_set(KNN_ES3_CREDENTIALS, "profile '%s': credential_process could not start: %s", profile,
                           strerror(err));
        goto done;
    }
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long elapsed_ms = (long)(now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
        if (elapsed_ms >= S_PROCESS_TIMEOUT_MS) {
            rc = knn_error_set(KNN_ES3_CREDENTIALS, "profile '%s': credential_process gave no answer within %d s",
                               profile, S_PROCESS_TIMEOUT_MS / 1000);
            break;
        }
        struct pollfd pfd = {fds[0], POLLIN, 0};
        int pr = poll(&pfd, 1, (int)(S_PROCESS_TIMEOUT_MS - elapsed_ms));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            continue;
        char buf[4096];
        ssize_t n = read(fds[0], buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (knn_buf_append(&text, buf, (size_t)n) != 0) {
            rc = knn_error_set(KNN_ES3_CREDENTIALS, "profile '%s': credential_process wrote more than %d bytes",
                               profile, S_PROCESS_MAX_OUTPUT);
            break;
        }
    }
    if (rc)
        kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    pid = -1;
    if (rc)
        goto done;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        rc = knn_error_set(KNN_ES3_CREDENTIALS, "profile '%s': credential_process failed (%s %d; its messages are on "
                           "stderr above)", profile, WIFEXITED(status) ? "exit status" : "signal",
                           WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        goto done;
    }
    char what[300];
    snprintf(what, sizeof(what), "profile '%s': credential_process", profile);
    rc = knn__s3_credentials_from_json(out, text.data ? (const char *)text.data : "", text.len, what);
    if (rc == 0)
        snprintf(out->source, sizeof(out->source), "credential_process of profile '%s'", profile);
done:
    if (fa_ok)
        posix_spawn_file_actions_destroy(&fa);
    if (fds[0] >= 0)
        close(fds[0]);
    if (fds[1] >= 0)
        close(fds[1]);
    s_wipe_buf(&text);
    OPENSSL_cleanse(command, strlen(command));
    knn_free(command);
    return rc;
}

static int s_profile_get(struct knn_s3_credentials_provider *p, struct knn_s3_credentials *out)
{
    const struct knn_s3_profile_options *stored = p->impl;
    struct s_files f;
    struct knn_buf ctext = KNN_BUF_INIT(S_MAX_FILE), ftext = KNN_BUF_INIT(S_MAX_FILE);
    struct s_section csec, fsec;
    int rc = s_files_resolve(&f, stored);
    if (rc)
        return rc;
    if ((rc = s_load(&ctext, &csec, f.credentials_path, f.profile, 0)) ||
        (rc = s_load(&ftext, &fsec, f.config_path, f.profile, 1)))
        goto done;
    if (!csec.found && !fsec.found) {
        rc = knn_error_set(
            f.explicit_profile ? KNN_ECONFIG : KNN_ENOTFOUND, "profile '%s' not found in %s or %s", f.profile,
            f.credentials_path ? f.credentials_path : "(no credentials file)",
            f.config_path ? f.config_path : "(no config file)");
        goto done;
    }
    /* The credentials file wins, key by key. */
    struct s_section m = fsec;
    for (int k = 0; k < S_KEY_COUNT; k++) {
        if (csec.value[k]) {
            m.value[k] = csec.value[k];
            m.len[k] = csec.len[k];
        }
    }
    int have_ak = m.value[S_AK] && m.len[S_AK], have_sk = m.value[S_SK] && m.len[S_SK];
    if (have_ak && have_sk) {
        rc = knn__s3_credentials_set(
            out, m.value[S_AK], m.len[S_AK], m.value[S_SK], m.len[S_SK], m.value[S_TOKEN], m.len[S_TOKEN], 0);
        if (rc == 0)
            snprintf(out->source, sizeof(out->source), "profile '%s' in %s", f.profile,
                     csec.value[S_AK] ? f.credentials_path : f.config_path);
        goto done;
    }
    if (have_ak || have_sk) {
        rc = knn_error_set(
            KNN_ES3_CREDENTIALS, "profile '%s' has %s but not %s", f.profile,
            have_ak ? "aws_access_key_id" : "aws_secret_access_key",
            have_ak ? "aws_secret_access_key" : "aws_access_key_id");
        goto done;
    }
    if (m.value[S_CREDENTIAL_PROCESS] && m.len[S_CREDENTIAL_PROCESS] && !m.value[S_ROLE_ARN]) {
        rc = s_run_process(out, m.value[S_CREDENTIAL_PROCESS], m.len[S_CREDENTIAL_PROCESS], f.profile);
        goto done;
    }
    for (int k = S_ROLE_ARN; k < S_KEY_COUNT; k++) {
        if (m.value[k]) {
            rc = knn_error_set(
                KNN_EUNSUPPORTED,
                "profile '%s' uses %s, which knn-runner does not support: use static keys, "
                "environment variables, container or instance credentials",
                f.profile, s_key_names[k]);
            goto done;
        }
    }
    rc = knn_error_set(
        f.explicit_profile ? KNN_ES3_CREDENTIALS : KNN_ENOTFOUND, "profile '%s' has no credentials", f.profile);
done:
    s_wipe_buf(&ctext);
    s_wipe_buf(&ftext);
    s_files_clean_up(&f);
    return rc;
}

static void s_profile_destroy(struct knn_s3_credentials_provider *p)
{
    struct knn_s3_profile_options *o = p->impl;
    knn_free((char *)o->profile);
    knn_free((char *)o->credentials_file);
    knn_free((char *)o->config_file);
    knn_free(o);
    knn_free(p);
}

static const struct knn_s3_credentials_provider_vtable s_profile_vtable = {s_profile_get, s_profile_destroy};

static int s_dup_opt(const char **dst, const char *src)
{
    *dst = NULL;
    if (src && !(*dst = knn_strdup(src)))
        return KNN_ENOMEM;
    return 0;
}

int knn_s3_credentials_provider_new_profile(
    struct knn_s3_credentials_provider **out, const struct knn_s3_profile_options *opts)
{
    *out = NULL;
    struct knn_s3_profile_options *o = knn_calloc(1, sizeof(*o));
    if (!o)
        return KNN_ENOMEM;
    int rc = 0;
    if (opts && ((rc = s_dup_opt(&o->profile, opts->profile)) ||
                 (rc = s_dup_opt(&o->credentials_file, opts->credentials_file)) ||
                 (rc = s_dup_opt(&o->config_file, opts->config_file))))
        goto on_error;
    if ((rc = knn__s3_provider_new(out, &s_profile_vtable, "profile", o)))
        goto on_error;
    return 0;
on_error:
    knn_free((char *)o->profile);
    knn_free((char *)o->credentials_file);
    knn_free((char *)o->config_file);
    knn_free(o);
    return rc;
}

int knn_s3_profile_region(char **out, const struct knn_s3_profile_options *opts)
{
    struct s_files f;
    struct knn_buf ctext = KNN_BUF_INIT(S_MAX_FILE), ftext = KNN_BUF_INIT(S_MAX_FILE);
    struct s_section csec, fsec;
    *out = NULL;
    int rc = s_files_resolve(&f, opts);
    if (rc)
        return rc;
    if ((rc = s_load(&ftext, &fsec, f.config_path, f.profile, 1)) ||
        (rc = s_load(&ctext, &csec, f.credentials_path, f.profile, 0)))
        goto done;
    const char *v = fsec.value[S_REGION] ? fsec.value[S_REGION] : csec.value[S_REGION];
    size_t vl = fsec.value[S_REGION] ? fsec.len[S_REGION] : csec.len[S_REGION];
    if (v && vl && !(*out = knn_strndup(v, vl)))
        rc = KNN_ENOMEM;
done:
    s_wipe_buf(&ctext);
    s_wipe_buf(&ftext);
    s_files_clean_up(&f);
    return rc;
}

static int s_take(char **dst, const struct s_section *sec, int k)
{
    *dst = NULL;
    if (sec->value[k] && sec->len[k] && !(*dst = knn_strndup(sec->value[k], sec->len[k])))
        return KNN_ENOMEM;
    return 0;
}

void knn_s3_profile_config_clean_up(struct knn_s3_profile_config *config)
{
    knn_free(config->region);
    knn_free(config->endpoint_url);
    knn_free(config->s3_endpoint_url);
    knn_free(config->ca_bundle);
    knn_free(config->addressing_style);
    knn_free(config->config_path);
    memset(config, 0, sizeof(*config));
}

int knn_s3_profile_config_read(struct knn_s3_profile_config *out, const struct knn_s3_profile_options *opts)
{
    struct s_files f;
    struct knn_buf ftext = KNN_BUF_INIT(S_MAX_FILE);
    struct s_section fsec, ssec;
    char *region = NULL;
    memset(out, 0, sizeof(*out));
    int rc = knn_s3_profile_region(&region, opts);
    if (rc)
        return rc;
    out->region = region;
    if ((rc = s_files_resolve(&f, opts)))
        goto done;
    if ((rc = s_load(&ftext, &fsec, f.config_path, f.profile, 1)))
        goto done;
    if (f.config_path && fsec.found && !(out->config_path = knn_strdup(f.config_path))) {
        rc = KNN_ENOMEM;
        goto done;
    }
    if ((rc = s_take(&out->endpoint_url, &fsec, S_ENDPOINT_URL)) || (rc = s_take(&out->ca_bundle, &fsec, S_CA_BUNDLE)) ||
        (rc = s_take(&out->addressing_style, &fsec, S_S3_ADDRESSING)))
        goto done;
    out->ignore_configured_endpoint_urls = fsec.value[S_IGNORE_ENDPOINTS] && fsec.len[S_IGNORE_ENDPOINTS] == 4 &&
                                           strncasecmp(fsec.value[S_IGNORE_ENDPOINTS], "true", 4) == 0;
    if (fsec.value[S_SERVICES] && fsec.len[S_SERVICES]) {
        char want[512];
        snprintf(want, sizeof(want), "services %.*s", (int)(fsec.len[S_SERVICES] < 400 ? fsec.len[S_SERVICES] : 400),
                 fsec.value[S_SERVICES]);
        s_parse(&ssec, (const char *)ftext.data, ftext.len, want);
        if (!ssec.found) {
            rc = knn_error_set(KNN_ECONFIG, "%s: profile '%s' names services '%.*s', which has no [%s] section",
                               f.config_path, f.profile, (int)fsec.len[S_SERVICES], fsec.value[S_SERVICES], want);
            goto done;
        }
        if ((rc = s_take(&out->s3_endpoint_url, &ssec, S_S3_ENDPOINT)))
            goto done;
    }
done:
    s_wipe_buf(&ftext);
    s_files_clean_up(&f);
    if (rc)
        knn_s3_profile_config_clean_up(out);
    return rc;
}
