#ifndef KNN_S3_CREDENTIALS_H
#define KNN_S3_CREDENTIALS_H

/**
 * AWS credentials and the providers that find them, resolved the way the AWS SDKs do.
 *
 * A provider is a small vtable {get_credentials, destroy} plus its state. Providers are
 * reference-counted (acquire/release) because a client and its caller may both hold one, and they
 * are thread-safe: get_credentials may be called from several threads at once.
 *
 * The default chain (knn_s3_credentials_provider_new_default) tries, in order:
 *   1. environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN;
 *   2. profile: the shared credentials file (AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials)
 *      and config file (AWS_CONFIG_FILE, else ~/.aws/config), profile AWS_PROFILE or "default";
 *   3. container: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (on 169.254.170.2) or
 *      AWS_CONTAINER_CREDENTIALS_FULL_URI (https, or http to a loopback or the ECS/EKS addresses),
 *      with AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or AWS_CONTAINER_AUTHORIZATION_TOKEN;
 *   4. EC2 instance metadata (IMDSv2 session tokens, falling back to IMDSv1 when the token request
 *      is refused with 403/404/405), at AWS_EC2_METADATA_SERVICE_ENDPOINT or http://169.254.169.254,
 *      unless AWS_EC2_METADATA_DISABLED=true; timeout AWS_METADATA_SERVICE_TIMEOUT seconds (1),
 *      attempts AWS_METADATA_SERVICE_NUM_ATTEMPTS (1);
 * and caches what it found until 5 minutes before it expires.
 *
 * Errors of every provider: KNN_ENOTFOUND means "this source is not configured" (the chain then
 * tries the next one); any other code means the source is configured but broken (a partial pair of
 * keys, an unreadable file, a credentials endpoint that fails): the chain stops there and reports it,
 * rather than silently falling through to another identity. The chain itself returns
 * KNN_ES3_CREDENTIALS when no source is configured.
 *
 * Secrets are never logged or put in error messages; knn_s3_credentials_clean_up wipes them.
 */

#include <stddef.h>
#include <stdint.h>

struct knn_s3_credentials {
    char *access_key_id;
    char *secret_access_key;
    char *session_token;  /* NULL if none */
    int64_t expiration_s; /* Unix time in seconds; 0: does not expire */
    char source[160];     /* where they came from, for messages: "environment variables", "profile 'x' in ..." */
};

/** Wipe (OPENSSL_cleanse) and free the strings; leaves the struct zeroed. NULL-safe. */
void knn_s3_credentials_clean_up(struct knn_s3_credentials *creds);

/**
 * "<source>, access key id AKIAIOSF... (20 characters)[, with a session token]" for messages: at most
 * the first 8 characters (half of a short one) of the key id, never the secret or the token.
 */
void knn_s3_credentials_describe(char *buf, size_t size, const struct knn_s3_credentials *creds);

/** Deep copy into `dst` (which must be empty). Errors: KNN_ENOMEM. */
int knn_s3_credentials_copy(struct knn_s3_credentials *dst, const struct knn_s3_credentials *src);

struct knn_s3_credentials_provider;

struct knn_s3_credentials_provider_vtable {
    /** Fill `out` (empty on entry) with fresh owned credentials, or return an error (see above). */
    int (*get_credentials)(struct knn_s3_credentials_provider *provider, struct knn_s3_credentials *out);
    /** Free the provider's state (called once, when the last reference is released). */
    void (*destroy)(struct knn_s3_credentials_provider *provider);
};

struct knn_s3_credentials_provider {
    const struct knn_s3_credentials_provider_vtable *vtable;
    void *impl;
    const char *name; /* "env", "profile", "container", "imds", "static", "chain", "cached" */
    int ref_count;    /* atomically updated by acquire/release */
};

/** Get credentials from `provider` into `out` (empty on entry; clean it up after use). */
int knn_s3_credentials_provider_get(struct knn_s3_credentials *out, struct knn_s3_credentials_provider *provider);

/** Take a reference; returns `provider`. NULL-safe. */
struct knn_s3_credentials_provider *knn_s3_credentials_provider_acquire(struct knn_s3_credentials_provider *provider);

/** Drop a reference; the provider is destroyed with the last one. NULL-safe. */
void knn_s3_credentials_provider_release(struct knn_s3_credentials_provider *provider);

/** Fixed keys (copied). session_token may be NULL. Errors: KNN_EINVAL (empty key), KNN_ENOMEM. */
int knn_s3_credentials_provider_new_static(
    struct knn_s3_credentials_provider **out, const char *access_key_id, const char *secret_access_key,
    const char *session_token);

/** AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, read at each get. */
int knn_s3_credentials_provider_new_env(struct knn_s3_credentials_provider **out);

struct knn_s3_profile_options {
    const char *profile;          /* NULL: $AWS_PROFILE, else "default" */
    const char *credentials_file; /* NULL: $AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials */
    const char *config_file;      /* NULL: $AWS_CONFIG_FILE, else ~/.aws/config */
};
#define KNN_S3_PROFILE_OPTIONS_INIT                                                                                    \
    {                                                                                                                  \
        NULL, NULL, NULL                                                                                               \
    }

/**
 * Static keys of a profile in the shared credentials file, or in the config file ("[profile NAME]",
 * "[default]"); the credentials file wins for a key set in both. Without static keys, the
 * profile's credential_process is run (/bin/sh -c, stdout JSON of the AWS CLI's contract, at most
 * 64 KiB within 5 minutes; its expiration is honoured by the cache). A profile that exists but uses
 * a feature we do not implement (role_arn, sso_*, web_identity_token_file) fails with
 * KNN_EUNSUPPORTED naming it. KNN_ENOTFOUND: neither file has the profile.
 */
int knn_s3_credentials_provider_new_profile(
    struct knn_s3_credentials_provider **out, const struct knn_s3_profile_options *opts);

/**
 * The `region` of a profile in the config file (then the credentials file), as a knn_malloc'ed
 * string in *out, or *out = NULL if not set. Errors: KNN_EIO (unreadable file), KNN_ENOMEM.
 */
int knn_s3_profile_region(char **out, const struct knn_s3_profile_options *opts);

/** The settings of a profile that shape the client, as the AWS CLI reads them from the config file. */
struct knn_s3_profile_config {
    char *region;               /* region */
    char *endpoint_url;         /* the profile's endpoint_url (every service) */
    char *s3_endpoint_url;      /* endpoint_url of the s3 block of the profile's `services = NAME` section */
    char *ca_bundle;            /* ca_bundle */
    char *addressing_style;     /* the profile's "s3 =" block: addressing_style (auto | path | virtual) */
    int ignore_configured_endpoint_urls; /* ignore_configured_endpoint_urls = true */
    char *config_path;          /* the file read, for messages (NULL if none) */
};

/**
 * Read the profile (opts as for the profile provider) from the config file (then the credentials
 * file for `region`, as before). Every field NULL/0 when not set; a missing file or profile is not
 * an error. Clean up with knn_s3_profile_config_clean_up. Errors: KNN_EIO, KNN_ENOMEM.
 */
int knn_s3_profile_config_read(struct knn_s3_profile_config *out, const struct knn_s3_profile_options *opts);
void knn_s3_profile_config_clean_up(struct knn_s3_profile_config *config);

struct knn_s3_http_credentials_options {
    int timeout_ms;   /* per attempt; 0: 1000 for IMDS (or AWS_METADATA_SERVICE_TIMEOUT), 2000 for containers */
    int max_attempts; /* 0: 1 for IMDS (or AWS_METADATA_SERVICE_NUM_ATTEMPTS), 3 for containers */
};
#define KNN_S3_HTTP_CREDENTIALS_OPTIONS_INIT                                                                           \
    {                                                                                                                  \
        0, 0                                                                                                           \
    }

/**
 * Container credentials (ECS task roles, EKS Pod Identity, SageMaker), from the environment
 * variables named above, read at each get. KNN_ENOTFOUND if neither URI variable is set; KNN_EINVAL
 * for a FULL_URI on a host that is not allowed; KNN_ES3_CREDENTIALS if the endpoint fails.
 */
int knn_s3_credentials_provider_new_container(
    struct knn_s3_credentials_provider **out, const struct knn_s3_http_credentials_options *opts);

/**
 * EC2 instance metadata (instance profile role). KNN_ENOTFOUND (the chain goes on, as the SDKs do)
 * if AWS_EC2_METADATA_DISABLED=true, the endpoint does not answer, or it has no instance role;
 * KNN_EFORMAT / KNN_ES3_CREDENTIALS if it hands out credentials we cannot use.
 */
int knn_s3_credentials_provider_new_imds(
    struct knn_s3_credentials_provider **out, const struct knn_s3_http_credentials_options *opts);

/**
 * Try `providers[0..count)` in order (see the error rules above). Takes over the caller's
 * references to the providers, also on failure. Errors: KNN_EINVAL (count 0), KNN_ENOMEM.
 */
int knn_s3_credentials_provider_new_chain(
    struct knn_s3_credentials_provider **out, struct knn_s3_credentials_provider **providers, int count);

/** Wall clock for the cached provider (tests inject one); returns Unix seconds. */
typedef int64_t(knn_s3_clock_fn)(void *user);

/**
 * Cache `inner`'s credentials: reuse them until `refresh_before_s` seconds before they expire (never
 * refresh credentials without an expiration). Takes over the caller's reference to `inner`, also on
 * failure. clock NULL: the system clock. Thread-safe; one refresh at a time.
 */
int knn_s3_credentials_provider_new_cached(
    struct knn_s3_credentials_provider **out, struct knn_s3_credentials_provider *inner, int64_t refresh_before_s,
    knn_s3_clock_fn *clock, void *clock_user);

/**
 * The default chain described at the top, cached. `profile` NULL: $AWS_PROFILE or "default". When
 * a profile is named explicitly (not NULL), the environment keys are skipped, as the AWS CLI does
 * for --profile.
 */
int knn_s3_credentials_provider_new_default(struct knn_s3_credentials_provider **out, const char *profile);

#endif
