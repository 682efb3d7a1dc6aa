/* Credentials, the provider base, and the static, env, chain, cached and default providers. */
#include "knn/s3/credentials.h"

#include "credentials_impl.h"
#include "knn/common/alloc.h"
#include "knn/common/error.h"
#include "knn/common/log.h"

#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void s_wipe_free(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        knn_free(s);
    }
}

void knn_s3_credentials_clean_up(struct knn_s3_credentials *creds)
{
    if (!creds)
        return;
    s_wipe_free(creds->access_key_id);
    s_wipe_free(creds->secret_access_key);
    s_wipe_free(creds->session_token);
    memset(creds, 0, sizeof(*creds));
}

int knn__s3_credentials_set(
    struct knn_s3_credentials *out, const char *ak, size_t ak_len, const char *sk, size_t sk_len, const char *token,
    size_t token_len, int64_t expiration_s)
{
    memset(out, 0, sizeof(*out));
    if (!(out->access_key_id = knn_strndup(ak, ak_len)) || !(out->secret_access_key = knn_strndup(sk, sk_len)) ||
        (token && token_len && !(out->session_token = knn_strndup(token, token_len)))) {
        knn_s3_credentials_clean_up(out);
        return KNN_ENOMEM;
    }
    out->expiration_s = expiration_s;
    return 0;
}

int knn_s3_credentials_copy(struct knn_s3_credentials *dst, const struct knn_s3_credentials *src)
{
    int rc = knn__s3_credentials_set(
        dst, src->access_key_id, strlen(src->access_key_id), src->secret_access_key, strlen(src->secret_access_key),
        src->session_token, src->session_token ? strlen(src->session_token) : 0, src->expiration_s);
    if (rc == 0)
        memcpy(dst->source, src->source, sizeof(dst->source));
    return rc;
}

void knn_s3_credentials_describe(char *buf, size_t size, const struct knn_s3_credentials *creds)
{
    /* The first characters of the key id tell keys apart (AKIA.. long-term, ASIA.. temporary); never the secret. */
    size_t n = creds->access_key_id ? strlen(creds->access_key_id) : 0;
    size_t shown = n / 2 < 8 ? n / 2 : 8;
    snprintf(buf, size, "%s, access key id %.*s... (%zu characters)%s",
             creds->source[0] ? creds->source : "unknown source", (int)shown,
             creds->access_key_id ? creds->access_key_id : "", n, creds->session_token ? ", with a session token" : "");
}

int knn_s3_credentials_provider_get(struct knn_s3_credentials *out, struct knn_s3_credentials_provider *provider)
{
    memset(out, 0, sizeof(*out));
    int rc = provider->vtable->get_credentials(provider, out);
    if (rc)
        knn_s3_credentials_clean_up(out);
    return rc;
}

struct knn_s3_credentials_provider *knn_s3_credentials_provider_acquire(struct knn_s3_credentials_provider *provider)
{
    if (provider)
        __atomic_fetch_add(&provider->ref_count, 1, __ATOMIC_RELAXED);
    return provider;
}

void knn_s3_credentials_provider_release(struct knn_s3_credentials_provider *provider)
{
    if (!provider)
        return;
    if (__atomic_fetch_sub(&provider->ref_count, 1, __ATOMIC_ACQ_REL) == 1)
        provider->vtable->destroy(provider);
}

int knn__s3_provider_new(
    struct knn_s3_credentials_provider **out, const struct knn_s3_credentials_provider_vtable *vtable, const char *name,
    void *impl)
{
    struct knn_s3_credentials_provider *p = knn_calloc(1, sizeof(*p));
    if (!p)
        return KNN_ENOMEM;
    p->vtable = vtable;
    p->impl = impl;
    p->name = name;
    p->ref_count = 1;
    *out = p;
    return 0;
}

/* ---- static ---- */

static int s_static_get(struct knn_s3_credentials_provider *p, struct knn_s3_credentials *out)
{
    return knn_s3_credentials_copy(out, p->impl);
}

static void s_static_destroy(struct knn_s3_credentials_provider *p)
{
    knn_s3_credentials_clean_up(p->impl);
    knn_free(p->impl);
    knn_free(p);
}

static const struct knn_s3_credentials_provider_vtable s_static_vtable = {s_static_get, s_static_destroy};

int knn_s3_credentials_provider_new_static(
    struct knn_s3_credentials_provider **out, const char *ak, const char *sk, const char *token)
{
    *out = NULL;
    if (!ak || !*ak || !sk || !*sk)
        return knn_error_set(KNN_EINVAL, "static credentials need an access key id and a secret access key");
    struct knn_s3_credentials *c = knn_calloc(1, sizeof(*c));
    if (!c)
        return KNN_ENOMEM;
    int rc = knn__s3_credentials_set(c, ak, strlen(ak), sk, strlen(sk), token, token ? strlen(token) : 0, 0);
    if (!rc) {
        snprintf(c->source, sizeof(c->source), "the keys given to the client");
        rc = knn__s3_provider_new(out, &s_static_vtable, "static", c);
    }
    if (rc) {
        knn_s3_credentials_clean_up(c);
        knn_free(c);
    }
    return rc;
}

/* ---- environment ---- */

static int s_env_get(struct knn_s3_credentials_provider *p, struct knn_s3_credentials *out)
{
    const char *ak = getenv("AWS_ACCESS_KEY_ID");
    const char *sk = getenv("AWS_SECRET_ACCESS_KEY");
    const char *token = getenv("AWS_SESSION_TOKEN");
    int have_ak = ak && *ak, have_sk = sk && *sk;
    if (!have_ak && !have_sk)
        return knn_error_set(KNN_ENOTFOUND, "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set");
    if (!have_ak || !have_sk)
        return knn_error_set(
            KNN_ES3_CREDENTIALS, "environment credentials are partial: %s is set but %s is not",
            have_ak ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
            have_ak ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
    int rc = knn__s3_credentials_set(out, ak, strlen(ak), sk, strlen(sk), token, token ? strlen(token) : 0, 0);
    if (rc == 0)
        snprintf(out->source, sizeof(out->source), "environment variables AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY%s",
                 token && *token ? "/AWS_SESSION_TOKEN" : "");
    return rc;
}

static void s_plain_destroy(struct knn_s3_credentials_provider *p)
{
    knn_free(p);
}

static const struct knn_s3_credentials_provider_vtable s_env_vtable = {s_env_get, s_plain_destroy};

int knn_s3_credentials_provider_new_env(struct knn_s3_credentials_provider **out)
{
    *out = NULL;
    return knn__s3_provider_new(out, &s_env_vtable, "env", NULL);
}

/* ---- chain ---- */

struct s_chain {
    struct knn_s3_credentials_provider **providers;
    int count;
};

static int s_chain_get(struct knn_s3_credentials_provider *p, struct knn_s3_credentials *out)
{
    struct s_chain *chain = p->impl;
    char last[256] = "";
    for (int i = 0; i < chain->count; i++) {
        struct knn_s3_credentials_provider *member = chain->providers[i];
        int rc = knn_s3_credentials_provider_get(out, member);
        if (rc == 0) {
            if (!out->source[0])
                snprintf(out->source, sizeof(out->source), "the %s provider", member->name);
            KNN_LOG(KNN_LOG_DEBUG, KNN_LS_S3, "credentials from %s", out->source);
            return 0;
        }
        if (rc != KNN_ENOTFOUND)
            return knn_error_wrap(rc, "credentials (%s)", member->name);
        snprintf(last, sizeof(last), "%s", knn_error_message());
        KNN_LOG(KNN_LOG_DEBUG, KNN_LS_S3, "credentials: %s: %s", member->name, last);
    }
    return knn_error_set(
        KNN_ES3_CREDENTIALS,
        "no AWS credentials found (tried environment AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, the profile in the "
        "shared credentials and config files, container credentials, EC2 instance metadata; last: %s)",
        last);
}

static void s_chain_destroy(struct knn_s3_credentials_provider *p)
{
    struct s_chain *chain = p->impl;
    for (int i = 0; i < chain->count; i++)
        knn_s3_credentials_provider_release(chain->providers[i]);
    knn_free(chain->providers);
    knn_free(chain);
    knn_free(p);
}

static const struct knn_s3_credentials_provider_vtable s_chain_vtable = {s_chain_get, s_chain_destroy};

int knn_s3_credentials_provider_new_chain(
    struct knn_s3_credentials_provider **out, struct knn_s3_credentials_provider **providers, int count)
{
    int rc;
    struct s_chain *chain = NULL;
    *out = NULL;
    if (count <= 0) {
        rc = knn_error_set(KNN_EINVAL, "a credentials chain needs at least one provider");
        goto on_error;
    }
    if (!(chain = knn_calloc(1, sizeof(*chain))) ||
        !(chain->providers = knn_malloc_array((size_t)count, sizeof(*chain->providers)))) {
        rc = KNN_ENOMEM;
        goto on_error;
    }
    memcpy(chain->providers, providers, (size_t)count * sizeof(*providers));
    chain->count = count;
    if ((rc = knn__s3_provider_new(out, &s_chain_vtable, "chain", chain)))
        goto on_error;
    return 0;

on_error:
    for (int i = 0; i < count; i++)
        knn_s3_credentials_provider_release(providers[i]);
    if (chain)
        knn_free(chain->providers);
    knn_free(chain);
    return rc;
}

/* ---- cached ---- */

struct s_cached {
    struct knn_s3_credentials_provider *inner;
    int64_t refresh_before_s;
    knn_s3_clock_fn *clock;
    void *clock_user;
    pthread_mutex_t lock;
    int have;
    struct knn_s3_credentials creds;
};

int64_t knn__s3_system_clock(void *user)
{
    (void)user;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

static int s_cached_get(struct knn_s3_credentials_provider *p, struct knn_s3_credentials *out)
{
    struct s_cached *c = p->impl;
    int rc = 0;
    pthread_mutex_lock(&c->lock);
    int64_t now = c->clock(c->clock_user);
    int fresh = c->have && (c->creds.expiration_s == 0 || now < c->creds.expiration_s - c->refresh_before_s);
    if (!fresh) {
        struct knn_s3_credentials next;
        rc = knn_s3_credentials_provider_get(&next, c->inner);
        if (rc == 0) {
            knn_s3_credentials_clean_up(&c->creds);
            c->creds = next;
            c->have = 1;
            KNN_LOG(KNN_LOG_DEBUG, KNN_LS_S3, "credentials refreshed (expire at %lld)", (long long)next.expiration_s);
        } else if (c->have && c->creds.expiration_s > now) {
            /* The refresh failed but the old credentials are still valid: use them (as the SDKs do). */
            KNN_LOG(
                KNN_LOG_WARN, KNN_LS_S3, "credentials refresh failed, using the current ones: %s", knn_error_message());
            rc = 0;
        }
    }
    if (rc == 0)
        rc = knn_s3_credentials_copy(out, &c->creds);
    pthread_mutex_unlock(&c->lock);
    return rc;
}

static void s_cached_destroy(struct knn_s3_credentials_provider *p)
{
    struct s_cached *c = p->impl;
    knn_s3_credentials_provider_release(c->inner);
    knn_s3_credentials_clean_up(&c->creds);
    pthread_mutex_destroy(&c->lock);
    knn_free(c);
    knn_free(p);
}

static const struct knn_s3_credentials_provider_vtable s_cached_vtable = {s_cached_get, s_cached_destroy};

int knn_s3_credentials_provider_new_cached(
    struct knn_s3_credentials_provider **out, struct knn_s3_credentials_provider *inner, int64_t refresh_before_s,
    knn_s3_clock_fn *clock, void *clock_user)
{
    *out = NULL;
    struct s_cached *c = knn_calloc(1, sizeof(*c));
    if (!c) {
        knn_s3_credentials_provider_release(inner);
        return KNN_ENOMEM;
    }
    c->inner = inner;
    c->refresh_before_s = refresh_before_s;
    c->clock = clock ? clock : knn__s3_system_clock;
    c->clock_user = clock_user;
    pthread_mutex_init(&c->lock, NULL);
    int rc = knn__s3_provider_new(out, &s_cached_vtable, "cached", c);
    if (rc) {
        pthread_mutex_destroy(&c->lock);
        knn_s3_credentials_provider_release(inner);
        knn_free(c);
    }
    return rc;
}

/* ---- default chain ---- */

int knn_s3_credentials_provider_new_default(struct knn_s3_credentials_provider **out, const char *profile)
{
    struct knn_s3_credentials_provider *members[4] = {0};
    struct knn_s3_credentials_provider *chain = NULL;
    struct knn_s3_profile_options popts = KNN_S3_PROFILE_OPTIONS_INIT;
    int n = 0, rc;
    *out = NULL;
    popts.profile = profile;
    if (!profile && (rc = knn_s3_credentials_provider_new_env(&members[n++])))
        goto on_error;
    if ((rc = knn_s3_credentials_provider_new_profile(&members[n++], &popts)))
        goto on_error;
    if ((rc = knn_s3_credentials_provider_new_container(&members[n++], NULL)))
        goto on_error;
    if ((rc = knn_s3_credentials_provider_new_imds(&members[n++], NULL)))
        goto on_error;
    rc = knn_s3_credentials_provider_new_chain(&chain, members, n);
    n = 0; /* the chain owns them now, also on failure */
    if (rc)
        goto on_error;
    return knn_s3_credentials_provider_new_cached(out, chain, 5 * 60, NULL, NULL);

on_error:
    for (int i = 0; i < n; i++)
        knn_s3_credentials_provider_release(members[i]);
    return rc;
}
