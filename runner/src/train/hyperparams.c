/* SageMaker k-NN hyperparameters: one table drives parsing, defaults and validation (spec §1). */
#include "train/hyperparams.h"

#include "knn/common/alloc.h"
#include "knn/common/buf.h"
#include "knn/common/error.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define S_INT_RULE "a positive integer (a JSON integer >= 1 or a string matching ^([1-9][0-9]*)$)"

struct s_row;
/*
 * A validator checks one given value. On success it stores the value's text in *text (knn_malloc'ed)
 * and, for numbers, the value in *number. On a violation it appends "name: ..." to `errs` and
 * returns 1; it returns a negative KNN_E* only for ENOMEM / ETOOBIG.
 */
typedef int(s_validator_fn)(const struct s_row *row, const json_t *value, char **text, uint64_t *number,
                            struct knn_buf *errs);

struct s_row {
    const char *name;
    int required;
    const char *default_value; /* NULL: no default */
    s_validator_fn *validate;
    const char *const *choices; /* enums; NULL-terminated */
    uint64_t max;               /* integers: largest allowed value; 0 = no limit */
};

static s_validator_fn s_validate_int, s_validate_enum, s_validate_int_or_auto, s_validate_pq_m, s_validate_any;

static const char *const s_predictors[] = {"classifier", "regressor", NULL};
static const char *const s_dimred_types[] = {"sign", "fjlt", "none", NULL};
static const char *const s_index_types[] = {"faiss.Flat", "faiss.IVFFlat", "faiss.IVFPQ", NULL};
static const char *const s_metrics[] = {"L2", "INNER_PRODUCT", "COSINE", NULL};
/* The PQ code lengths FAISS's GPU IVFPQ supports (spec §1.2). */
static const uint64_t s_pq_m_allowed[] = {1, 2, 3, 4, 8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 96};

static const struct s_row s_table[KNN_HP_COUNT] = {
    [KNN_HP_FEATURE_DIM] = {"feature_dim", 1, NULL, s_validate_int, NULL, 0},
    [KNN_HP_K] = {"k", 1, NULL, s_validate_int, NULL, KNN_HP_MAX_K},
    [KNN_HP_PREDICTOR_TYPE] = {"predictor_type", 1, NULL, s_validate_enum, s_predictors, 0},
    [KNN_HP_SAMPLE_SIZE] = {"sample_size", 1, NULL, s_validate_int, NULL, 0},
    [KNN_HP_DIMENSION_REDUCTION_TYPE] = {"dimension_reduction_type", 0, NULL, s_validate_enum, s_dimred_types, 0},
    [KNN_HP_DIMENSION_REDUCTION_TARGET] = {"dimension_reduction_target", 0, NULL, s_validate_int, NULL, 0},
    [KNN_HP_INDEX_TYPE] = {"index_type", 0, "faiss.Flat", s_validate_enum, s_index_types, 0},
    [KNN_HP_INDEX_METRIC] = {"index_metric", 0, "L2", s_validate_enum, s_metrics, 0},
    [KNN_HP_FAISS_INDEX_IVF_NLISTS] = {"faiss_index_ivf_nlists", 0, "auto", s_validate_int_or_auto, NULL, 0},
    [KNN_HP_FAISS_INDEX_PQ_M] = {"faiss_index_pq_m", 0, NULL, s_validate_pq_m, NULL, 0},
    [KNN_HP_MINI_BATCH_SIZE] = {"mini_batch_size", 0, "5000", s_validate_int, NULL, 0},
    /* Platform keys (spec §1.3, §8): accepted, kept in the final configuration, otherwise ignored. */
    [KNN_HP_TUNING_OBJECTIVE_METRIC] = {"_tuning_objective_metric", 0, NULL, s_validate_any, NULL, 0},
    [KNN_HP_KVSTORE] = {"_kvstore", 0, NULL, s_validate_any, NULL, 0},
    [KNN_HP_NUM_GPUS] = {"_num_gpus", 0, NULL, s_validate_any, NULL, 0},
    [KNN_HP_NUM_KV_SERVERS] = {"_num_kv_servers", 0, NULL, s_validate_any, NULL, 0},
    [KNN_HP_LOG_LEVEL] = {"_log_level", 0, NULL, s_validate_any, NULL, 0},
    [KNN_HP_EPOCHS] = {"epochs", 0, NULL, s_validate_any, NULL, 0},
};

const char *knn_hyperparams_name(enum knn_hp_id id)
{
    return (unsigned)id < KNN_HP_COUNT ? s_table[id].name : "?";
}

void knn_hyperparams_init(struct knn_hyperparams *hp)
{
    memset(hp, 0, sizeof(*hp));
}

void knn_hyperparams_clean_up(struct knn_hyperparams *hp)
{
    for (size_t i = 0; i < KNN_HP_COUNT; i++)
        knn_free(hp->values[i]);
    memset(hp, 0, sizeof(*hp));
}

/* Separate violations with "; ". */
static int s_violation(struct knn_buf *errs, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int s_violation(struct knn_buf *errs, const char *fmt, ...)
{
    char line[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    int rc = knn_buf_printf(errs, "%s%s", errs->len ? "; " : "", line);
    return rc < 0 ? rc : 1;
}

/* The value as the user wrote it, for messages: strings in quotes, anything else as JSON. */
static void s_repr(const json_t *value, char *out, size_t size)
{
    if (json_is_string(value)) {
        snprintf(out, size, "'%.200s'", json_string_value(value));
        return;
    }
    char *text = json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT);
    snprintf(out, size, "%.200s", text ? text : "?");
    free(text); /* jansson's allocator */
}

/* ^([1-9][0-9]*)$ into a uint64; 0 = no match, -1 = matches but overflows. */
static int s_parse_positive(const char *s, uint64_t *out)
{
    if (s[0] < '1' || s[0] > '9')
        return 0;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return 0;
        unsigned digit = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - digit) / 10)
            return -1;
        v = v * 10 + digit;
    }
    *out = v;
    return 1;
}

static int s_take_text(char **text, const char *s)
{
    *text = knn_strdup(s);
    return *text ? 0 : KNN_ENOMEM;
}

/* A positive integer given as a JSON integer or a pattern-matching string; 1 = not one. */
static int s_positive_integer(const json_t *value, uint64_t *number, int *overflow)
{
    *overflow = 0;
    if (json_is_integer(value)) {
        json_int_t v = json_integer_value(value);
        if (v < 1)
            return 1;
        *number = (uint64_t)v;
        return 0;
    }
    if (json_is_string(value)) {
        int m = s_parse_positive(json_string_value(value), number);
        if (m < 0)
            *overflow = 1;
        return m == 1 ? 0 : 1;
    }
    return 1;
}

static int s_validate_int(const struct s_row *row, const json_t *value, char **text, uint64_t *number,
                          struct knn_buf *errs)
{
    char repr[256];
    int overflow;
    if (s_positive_integer(value, number, &overflow) != 0) {
        s_repr(value, repr, sizeof(repr));
        if (overflow)
            return s_violation(errs, "%s: %s is too large", row->name, repr);
        return s_violation(errs, "%s: %s is not valid, expected %s", row->name, repr, S_INT_RULE);
    }
    if (row->max && *number > row->max) {
        s_repr(value, repr, sizeof(repr));
        return s_violation(errs, "%s: %s is out of range, expected an integer from 1 to %" PRIu64, row->name, repr,
                           row->max);
    }
    char buf[32];
    snprintf(buf, sizeof(buf), "%" PRIu64, *number);
    return s_take_text(text, buf);
}

static int s_validate_enum(const struct s_row *row, const json_t *value, char **text, uint64_t *number,
                           struct knn_buf *errs)
{
    if (json_is_string(value)) {
        for (const char *const *c = row->choices; *c; c++) {
            if (strcmp(*c, json_string_value(value)) == 0)
                return s_take_text(text, *c);
        }
    }
    char repr[256], list[256] = "";
    size_t used = 0;
    s_repr(value, repr, sizeof(repr));
    for (const char *const *c = row->choices; *c; c++) {
        int n = snprintf(list + used, sizeof(list) - used, "%s'%s'", used ? ", " : "", *c);
        if (n < 0 || (size_t)n >= sizeof(list) - used)
            break;
        used += (size_t)n;
    }
    return s_violation(errs, "%s: %s is not valid, expected one of %s (case-sensitive)", row->name, repr, list);
}

static int s_validate_int_or_auto(const struct s_row *row, const json_t *value, char **text, uint64_t *number,
                                  struct knn_buf *errs)
{
    if (json_is_string(value) && strcmp(json_string_value(value), "auto") == 0) {
        *number = 0;
        return s_take_text(text, "auto");
    }
    char repr[256];
    int overflow;
    if (s_positive_integer(value, number, &overflow) != 0) {
        s_repr(value, repr, sizeof(repr));
        return s_violation(errs, "%s: %s is not valid, expected 'auto' or %s", row->name, repr, S_INT_RULE);
    }
    char buf[32];
    snprintf(buf, sizeof(buf), "%" PRIu64, *number);
    return s_take_text(text, buf);
}

static int s_validate_pq_m(const struct s_row *row, const json_t *value, char **text, uint64_t *number,
                           struct knn_buf *errs)
{
    char repr[256];
    int overflow;
    if (s_positive_integer(value, number, &overflow) == 0) {
        for (size_t i = 0; i < sizeof(s_pq_m_allowed) / sizeof(s_pq_m_allowed[0]); i++) {
            if (*number == s_pq_m_allowed[i]) {
                char buf[32];
                snprintf(buf, sizeof(buf), "%" PRIu64, *number);
                return s_take_text(text, buf);
            }
        }
    }
    s_repr(value, repr, sizeof(repr));
    return s_violation(errs, "%s: %s is not valid, expected one of 1, 2, 3, 4, 8, 12, 16, 20, 24, 28, 32, 40, 48, "
                             "56, 64, 96", row->name, repr);
}

static int s_validate_any(const struct s_row *row, const json_t *value, char **text, uint64_t *number,
                          struct knn_buf *errs)
{
    if (json_is_string(value))
        return s_take_text(text, json_string_value(value));
    char *dumped = json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!dumped)
        return knn_error_set(KNN_ENOMEM, "hyperparameter %s: out of memory", row->name);
    int rc = s_take_text(text, dumped);
    free(dumped); /* jansson's allocator */
    return rc;
}

uint64_t knn_hyperparams_auto_pq_m(uint64_t dim)
{
    uint64_t m = 1;
    for (size_t i = 0; i < sizeof(s_pq_m_allowed) / sizeof(s_pq_m_allowed[0]); i++) {
        if (s_pq_m_allowed[i] <= dim / 4)
            m = s_pq_m_allowed[i];
    }
    return m;
}

static int s_find_row(const char *name)
{
    for (int i = 0; i < KNN_HP_COUNT; i++) {
        if (strcmp(s_table[i].name, name) == 0)
            return i;
    }
    return -1;
}

/* The cross-parameter rules of spec §1.4, checked only between values that are valid on their own. */
static int s_check_rules(const struct knn_hyperparams *hp, const int *ok, const int *given, struct knn_buf *errs)
{
    int rc = 0, r;
    int reduction = ok[KNN_HP_DIMENSION_REDUCTION_TYPE] && strcmp(hp->dimension_reduction_type, "none") != 0;
    int type_given = given[KNN_HP_DIMENSION_REDUCTION_TYPE];

    if (reduction && !given[KNN_HP_DIMENSION_REDUCTION_TARGET]) {
        if ((r = s_violation(errs, "dimension_reduction_target is required when dimension_reduction_type is set")) < 0)
            return r;
        rc = 1;
    }
    if (given[KNN_HP_DIMENSION_REDUCTION_TARGET] && type_given && ok[KNN_HP_DIMENSION_REDUCTION_TYPE] && !reduction) {
        if ((r = s_violation(errs, "dimension_reduction_target should only be set when dimension_reduction_type is "
                                   "'sign' or 'fjlt'")) < 0)
            return r;
        rc = 1;
    } else if (given[KNN_HP_DIMENSION_REDUCTION_TARGET] && !type_given) {
        if ((r = s_violation(errs, "dimension_reduction_target should only be set when dimension_reduction_type is "
                                   "set")) < 0)
            return r;
        rc = 1;
    }
    if (reduction && ok[KNN_HP_DIMENSION_REDUCTION_TARGET] && ok[KNN_HP_FEATURE_DIM] &&
        hp->dimension_reduction_target >= hp->feature_dim) {
        if ((r = s_violation(errs,
                             "dimension_reduction_target (%" PRIu64 ") must be less than feature_dim (%" PRIu64 ")",
                             hp->dimension_reduction_target, hp->feature_dim)) < 0)
            return r;
        rc = 1;
    }
    int ivfpq = ok[KNN_HP_INDEX_TYPE] && strcmp(hp->index_type, "faiss.IVFPQ") == 0;
    if (ivfpq && ok[KNN_HP_INDEX_METRIC] && strcmp(hp->index_metric, "L2") != 0) {
        if ((r = s_violation(errs, "index_metric '%s' is not supported with index_type 'faiss.IVFPQ' (use 'L2')",
                             hp->index_metric)) < 0)
            return r;
        rc = 1;
    }
    if (given[KNN_HP_FAISS_INDEX_PQ_M] && ok[KNN_HP_INDEX_TYPE] && !ivfpq) {
        if ((r = s_violation(errs, "faiss_index_pq_m should only be set when index_type is 'faiss.IVFPQ'")) < 0)
            return r;
        rc = 1;
    }
    return rc;
}

int knn_hyperparams_parse(struct knn_hyperparams *hp, const json_t *given_obj)
{
    struct knn_buf errs = KNN_BUF_INIT(64 * 1024), missing = KNN_BUF_INIT(4096), unknown = KNN_BUF_INIT(16 * 1024);
    int given[KNN_HP_COUNT] = {0}, ok[KNN_HP_COUNT] = {0};
    uint64_t numbers[KNN_HP_COUNT] = {0};
    int rc = 0, bad = 0;

    knn_hyperparams_clean_up(hp);
    if (given_obj && !json_is_object(given_obj)) {
        rc = knn_error_set(KNN_ECONFIG, "hyperparameters must be a JSON object of strings");
        goto on_error;
    }

    /* Unknown keys, in the order given. */
    const char *key;
    json_t *value;
    if (given_obj) {
        json_object_foreach((json_t *)given_obj, key, value) {
            int i = s_find_row(key);
            if (i >= 0) {
                given[i] = 1;
                continue;
            }
            if ((rc = knn_buf_printf(&unknown, "%s'%.100s'", unknown.len ? ", " : "", key)) < 0)
                goto on_error;
        }
    }
    for (int i = 0; i < KNN_HP_COUNT; i++) {
        if (s_table[i].required && !given[i] && (rc = knn_buf_printf(&missing, "%s'%s'", missing.len ? ", " : "",
                                                                        s_table[i].name)) < 0)
            goto on_error;
    }
    if (missing.len) {
        if ((rc = s_violation(&errs, "No value(s) were specified for %s which are required hyperparameter(s)",
                              (char *)missing.data)) < 0)
            goto on_error;
        bad = 1;
    }
    if (unknown.len) {
        if ((rc = s_violation(&errs, "Additional hyperparameters are not allowed (%s %s unexpected)",
                              (char *)unknown.data, strchr((char *)unknown.data, ',') ? "were" : "was")) < 0)
            goto on_error;
        bad = 1;
    }

    /* Each known key on its own, in table order; defaults for the rest. */
    for (int i = 0; i < KNN_HP_COUNT; i++) {
        const struct s_row *row = &s_table[i];
        if (given[i]) {
            rc = row->validate(row, json_object_get(given_obj, row->name), &hp->values[i], &numbers[i], &errs);
            if (rc < 0)
                goto on_error;
            ok[i] = rc == 0;
            bad |= rc;
            rc = 0;
        } else if (row->default_value) {
            json_t *def = json_string(row->default_value);
            if (!def) {
                rc = knn_error_set(KNN_ENOMEM, "out of memory");
                goto on_error;
            }
            rc = row->validate(row, def, &hp->values[i], &numbers[i], &errs);
            json_decref(def);
            if (rc != 0) {
                rc = rc < 0 ? rc : knn_error_set(KNN_EINTERNAL, "default of %s does not validate", row->name);
                goto on_error;
            }
            ok[i] = 1;
        }
    }

    hp->feature_dim = numbers[KNN_HP_FEATURE_DIM];
    hp->k = numbers[KNN_HP_K];
    hp->sample_size = numbers[KNN_HP_SAMPLE_SIZE];
    hp->mini_batch_size = numbers[KNN_HP_MINI_BATCH_SIZE];
    hp->predictor_type = ok[KNN_HP_PREDICTOR_TYPE] ? hp->values[KNN_HP_PREDICTOR_TYPE] : NULL;
    hp->dimension_reduction_type = ok[KNN_HP_DIMENSION_REDUCTION_TYPE] ? hp->values[KNN_HP_DIMENSION_REDUCTION_TYPE]
                                                                       : "none";
    hp->dimension_reduction_target = numbers[KNN_HP_DIMENSION_REDUCTION_TARGET];
    hp->index_type = hp->values[KNN_HP_INDEX_TYPE];
    hp->index_metric = hp->values[KNN_HP_INDEX_METRIC];
    hp->ivf_nlists = numbers[KNN_HP_FAISS_INDEX_IVF_NLISTS];
    hp->pq_m = numbers[KNN_HP_FAISS_INDEX_PQ_M];

    /* Cross rules see only values that validated (ok[]); a default counts as valid. */
    if (ok[KNN_HP_DIMENSION_REDUCTION_TYPE] == 0 && !given[KNN_HP_DIMENSION_REDUCTION_TYPE])
        ok[KNN_HP_DIMENSION_REDUCTION_TYPE] = 1; /* absent: "none" */
    if ((rc = s_check_rules(hp, ok, given, &errs)) < 0)
        goto on_error;
    bad |= rc;
    rc = 0;
    if (strcmp(hp->dimension_reduction_type, "none") == 0)
        hp->dimension_reduction_target = 0;
    if (!bad && strcmp(hp->index_type, "faiss.IVFPQ") == 0 && !given[KNN_HP_FAISS_INDEX_PQ_M])
        hp->pq_m = knn_hyperparams_auto_pq_m(hp->dimension_reduction_target ? hp->dimension_reduction_target
                                                                            : hp->feature_dim);

    if (bad) {
        rc = knn_error_set(KNN_ECONFIG, "Hyperparameter validation failed: %s", (char *)errs.data);
        goto on_error;
    }
    knn_buf_clean_up(&errs);
    knn_buf_clean_up(&missing);
    knn_buf_clean_up(&unknown);
    return 0;

on_error:
    knn_buf_clean_up(&errs);
    knn_buf_clean_up(&missing);
    knn_buf_clean_up(&unknown);
    knn_hyperparams_clean_up(hp);
    return rc;
}

int knn_hyperparams_format(const struct knn_hyperparams *hp, int defaults_only, struct knn_buf *out)
{
    int rc, first = 1;
    if ((rc = knn_buf_append_str(out, "{")) < 0)
        return rc;
    for (int i = 0; i < KNN_HP_COUNT; i++) {
        const char *v = defaults_only ? s_table[i].default_value : hp->values[i];
        if (!v)
            continue;
        if ((rc = knn_buf_printf(out, "%s'%s': '%s'", first ? "" : ", ", s_table[i].name, v)) < 0)
            return rc;
        first = 0;
    }
    return knn_buf_append_str(out, "}");
}

json_t *knn_hyperparams_to_json(const struct knn_hyperparams *hp)
{
    json_t *obj = json_object();
    if (!obj)
        return NULL;
    for (int i = 0; i < KNN_HP_COUNT; i++) {
        if (hp->values[i] && json_object_set_new(obj, s_table[i].name, json_string(hp->values[i])) != 0) {
            json_decref(obj);
            return NULL;
        }
    }
    return obj;
}
