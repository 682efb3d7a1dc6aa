/* Unit tests of the endpoint's pieces that need no model: MIME parsing (spec §3.4), request
 * decoding (§3.2) and response encoding (§3.3). */
#include "knn_test.h"

#include "infer/infer_request.h"
#include "infer/infer_response.h"
#include "infer/mime.h"

#include "knn/common/alloc.h"
#include "knn/common/buf.h"
#include "knn/common/error.h"

#include <stdlib.h>

/* ---- MIME ---- */

int test_mime_parse(void)
{
    struct knn_mime m;
    ASSERT_OK(knn_mime_parse(&m, "text/csv"));
    ASSERT_INT_EQ(KNN_MEDIA_CSV, m.media);
    ASSERT_INT_EQ(-1, m.label_size);
    ASSERT_INT_EQ(0, m.verbose);
    ASSERT_OK(knn_mime_parse(&m, "TEXT/CSV ; Label_Size=1; charset=UTF-8"));
    ASSERT_INT_EQ(KNN_MEDIA_CSV, m.media);
    ASSERT_INT_EQ(1, m.label_size);
    ASSERT_OK(knn_mime_parse(&m, "application/jsonlines; verbose=True"));
    ASSERT_INT_EQ(KNN_MEDIA_JSONLINES, m.media);
    ASSERT_INT_EQ(1, m.verbose);
    ASSERT_OK(knn_mime_parse(&m, "application/json;verbose=\"false\""));
    ASSERT_INT_EQ(KNN_MEDIA_JSON, m.media);
    ASSERT_INT_EQ(0, m.verbose);
    ASSERT_OK(knn_mime_parse(&m, "application/x-recordio-protobuf; verbose=TRUE; q=0.5"));
    ASSERT_INT_EQ(KNN_MEDIA_RECORDIO_PB, m.media);
    ASSERT_INT_EQ(1, m.verbose);
    ASSERT_OK(knn_mime_parse(&m, "image/png"));
    ASSERT_INT_EQ(KNN_MEDIA_UNKNOWN, m.media);
    ASSERT_OK(knn_mime_parse(&m, NULL));
    ASSERT_INT_EQ(KNN_MEDIA_NONE, m.media);
    ASSERT_OK(knn_mime_parse(&m, "  "));
    ASSERT_INT_EQ(KNN_MEDIA_NONE, m.media);
    ASSERT_ERR(KNN_EFORMAT, knn_mime_parse(&m, "application/json; verbose=maybe"));
    ASSERT_CONTAINS(knn_error_message(), "verbose");
    ASSERT_ERR(KNN_EFORMAT, knn_mime_parse(&m, "text/csv; label_size=-1"));
    ASSERT_ERR(KNN_EFORMAT, knn_mime_parse(&m, "text/csv; label_size"));
    ASSERT_ERR(KNN_EFORMAT, knn_mime_parse(&m, "csv"));
    ASSERT_ERR(KNN_EUNSUPPORTED, knn_mime_parse(&m, "text/csv; charset=latin-1"));
    return 0;
}

int test_mime_negotiate(void)
{
    struct knn_mime json = {KNN_MEDIA_JSON, 0, -1}, m;
    ASSERT_OK(knn_mime_negotiate(&m, NULL, &json));
    ASSERT_INT_EQ(KNN_MEDIA_JSON, m.media);
    ASSERT_OK(knn_mime_negotiate(&m, "*/*", &json));
    ASSERT_INT_EQ(KNN_MEDIA_JSON, m.media);
    struct knn_mime jl = {KNN_MEDIA_JSONLINES, 1, -1};
    ASSERT_OK(knn_mime_negotiate(&m, "", &jl));
    ASSERT_INT_EQ(KNN_MEDIA_JSONLINES, m.media);
    ASSERT_INT_EQ(1, m.verbose);
    ASSERT_OK(knn_mime_negotiate(&m, "text/html, application/jsonlines; verbose=true", &json));
    ASSERT_INT_EQ(KNN_MEDIA_JSONLINES, m.media);
    ASSERT_INT_EQ(1, m.verbose);
    ASSERT_OK(knn_mime_negotiate(&m, "application/x-recordio-protobuf", &json));
    ASSERT_INT_EQ(KNN_MEDIA_RECORDIO_PB, m.media);
    ASSERT_ERR(KNN_EUNSUPPORTED, knn_mime_negotiate(&m, "text/csv", &json));
    ASSERT_CONTAINS(knn_error_message(), "text/csv");
    ASSERT_ERR(KNN_EUNSUPPORTED, knn_mime_negotiate(&m, "image/png, text/html", &json));
    ASSERT_ERR(KNN_EFORMAT, knn_mime_negotiate(&m, "application/json; verbose=2", &json));
    return 0;
}

/* ---- request decoding ---- */

static int s_decode(struct knn_infer_rows *rows, const char *ct, const char *body)
{
    struct knn_mime m;
    int rc = knn_mime_parse(&m, ct);
    return rc ? rc : knn_infer_decode(rows, &m, (const uint8_t *)body, strlen(body));
}

int test_decode_csv(void)
{
    struct knn_infer_rows rows;
    knn_infer_rows_init(&rows, 3, 100);
    ASSERT_OK(s_decode(&rows, "text/csv", "1,2,3\n4.5, -5e-1 ,6\r\n\n7,8,9"));
    ASSERT_UINT_EQ(3, rows.n);
    float want[] = {1, 2, 3, 4.5f, -0.5f, 6, 7, 8, 9};
    ASSERT_MEM_EQ(want, sizeof(want), rows.x, rows.n * 3 * sizeof(float));
    knn_infer_rows_reset(&rows);
    ASSERT_OK(s_decode(&rows, "text/csv;label_size=1", "0,1,2,3\n1,4,5,6\n"));
    ASSERT_UINT_EQ(2, rows.n);
    float want2[] = {1, 2, 3, 4, 5, 6};
    ASSERT_MEM_EQ(want2, sizeof(want2), rows.x, sizeof(want2));

    knn_infer_rows_reset(&rows);
    ASSERT_ERR(KNN_EMISMATCH, s_decode(&rows, "text/csv", "1,2,3\n1,2\n"));
    ASSERT_CONTAINS(knn_error_message(), "row 2");
    ASSERT_UINT_EQ(0, rows.n);
    ASSERT_ERR(KNN_EMISMATCH, s_decode(&rows, "text/csv", "1,2,3,4\n"));
    ASSERT_ERR(KNN_EFORMAT, s_decode(&rows, "text/csv", "1,x,3\n"));
    ASSERT_CONTAINS(knn_error_message(), "'x'");
    ASSERT_ERR(KNN_EFORMAT, s_decode(&rows, "text/csv", "1,,3\n"));
    ASSERT_ERR(KNN_ERANGE, s_decode(&rows, "text/csv", "1,nan,3\n"));
    ASSERT_ERR(KNN_ERANGE, s_decode(&rows, "text/csv", "1,inf,3\n"));
    ASSERT_ERR(KNN_ERANGE, s_decode(&rows, "text/csv", "1,1e39,3\n"));
    ASSERT_OK(s_decode(&rows, "text/csv", ""));
    ASSERT_UINT_EQ(0, rows.n);
    knn_infer_rows_clean_up(&rows);
    return 0;
}

int test_decode_json(void)
{
    struct knn_infer_rows rows;
    knn_infer_rows_init(&rows, 4, 100);
    /* The example of spec §3.2, with integers. */
    ASSERT_OK(s_decode(&rows, "application/json",
                       "{\"instances\": [{\"data\": {\"features\": {\"values\": [-3, -1, -4, 2]}}},"
                       " {\"features\": [3.0, 0.1, 0.04, 0.002], \"configuration\": {}},"
                       " {\"data\": {\"features\": {\"keys\": [3, 1], \"shape\": [4], \"values\": [7, 0.5]}}}]}"));
    ASSERT_UINT_EQ(3, rows.n);
    float want[] = {-3, -1, -4, 2, 3.0f, 0.1f, 0.04f, 0.002f, 0, 0.5f, 0, 7};
    ASSERT_MEM_EQ(want, sizeof(want), rows.x, sizeof(want));

    knn_infer_rows_reset(&rows);
    ASSERT_ERR(KNN_EFORMAT, s_decode(&rows, "application/json", "{\"instances\": [{\"features\": [1, 2"));
    ASSERT_CONTAINS(knn_error_message(), "JSON body");
    ASSERT_ERR(KNN_EMISMATCH, s_decode(&rows, "application/json",
                                       "{\"instances\": [{\"features\": [1,2,3,4]}, {\"features\": [1,2,3]}]}"));
    ASSERT_CONTAINS(knn_error_message(), "row 2");
    ASSERT_UINT_EQ(0, rows.n);
    ASSERT_ERR(KNN_EFORMAT, s_decode(&rows, "application/json", "{\"instances\": [{\"features\": [1,\"2\",3,4]}]}"));
    ASSERT_ERR(KNN_EFORMAT, s_decode(&rows, "application/json", "[1,2,3,4]"));
    ASSERT_ERR(KNN_EFORMAT, s_decode(&rows, "application/json", "{\"instances\": [{\"feature\": [1,2,3,4]}]}"));
    ASSERT_ERR(KNN_EFORMAT, s_decode(&rows, "application/json", "{\"instances\": [{\"features\": [NaN,2,3,4]}]}"));
    ASSERT_ERR(KNN_ERANGE, s_decode(&rows, "application/json", "{\"instances\": [{\"features\": [1e39,2,3,4]}]}"));
    ASSERT_ERR(KNN_ERANGE, s_decode(&rows, "application/json",
                                    "{\"instances\": [{\"data\": {\"features\": {\"keys\": [4], \"shape\": [4], "
                                    "\"values\": [1]}}}]}"));
    ASSERT_ERR(KNN_EMISMATCH, s_decode(&rows, "application/json",
                                       "{\"instances\": [{\"data\": {\"features\": {\"keys\": [0], \"shape\": [5], "
                                       "\"values\": [1]}}}]}"));
    ASSERT_ERR(KNN_EFORMAT, s_decode(&rows, "application/json",
                                     "{\"instances\": [{\"data\": {\"features\": {\"keys\": [0, 1], \"shape\": [4], "
                                     "\"values\": [1]}}}]}"));
    ASSERT_ERR(KNN_EFORMAT, s_decode(&rows, "application/json", ""));
    ASSERT_OK(s_decode(&rows, "application/json", "{\"instances\": []}"));
    ASSERT_UINT_EQ(0, rows.n);
    knn_infer_rows_clean_up(&rows);
    return 0;
}

int test_decode_jsonlines(void)
{
    struct knn_infer_rows rows;
    knn_infer_rows_init(&rows, 4, 100);
    ASSERT_OK(s_decode(&rows, "application/jsonlines",
                       "{\"features\": [1.5, 16.0, 14.0, 23.0]}\n"
                       "{\"data\": {\"features\": {\"values\": [1.5, 16.0, 14.0, 23.0]}}}\r\n\n"));
    ASSERT_UINT_EQ(2, rows.n);
    float want[] = {1.5f, 16, 14, 23, 1.5f, 16, 14, 23};
    ASSERT_MEM_EQ(want, sizeof(want), rows.x, sizeof(want));
    ASSERT_ERR(KNN_EFORMAT, s_decode(&rows, "application/jsonlines", "{\"features\": [1,2,3,4]}\n{\"features\": [1,2"));
    ASSERT_CONTAINS(knn_error_message(), "line 2");
    ASSERT_UINT_EQ(2, rows.n); /* unchanged on failure */
    knn_infer_rows_clean_up(&rows);
    return 0;
}

int test_decode_row_cap(void)
{
    struct knn_infer_rows rows;
    knn_infer_rows_init(&rows, 1, 2);
    ASSERT_ERR(KNN_ETOOBIG, s_decode(&rows, "text/csv", "1\n2\n3\n"));
    ASSERT_ERR(KNN_EUNSUPPORTED, s_decode(&rows, "image/png", "1\n"));
    knn_infer_rows_clean_up(&rows);
    return 0;
}

/* ---- response encoding ---- */

int test_format_float(void)
{
    /* Expected strings: Python's repr() of the float32 value's shortest decimal digits (numpy 1.24
     * np.float32 repr digits, laid out by Python's float repr rules). */
    static const struct {
        float v;
        const char *want;
    } cases[] = {
        {0.1f, "0.1"},
        {2.0f, "2.0"},
        {0.0f, "0.0"},
        {-0.0f, "-0.0"},
        {1e-5f, "1e-05"},
        {1.5e-4f, "0.00015"},
        {1e-4f, "0.0001"},
        {3.11792408f, "3.117924"},
        {123456789.0f, "123456790.0"},
        {1e16f, "1e+16"},
        {1e15f, "1000000000000000.0"},
        {1.17549435e-38f, "1.1754944e-38"},
        {3.4028235e38f, "3.4028235e+38"},
        {-7.25f, "-7.25"},
        {16777217.0f, "16777216.0"},
        {1e-45f, "1e-45"},
        {100.0f, "100.0"},
    };
    char buf[48];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        knn_infer_format_float(buf, sizeof(buf), cases[i].v);
        ASSERT_STR_EQ(cases[i].want, buf);
    }
    /* Every output reads back as the same float32. */
    uint32_t state = 12345;
    for (int i = 0; i < 100000; i++) {
        state = state * 1664525u + 1013904223u;
        float v;
        uint32_t bits = state;
        memcpy(&v, &bits, sizeof(v));
        if (!isfinite(v))
            continue;
        knn_infer_format_float(buf, sizeof(buf), v);
        float back = strtof(buf, NULL);
        if (memcmp(&back, &v, sizeof(v)) != 0)
            FAIL("%.9g printed as %s reads back as %.9g", v, buf, back);
        /* As short as the shortest %.Ng that reads back (a plain search from 1 digit). */
        int shortest = 9;
        for (int prec = 1; prec <= 9; prec++) {
            char g[48];
            snprintf(g, sizeof(g), "%.*g", prec, (double)v);
            if (strtof(g, NULL) == v) {
                shortest = prec;
                break;
            }
        }
        /* significant digits of ours: the mantissa's digits without leading and trailing zeros */
        char mant[48];
        size_t nm = 0;
        for (const char *c = buf; *c && *c != 'e'; c++) {
            if (*c >= '0' && *c <= '9' && (nm || *c != '0'))
                mant[nm++] = *c;
        }
        while (nm > 1 && mant[nm - 1] == '0')
            nm--;
        int digits = (int)nm;
        if (digits > shortest)
            FAIL("%.9g printed as %s: %d digits, but %d are enough", v, buf, digits, shortest);
    }
    return 0;
}

int test_encode_shapes(void)
{
    float predicted[] = {0.0f, 2.0f};
    float labels[] = {0.0f, 1.0f, 0.0f, 2.0f, 2.0f, 0.0f};
    float distances[] = {3.11792408f, 3.89746071f, 6.32548437f, 1.08470316f, 3.04917915f, 5.25393973f};
    struct knn_predictions p = {2, 3, predicted, labels, distances, NULL};
    struct knn_buf out = KNN_BUF_INIT(1 << 20);
    struct knn_mime json = {KNN_MEDIA_JSON, 0, -1}, jl = {KNN_MEDIA_JSONLINES, 0, -1};

    ASSERT_OK(knn_infer_encode(&out, &json, &p, 0, 2));
    ASSERT_STR_EQ("{\"predictions\": [{\"predicted_label\": 0.0}, {\"predicted_label\": 2.0}]}", (char *)out.data);
    knn_buf_reset(&out);
    ASSERT_OK(knn_infer_encode(&out, &jl, &p, 0, 2));
    ASSERT_STR_EQ("{\"predicted_label\": 0.0}\n{\"predicted_label\": 2.0}\n", (char *)out.data);
    knn_buf_reset(&out);
    json.verbose = 1;
    ASSERT_OK(knn_infer_encode(&out, &json, &p, 0, 2));
    ASSERT_STR_EQ("{\"predictions\": [{\"predicted_label\": 0.0, \"distances\": [3.117924, 3.8974607, 6.3254843], "
                  "\"labels\": [0.0, 1.0, 0.0]}, {\"predicted_label\": 2.0, \"distances\": [1.0847032, 3.049179, "
                  "5.2539396], \"labels\": [2.0, 2.0, 0.0]}]}",
                  (char *)out.data);
    knn_buf_reset(&out);
    jl.verbose = 1;
    ASSERT_OK(knn_infer_encode(&out, &jl, &p, 1, 1));
    ASSERT_STR_EQ("{\"predicted_label\": 2.0, \"distances\": [1.0847032, 3.049179, 5.2539396], \"labels\": [2.0, "
                  "2.0, 0.0]}\n",
                  (char *)out.data);
    struct knn_mime csv = {KNN_MEDIA_CSV, 0, -1};
    ASSERT_ERR(KNN_EUNSUPPORTED, knn_infer_encode(&out, &csv, &p, 0, 2));

    /* Neighbours an IVF search could not fill (label NaN) are left out; none found: null. */
    float predicted2[] = {1.0f, NAN};
    float labels2[] = {1.0f, NAN, NAN, NAN, NAN, NAN};
    float distances2[] = {0.5f, INFINITY, INFINITY, INFINITY, INFINITY, INFINITY};
    struct knn_predictions p2 = {2, 3, predicted2, labels2, distances2, NULL};
    knn_buf_reset(&out);
    ASSERT_OK(knn_infer_encode(&out, &jl, &p2, 0, 2));
    ASSERT_STR_EQ("{\"predicted_label\": 1.0, \"distances\": [0.5], \"labels\": [1.0]}\n"
                  "{\"predicted_label\": null, \"distances\": [], \"labels\": []}\n",
                  (char *)out.data);
    knn_buf_clean_up(&out);
    return 0;
}
