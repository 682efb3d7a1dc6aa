/* S3's XML with libxml2's SAX push parser: element-path callbacks, no DTD, predefined entities only. */
#include "curl_init.h"
#include "knn/common/buf.h"
#include "knn/common/error.h"
#include "s3_impl.h"

#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <string.h>

#define S_MAX_PATH 1024
#define S_MAX_TEXT (64 * 1024)
#define S_MAX_DEPTH 32

struct s_state {
    xmlParserCtxtPtr ctxt;
    knn_s3__xml_fn *fn;
    void *user;
    char path[S_MAX_PATH + 1];
    size_t path_len;
    size_t starts[S_MAX_DEPTH]; /* path length before each open element */
    int depth;
    struct knn_buf text;
    const char *root; /* the document element the caller expects, or NULL */
    int rc;
};

static void s_stop(struct s_state *st, int rc)
{
    if (!st->rc)
        st->rc = rc;
    xmlStopParser(st->ctxt);
}

static void s_start(
    void *ctx, const xmlChar *localname, const xmlChar *prefix, const xmlChar *uri, int nb_namespaces,
    const xmlChar **namespaces, int nb_attributes, int nb_defaulted, const xmlChar **attributes)
{
    struct s_state *st = ctx;
    if (st->rc)
        return;
    size_t n = strlen((const char *)localname);
    if (st->depth >= S_MAX_DEPTH) {
        s_stop(st, knn_error_set(KNN_EFORMAT, "XML nested deeper than %d elements", S_MAX_DEPTH));
        return;
    }
    if (st->path_len + 1 + n > S_MAX_PATH) {
        s_stop(st, knn_error_set(KNN_EFORMAT, "XML element path longer than %d bytes", S_MAX_PATH));
        return;
    }
    if (st->depth == 0 && st->root && strcmp((const char *)localname, st->root) != 0) {
        s_stop(st, knn_error_set(KNN_EFORMAT, "the answer is a <%.64s> document, not the expected <%s>",
                                 (const char *)localname, st->root));
        return;
    }
    st->starts[st->depth++] = st->path_len;
    if (st->path_len)
        st->path[st->path_len++] = '/';
    memcpy(st->path + st->path_len, localname, n);
    st->path_len += n;
    st->path[st->path_len] = '\0';
    knn_buf_reset(&st->text);
}

static void s_end(void *ctx, const xmlChar *localname, const xmlChar *prefix, const xmlChar *uri)
{
    struct s_state *st = ctx;
    if (st->rc || st->depth == 0)
        return;
    const char *text = st->text.data ? (const char *)st->text.data : "";
    int rc = st->fn(st->user, st->path, text, st->text.len);
    knn_buf_reset(&st->text);
    st->path_len = st->starts[--st->depth];
    st->path[st->path_len] = '\0';
    if (rc)
        s_stop(st, rc);
}

static void s_chars(void *ctx, const xmlChar *ch, int len)
{
    struct s_state *st = ctx;
    if (st->rc)
        return;
    int rc = knn_buf_append(&st->text, ch, (size_t)len);
    if (rc)
        s_stop(st, knn_error_wrap(rc, "XML text of <%s>", st->path));
}

static xmlEntityPtr s_get_entity(void *ctx, const xmlChar *name)
{
    return xmlGetPredefinedEntity(name);
}

static void s_internal_subset(void *ctx, const xmlChar *name, const xmlChar *external_id, const xmlChar *system_id)
{
    struct s_state *st = ctx;
    s_stop(st, knn_error_set(KNN_EFORMAT, "XML with a DOCTYPE is not accepted"));
}

static void s_entity_decl(
    void *ctx, const xmlChar *name, int type, const xmlChar *public_id, const xmlChar *system_id, xmlChar *content)
{
    struct s_state *st = ctx;
    s_stop(st, knn_error_set(KNN_EFORMAT, "XML entity declarations are not accepted"));
}

int knn__s3_xml_parse(const uint8_t *data, size_t len, knn_s3__xml_fn *fn, void *user)
{
    return knn__s3_xml_parse_root(data, len, NULL, fn, user);
}

int knn__s3_xml_parse_root(const uint8_t *data, size_t len, const char *root, knn_s3__xml_fn *fn, void *user)
{
    int rc = knn__s3_curl_global_init();
    if (rc)
        return rc;
    if (len > INT32_MAX)
        return knn_error_set(KNN_ETOOBIG, "XML document of %zu bytes", len);
    xmlSAXHandler sax;
    memset(&sax, 0, sizeof(sax));
    sax.initialized = XML_SAX2_MAGIC;
    sax.startElementNs = s_start;
    sax.endElementNs = s_end;
    sax.characters = s_chars;
    sax.cdataBlock = s_chars;
    sax.getEntity = s_get_entity;
    sax.internalSubset = s_internal_subset;
    sax.entityDecl = s_entity_decl;

    struct s_state st;
    memset(&st, 0, sizeof(st));
    st.fn = fn;
    st.user = user;
    st.root = root;
    knn_buf_init(&st.text, S_MAX_TEXT);
    st.ctxt = xmlCreatePushParserCtxt(&sax, &st, NULL, 0, NULL);
    if (!st.ctxt) {
        knn_buf_clean_up(&st.text);
        return knn_error_set(KNN_ENOMEM, "xmlCreatePushParserCtxt failed");
    }
    /* No network, no entity substitution, no DTD loading; errors are ours to report, not stderr's. */
    xmlCtxtUseOptions(st.ctxt, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    int perr = xmlParseChunk(st.ctxt, (const char *)data, (int)len, 1);
    if (!st.rc && (perr != 0 || !st.ctxt->wellFormed)) {
        const xmlError *e = xmlCtxtGetLastError(st.ctxt);
        if (e && e->message) {
            size_t ml = strlen(e->message);
            while (ml && (e->message[ml - 1] == '\n' || e->message[ml - 1] == ' '))
                ml--;
            st.rc = knn_error_set(
                KNN_EFORMAT, "malformed XML at line %d column %d: %.*s", e->line, e->int2, (int)ml, e->message);
        } else {
            st.rc = knn_error_set(KNN_EFORMAT, "malformed XML (%d bytes)", (int)len);
        }
    }
    if (!st.rc && len == 0)
        st.rc = knn_error_set(KNN_EFORMAT, "empty XML document");
    xmlFreeParserCtxt(st.ctxt);
    knn_buf_clean_up(&st.text);
    return st.rc;
}

struct s_error_state {
    struct knn_s3__error *out;
    int is_error;
};

static void s_copy(char *dst, size_t size, const char *text, size_t len)
{
    /* One line: control characters (newlines in messages) become spaces. */
    size_t n = len < size - 1 ? len : size - 1;
    for (size_t i = 0; i < n; i++)
        dst[i] = ((unsigned char)text[i] < 0x20) ? ' ' : text[i];
    dst[n] = '\0';
}

static int s_error_cb(void *user, const char *path, const char *text, size_t len)
{
    struct s_error_state *st = user;
    if (strcmp(path, "Error") == 0)
        st->is_error = 1;
    else if (strcmp(path, "Error/Code") == 0)
        s_copy(st->out->code, sizeof(st->out->code), text, len);
    else if (strcmp(path, "Error/Message") == 0)
        s_copy(st->out->message, sizeof(st->out->message), text, len);
    else if (strcmp(path, "Error/RequestId") == 0)
        s_copy(st->out->request_id, sizeof(st->out->request_id), text, len);
    return 0;
}

int knn__s3_xml_error(struct knn_s3__error *out, const uint8_t *data, size_t len)
{
    struct s_error_state st = {out, 0};
    memset(out, 0, sizeof(*out));
    if (!data || len == 0)
        return 0;
    if (knn__s3_xml_parse(data, len, s_error_cb, &st) != 0) {
        memset(out, 0, sizeof(*out));
        return 0;
    }
    return st.is_error;
}

int knn__s3_xml_escape(struct knn_buf *out, const char *s)
{
    int rc = 0;
    for (; *s && !rc; s++) {
        switch (*s) {
            case '&':
                rc = knn_buf_append_str(out, "&amp;");
                break;
            case '<':
                rc = knn_buf_append_str(out, "&lt;");
                break;
            case '>':
                rc = knn_buf_append_str(out, "&gt;");
                break;
            case '"':
                rc = knn_buf_append_str(out, "&quot;");
                break;
            case '\'':
                rc = knn_buf_append_str(out, "&apos;");
                break;
            default:
                rc = knn_buf_append(out, s, 1);
                break;
        }
    }
    return rc;
}
