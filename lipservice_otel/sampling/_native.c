/* The compiled twin of the per-record work (sampler.py, text/signature.py): see
 * docs/architecture.md, "The hot path".
 *
 * 1. walk:      the OTLP ExportLogsServiceRequest wire bytes as received, into spans and the
 *               few fields the decision reads. Whatever this walker does not fully understand
 *               (groups, a known field with another wire type, a repeated singular message,
 *               nesting past WALK_MAX_DEPTH, invalid UTF-8 in a string) makes it give the
 *               request up: the Python path parses it with upb and either refuses it with
 *               upb's own message or samples it. So nothing is accepted here that upb refuses.
 * 2. signature: template_of_text for the common body (ASCII, not JSON): quoted strings and
 *               the token rules compiled here (held to signature.py's by differential tests),
 *               masked forms memoised by token or digit shape, the Python masking function
 *               for tokens with quotes inside; other bodies are handed to signature.py whole.
 * 3. sample:    the decision and the splice, in sampler.c below.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define XXH_INLINE_ALL
#include "xxhash.h"

/* ------------------------------------------------------------------------------------------
 * Wire walking
 * ---------------------------------------------------------------------------------------- */

/* upb refuses nesting past 100; a shallower bound here sends deep requests to upb. */
#define WALK_MAX_DEPTH 48

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

typedef struct {
    const uint8_t *p;
    Py_ssize_t n;
} Span;

/* Record flags */
#define REC_UPSTREAM_STAMP 1 /* carries sampling.adjusted_count or one of our own keys */

enum { BODY_NONE = 0, BODY_STRING = 1, BODY_OTHER = 2 };

typedef struct {
    Span contents;    /* the LogRecord message */
    uint64_t time;
    int32_t severity;
    Span severity_text;
    int body_kind;
    Span body;        /* the AnyValue message */
    Span body_string; /* its string_value, when body_kind is BODY_STRING */
    uint32_t attributes;
    uint32_t flags;
    int has_trace_id, has_span_id;
    Span trace_id, span_id;
} Record;

typedef struct {
    Span contents;    /* the ScopeLogs message */
    Span scope;       /* its InstrumentationScope message (empty when absent) */
    Py_ssize_t first; /* index of its first record */
    Py_ssize_t count;
} Scope;

typedef struct {
    Span contents; /* the ResourceLogs message */
    Span resource; /* its Resource message (empty when absent) */
    int has_service;
    Span service;  /* the string value of service.name, when has_service */
    int has_tenant;
    Span tenant;   /* the same for the tenant attribute (analysis.tenant_key resource:...) */
    Py_ssize_t first;
    Py_ssize_t count;
} Resource;

typedef struct {
    Record *records;
    Py_ssize_t nrecords, caprecords;
    Scope *scopes;
    Py_ssize_t nscopes, capscopes;
    Resource *resources;
    Py_ssize_t nresources, capresources;
    Span tenant_key; /* the resource attribute naming the tenant; empty: none */
} Walk;

static void walk_free(Walk *w) {
    PyMem_Free(w->records);
    PyMem_Free(w->scopes);
    PyMem_Free(w->resources);
    memset(w, 0, sizeof(*w));
}

static int grow(void **items, Py_ssize_t *cap, Py_ssize_t need, size_t size) {
    if (need <= *cap)
        return 0;
    Py_ssize_t next = *cap ? *cap * 2 : 16;
    while (next < need)
        next *= 2;
    void *bigger = PyMem_Realloc(*items, (size_t)next * size);
    if (!bigger)
        return -1;
    *items = bigger;
    *cap = next;
    return 0;
}

typedef struct {
    const uint8_t *p, *end;
} Reader;

static inline int read_varint(Reader *r, uint64_t *out) {
    uint64_t value = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (r->p >= r->end)
            return -1;
        uint8_t byte = *r->p++;
        if (shift == 63 && byte > 1)
            return -1; /* past 64 bits: left to upb */
        value |= (uint64_t)(byte & 0x7F) << shift;
        if (!(byte & 0x80)) {
            *out = value;
            return 0;
        }
    }
    return -1;
}

/* The next field's number and wire type; 0 at the end, -1 on what this walker gives up. */
static inline int read_tag(Reader *r, uint32_t *number, int *wire) {
    if (r->p >= r->end)
        return 0;
    uint64_t tag;
    if (read_varint(r, &tag) < 0 || tag > 0xFFFFFFFFu)
        return -1;
    *number = (uint32_t)(tag >> 3);
    *wire = (int)(tag & 7);
    if (*number == 0)
        return -1;
    return 1;
}

static inline int read_len(Reader *r, Span *out) {
    uint64_t n;
    if (read_varint(r, &n) < 0 || n > (uint64_t)(r->end - r->p))
        return -1;
    out->p = r->p;
    out->n = (Py_ssize_t)n;
    r->p += n;
    return 0;
}

static inline int skip_field(Reader *r, int wire) {
    uint64_t ignored;
    Span span;
    switch (wire) {
    case WT_VARINT:
        return read_varint(r, &ignored);
    case WT_I64:
        if (r->end - r->p < 8)
            return -1;
        r->p += 8;
        return 0;
    case WT_LEN:
        return read_len(r, &span);
    case WT_I32:
        if (r->end - r->p < 4)
            return -1;
        r->p += 4;
        return 0;
    default:
        return -1; /* groups and the reserved wire types */
    }
}

/* Strict UTF-8 as upb checks it: no overlong forms, no surrogates, nothing past U+10FFFF. */
static int utf8_valid(const uint8_t *s, Py_ssize_t n) {
    Py_ssize_t i = 0;
    while (i < n) {
        /* ASCII, most text: eight bytes at a time */
        while (i + 8 <= n) {
            uint64_t word;
            memcpy(&word, s + i, 8);
            if (word & 0x8080808080808080ULL)
                break;
            i += 8;
        }
        if (i >= n)
            break;
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            if (i + 1 >= n || (s[i + 1] & 0xC0) != 0x80)
                return 0;
            i += 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            if (i + 2 >= n || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80)
                return 0;
            if (c == 0xE0 && s[i + 1] < 0xA0)
                return 0;
            if (c == 0xED && s[i + 1] > 0x9F)
                return 0;
            i += 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
            if (i + 3 >= n || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80 ||
                (s[i + 3] & 0xC0) != 0x80)
                return 0;
            if (c == 0xF0 && s[i + 1] < 0x90)
                return 0;
            if (c == 0xF4 && s[i + 1] > 0x8F)
                return 0;
            i += 4;
        } else {
            return 0;
        }
    }
    return 1;
}

static inline int read_string(Reader *r, Span *out) {
    if (read_len(r, out) < 0)
        return -1;
    return utf8_valid(out->p, out->n) ? 0 : -1;
}

static int walk_any_value(Span value, int depth, int *kind, Span *string);

static int walk_key_value(Span kv, int depth, Span *key, int *kind, Span *string) {
    if (depth > WALK_MAX_DEPTH)
        return -1;
    Reader r = {kv.p, kv.p + kv.n};
    uint32_t number;
    int wire, more, seen_value = 0;
    key->p = kv.p;
    key->n = 0;
    *kind = BODY_NONE;
    while ((more = read_tag(&r, &number, &wire)) > 0) {
        Span span;
        if (number == 1) {
            if (wire != WT_LEN || read_string(&r, key) < 0)
                return -1;
        } else if (number == 2) {
            /* A second value would be merged into the first: left to upb. */
            if (wire != WT_LEN || seen_value++ || read_len(&r, &span) < 0 ||
                walk_any_value(span, depth + 1, kind, string) < 0)
                return -1;
        } else if (number == 3) {
            if (wire != WT_VARINT || skip_field(&r, wire) < 0)
                return -1;
        } else if (skip_field(&r, wire) < 0) {
            return -1;
        }
    }
    return more;
}

/* A list of AnyValue (ArrayValue) or of KeyValue (KeyValueList), field 1 repeated. */
static int walk_values(Span list, int depth, int key_values) {
    if (depth > WALK_MAX_DEPTH)
        return -1;
    Reader r = {list.p, list.p + list.n};
    uint32_t number;
    int wire, more, kind;
    while ((more = read_tag(&r, &number, &wire)) > 0) {
        Span span, key, string;
        if (number == 1) {
            if (wire != WT_LEN || read_len(&r, &span) < 0)
                return -1;
            if ((key_values ? walk_key_value(span, depth + 1, &key, &kind, &string)
                            : walk_any_value(span, depth + 1, &kind, &string)) < 0)
                return -1;
        } else if (skip_field(&r, wire) < 0) {
            return -1;
        }
    }
    return more;
}

/* kind: the oneof set last (as upb keeps it); string: its string_value when a string. */
static int walk_any_value(Span value, int depth, int *kind, Span *string) {
    if (depth > WALK_MAX_DEPTH)
        return -1;
    Reader r = {value.p, value.p + value.n};
    uint32_t number;
    int wire, more, seen_list = 0;
    *kind = BODY_NONE;
    while ((more = read_tag(&r, &number, &wire)) > 0) {
        Span span;
        switch (number) {
        case 1:
            if (wire != WT_LEN || read_string(&r, string) < 0)
                return -1;
            *kind = BODY_STRING;
            break;
        case 2:
        case 3:
        case 8:
            if (wire != WT_VARINT || skip_field(&r, wire) < 0)
                return -1;
            *kind = BODY_OTHER;
            break;
        case 4:
            if (wire != WT_I64 || skip_field(&r, wire) < 0)
                return -1;
            *kind = BODY_OTHER;
            break;
        case 5:
        case 6:
            /* Two lists in one value merge (or replace each other): left to upb. */
            if (wire != WT_LEN || seen_list++ || read_len(&r, &span) < 0 ||
                walk_values(span, depth + 1, number == 6) < 0)
                return -1;
            *kind = BODY_OTHER;
            break;
        case 7:
            if (wire != WT_LEN || read_len(&r, &span) < 0)
                return -1;
            *kind = BODY_OTHER;
            break;
        default:
            if (skip_field(&r, wire) < 0)
                return -1;
        }
    }
    return more;
}

static const char SERVICE_NAME_KEY[] = "service.name";
static const char *const OWN_KEYS[] = {
    "sampling.adjusted_count", "lipservice.pattern_id",       "lipservice.reason",
    "lipservice.would_keep",   "lipservice.severity_inferred", NULL,
};

static int span_is(Span s, const char *text) {
    size_t n = strlen(text);
    return (size_t)s.n == n && memcmp(s.p, text, n) == 0;
}

static int is_own_key(Span key) {
    if (key.n < 17)
        return 0;
    for (const char *const *own = OWN_KEYS; *own; own++)
        if (span_is(key, *own))
            return 1;
    return 0;
}

/* Resource: attributes (1, service.name and the tenant attribute read from their first),
 * dropped count (2), entity_refs (3: strings 1, 2 and repeated 3, 4). */
static int walk_resource(Span resource, Span tenant_key, Resource *out) {
    Reader r = {resource.p, resource.p + resource.n};
    uint32_t number;
    int wire, more, kind;
    while ((more = read_tag(&r, &number, &wire)) > 0) {
        Span span, key, string;
        if (number == 1) {
            string.p = NULL;
            string.n = 0;
            if (wire != WT_LEN || read_len(&r, &span) < 0 ||
                walk_key_value(span, 4, &key, &kind, &string) < 0)
                return -1;
            if (!out->has_service && span_is(key, SERVICE_NAME_KEY)) {
                out->has_service = 1;
                if (kind == BODY_STRING)
                    out->service = string;
                else
                    out->service.n = 0;
            }
            if (tenant_key.n && !out->has_tenant && key.n == tenant_key.n &&
                memcmp(key.p, tenant_key.p, key.n) == 0) {
                out->has_tenant = 1;
                if (kind == BODY_STRING)
                    out->tenant = string;
                else
                    out->tenant.n = 0;
            }
        } else if (number == 2) {
            if (wire != WT_VARINT || skip_field(&r, wire) < 0)
                return -1;
        } else if (number == 3) {
            if (wire != WT_LEN || read_len(&r, &span) < 0)
                return -1;
            Reader e = {span.p, span.p + span.n};
            uint32_t field;
            int ewire, emore;
            while ((emore = read_tag(&e, &field, &ewire)) > 0) {
                Span text;
                if (field >= 1 && field <= 4) {
                    if (ewire != WT_LEN || read_string(&e, &text) < 0)
                        return -1;
                } else if (skip_field(&e, ewire) < 0) {
                    return -1;
                }
            }
            if (emore < 0)
                return -1;
        } else if (skip_field(&r, wire) < 0) {
            return -1;
        }
    }
    return more;
}

/* InstrumentationScope: name (1), version (2), attributes (3), dropped count (4). */
static int walk_scope(Span scope) {
    Reader r = {scope.p, scope.p + scope.n};
    uint32_t number;
    int wire, more, kind;
    while ((more = read_tag(&r, &number, &wire)) > 0) {
        Span span, key, string;
        if (number == 1 || number == 2) {
            if (wire != WT_LEN || read_string(&r, &span) < 0)
                return -1;
        } else if (number == 3) {
            if (wire != WT_LEN || read_len(&r, &span) < 0 ||
                walk_key_value(span, 5, &key, &kind, &string) < 0)
                return -1;
        } else if (number == 4) {
            if (wire != WT_VARINT || skip_field(&r, wire) < 0)
                return -1;
        } else if (skip_field(&r, wire) < 0) {
            return -1;
        }
    }
    return more;
}

static int walk_record(Span contents, Record *rec) {
    Reader r = {contents.p, contents.p + contents.n};
    uint32_t number;
    int wire, more, kind, seen_body = 0;
    uint64_t v;
    memset(rec, 0, sizeof(*rec));
    rec->contents = contents;
    while ((more = read_tag(&r, &number, &wire)) > 0) {
        Span span, key, string;
        switch (number) {
        case 1:
            if (wire != WT_I64 || r.end - r.p < 8)
                return -1;
            rec->time = 0;
            for (int b = 7; b >= 0; b--)
                rec->time = (rec->time << 8) | r.p[b];
            r.p += 8;
            break;
        case 11:
            if (wire != WT_I64 || skip_field(&r, wire) < 0)
                return -1;
            break;
        case 2:
            if (wire != WT_VARINT || read_varint(&r, &v) < 0)
                return -1;
            rec->severity = (int32_t)(uint32_t)v;
            break;
        case 3:
            if (wire != WT_LEN || read_string(&r, &rec->severity_text) < 0)
                return -1;
            break;
        case 12:
            if (wire != WT_LEN || read_string(&r, &span) < 0)
                return -1;
            break;
        case 5:
            /* Two bodies merge: left to upb. */
            if (wire != WT_LEN || seen_body++ || read_len(&r, &rec->body) < 0 ||
                walk_any_value(rec->body, 5, &rec->body_kind, &rec->body_string) < 0)
                return -1;
            break;
        case 6:
            if (wire != WT_LEN || read_len(&r, &span) < 0 ||
                walk_key_value(span, 5, &key, &kind, &string) < 0)
                return -1;
            rec->attributes++;
            if (is_own_key(key))
                rec->flags |= REC_UPSTREAM_STAMP;
            break;
        case 7:
            if (wire != WT_VARINT || skip_field(&r, wire) < 0)
                return -1;
            break;
        case 8:
            if (wire != WT_I32 || skip_field(&r, wire) < 0)
                return -1;
            break;
        case 9:
            if (wire != WT_LEN || read_len(&r, &rec->trace_id) < 0)
                return -1;
            rec->has_trace_id = 1;
            break;
        case 10:
            if (wire != WT_LEN || read_len(&r, &rec->span_id) < 0)
                return -1;
            rec->has_span_id = 1;
            break;
        default:
            if (skip_field(&r, wire) < 0)
                return -1;
        }
    }
    return more;
}

static int walk_scope_logs(Span contents, Walk *w) {
    Reader r = {contents.p, contents.p + contents.n};
    uint32_t number;
    int wire, more, seen_scope = 0;
    if (grow((void **)&w->scopes, &w->capscopes, w->nscopes + 1, sizeof(Scope)) < 0)
        return -2;
    Scope *scope = &w->scopes[w->nscopes++];
    memset(scope, 0, sizeof(*scope));
    scope->contents = contents;
    scope->first = w->nrecords;
    while ((more = read_tag(&r, &number, &wire)) > 0) {
        Span span;
        if (number == 1) {
            if (wire != WT_LEN || seen_scope++ || read_len(&r, &scope->scope) < 0 ||
                walk_scope(scope->scope) < 0)
                return -1;
        } else if (number == 2) {
            if (wire != WT_LEN || read_len(&r, &span) < 0)
                return -1;
            if (grow((void **)&w->records, &w->caprecords, w->nrecords + 1, sizeof(Record)) < 0)
                return -2;
            if (walk_record(span, &w->records[w->nrecords]) < 0)
                return -1;
            w->nrecords++;
        } else if (number == 3) {
            if (wire != WT_LEN || read_string(&r, &span) < 0)
                return -1;
        } else if (skip_field(&r, wire) < 0) {
            return -1;
        }
    }
    scope = &w->scopes[w->nscopes - 1];
    scope->count = w->nrecords - scope->first;
    return more;
}

static int walk_resource_logs(Span contents, Walk *w) {
    Reader r = {contents.p, contents.p + contents.n};
    uint32_t number;
    int wire, more, seen_resource = 0, status;
    Resource resource;
    memset(&resource, 0, sizeof(resource));
    resource.contents = contents;
    resource.first = w->nscopes;
    while ((more = read_tag(&r, &number, &wire)) > 0) {
        Span span;
        if (number == 1) {
            if (wire != WT_LEN || seen_resource++ || read_len(&r, &resource.resource) < 0 ||
                walk_resource(resource.resource, w->tenant_key, &resource) < 0)
                return -1;
        } else if (number == 2) {
            if (wire != WT_LEN || read_len(&r, &span) < 0)
                return -1;
            if ((status = walk_scope_logs(span, w)) < 0)
                return status;
        } else if (number == 3) {
            if (wire != WT_LEN || read_string(&r, &span) < 0)
                return -1;
        } else if (skip_field(&r, wire) < 0) {
            return -1;
        }
    }
    if (more < 0)
        return -1;
    resource.count = w->nscopes - resource.first;
    if (grow((void **)&w->resources, &w->capresources, w->nresources + 1, sizeof(Resource)) < 0)
        return -2;
    w->resources[w->nresources++] = resource;
    return 0;
}

/* 0: walked; -1: not for this walker (upb decides); -2: out of memory (exception set).
 * tenant_key: the resource attribute to read per resource as its tenant (empty: none). */
static int walk_request(const uint8_t *data, Py_ssize_t n, Span tenant_key, Walk *w) {
    Reader r = {data, data + n};
    uint32_t number;
    int wire, more, status;
    memset(w, 0, sizeof(*w));
    w->tenant_key = tenant_key;
    while ((more = read_tag(&r, &number, &wire)) > 0) {
        Span span;
        if (number == 1) {
            if (wire != WT_LEN || read_len(&r, &span) < 0)
                return -1;
            if ((status = walk_resource_logs(span, w)) < 0) {
                if (status == -2)
                    PyErr_NoMemory();
                return status;
            }
        } else if (skip_field(&r, wire) < 0) {
            return -1;
        }
    }
    return more < 0 ? -1 : 0;
}

static PyObject *span_bytes(Span s) { return PyBytes_FromStringAndSize((const char *)s.p, s.n); }

static PyObject *span_str(Span s) {
    return PyUnicode_DecodeUTF8((const char *)s.p, s.n, "strict");
}

/* walk(data) -> None when the walker gives the request up, else
 * [(service or None, [[(time, severity, severity_text, body_kind, body, attributes, flags,
 *                       trace_id or None, span_id or None), ...], ...]), ...]
 * body: the string for a string body, else the AnyValue bytes (b"" when absent). */
static PyObject *native_walk(PyObject *self, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    Walk w;
    int status = walk_request(view.buf, view.len, (Span){NULL, 0}, &w);
    PyObject *out = NULL;
    if (status == -1) {
        out = Py_NewRef(Py_None);
        goto done;
    }
    if (status < 0)
        goto done;
    out = PyList_New(0);
    for (Py_ssize_t i = 0; out && i < w.nresources; i++) {
        Resource *res = &w.resources[i];
        PyObject *scopes = PyList_New(0);
        for (Py_ssize_t s = res->first; scopes && s < res->first + res->count; s++) {
            Scope *scope = &w.scopes[s];
            PyObject *records = PyList_New(0);
            for (Py_ssize_t k = scope->first; records && k < scope->first + scope->count; k++) {
                Record *rec = &w.records[k];
                PyObject *body = rec->body_kind == BODY_STRING ? span_str(rec->body_string)
                                                               : span_bytes(rec->body);
                PyObject *item = Py_BuildValue(
                    "(KiNiNIINN)", (unsigned long long)rec->time, (int)rec->severity,
                    span_str(rec->severity_text), rec->body_kind, body, rec->attributes,
                    rec->flags,
                    rec->has_trace_id ? span_bytes(rec->trace_id) : Py_NewRef(Py_None),
                    rec->has_span_id ? span_bytes(rec->span_id) : Py_NewRef(Py_None));
                if (!item || PyList_Append(records, item) < 0)
                    Py_CLEAR(records);
                Py_XDECREF(item);
            }
            if (!records || PyList_Append(scopes, records) < 0)
                Py_CLEAR(scopes);
            Py_XDECREF(records);
        }
        PyObject *service = res->has_service ? span_str(res->service) : Py_NewRef(Py_None);
        PyObject *item = scopes && service ? PyTuple_Pack(2, service, scopes) : NULL;
        Py_XDECREF(service);
        Py_XDECREF(scopes);
        if (!item || PyList_Append(out, item) < 0)
            Py_CLEAR(out);
        Py_XDECREF(item);
    }
done:
    walk_free(&w);
    PyBuffer_Release(&view);
    return out;
}

/* ------------------------------------------------------------------------------------------
 * Signature: template_of_text (text/signature.py) for the common body
 * ---------------------------------------------------------------------------------------- */

/* From text/signature.py at import: its masking function, the fallback for whole bodies, and
 * the tables the rules below read (MASK, _LEADING, _TRAILING, _HTTP_METHODS, the context words
 * with their masked forms). Never changed afterwards. */
static PyObject *py_mask_token, *py_template_of_text;
static Py_ssize_t memo_max_entries, memo_max_token_chars, max_quoting_rounds;
static Py_ssize_t default_max_body_chars;
/* How often this module handed work to the Python signature, for the benchmark. */
static unsigned long long signature_fallbacks, signature_token_misses;

/* A bounded map of byte strings to Python objects, cleared when full as signature.py's memos
 * are: only a cache of a pure function, so its fill and eviction do not change any result. */
/* Keys up to MEMO_INLINE bytes (most tokens) live in the entry itself: a probe then touches
 * one cache line, not two. */
#define MEMO_INLINE 24

typedef struct {
    uint64_t hash;
    PyObject *value; /* NULL: empty */
    Py_ssize_t n;
    union {
        char *heap;
        char inline_key[MEMO_INLINE];
    } key;
} MemoEntry;

typedef struct {
    MemoEntry *entries;
    size_t mask; /* capacity - 1, a power of two at least twice the entry cap */
    Py_ssize_t used, cap;
} Memo;

static inline const char *memo_key(const MemoEntry *e) {
    return e->n <= MEMO_INLINE ? e->key.inline_key : e->key.heap;
}

/* The zeroed slots of an open-addressing memo for `cap` entries: a power of two at least
   twice the cap, so probes stay short when it is full; `*mask` is its size - 1. */
static void *memo_slots(Py_ssize_t cap, size_t entry_size, size_t *mask) {
    size_t size = 16;
    while (size < (size_t)cap * 2)
        size *= 2;
    *mask = size - 1;
    return PyMem_Calloc(size, entry_size);
}

static int memo_init(Memo *m, Py_ssize_t cap) {
    m->entries = memo_slots(cap, sizeof(MemoEntry), &m->mask);
    if (!m->entries)
        return -1;
    m->used = 0;
    m->cap = cap;
    return 0;
}

static void memo_clear(Memo *m) {
    if (!m->used)
        return;
    for (size_t i = 0; i <= m->mask; i++) {
        MemoEntry *e = &m->entries[i];
        if (e->value) {
            if (e->n > MEMO_INLINE)
                PyMem_Free(e->key.heap);
            Py_CLEAR(e->value);
        }
    }
    m->used = 0;
}

static void memo_free(Memo *m) {
    if (!m->entries)
        return;
    memo_clear(m);
    PyMem_Free(m->entries);
    m->entries = NULL;
}

static inline PyObject *memo_get(Memo *m, const char *key, Py_ssize_t n, uint64_t hash) {
    for (size_t i = hash & m->mask;; i = (i + 1) & m->mask) {
        MemoEntry *e = &m->entries[i];
        if (!e->value)
            return NULL;
        if (e->hash == hash && e->n == n && memcmp(memo_key(e), key, n) == 0)
            return e->value;
    }
}

/* value gets a new reference. */
static int memo_put(Memo *m, const char *key, Py_ssize_t n, uint64_t hash, PyObject *value) {
    if (m->used >= m->cap)
        memo_clear(m);
    size_t i = hash & m->mask;
    while (m->entries[i].value)
        i = (i + 1) & m->mask;
    MemoEntry *e = &m->entries[i];
    if (n > MEMO_INLINE) {
        e->key.heap = PyMem_Malloc(n);
        if (!e->key.heap)
            return -1;
        memcpy(e->key.heap, key, n);
    } else {
        memcpy(e->key.inline_key, key, n);
    }
    e->hash = hash;
    e->n = n;
    e->value = Py_NewRef(value);
    m->used++;
    return 0;
}

/* Masked forms of tokens, by token or by digit-normalised shape, as C bytes: a hit makes no
 * Python object. Bounded and cleared when full as signature.py's memos are. */
#define TOKEN_INLINE 40

typedef struct {
    uint64_t hash;
    uint32_t n;  /* key bytes; 0: an empty entry */
    uint32_t vn; /* value bytes, stored after the key */
    union {
        char *heap;
        char inline_data[TOKEN_INLINE];
    } data;
} TokenEntry;

typedef struct {
    TokenEntry *entries;
    size_t mask; /* capacity - 1, a power of two at least twice the entry cap */
    Py_ssize_t used, cap;
} TokenMemo;

static inline const char *token_entry_data(const TokenEntry *e) {
    return e->n + e->vn <= TOKEN_INLINE ? e->data.inline_data : e->data.heap;
}

static int token_memo_init(TokenMemo *m, Py_ssize_t cap) {
    m->entries = memo_slots(cap, sizeof(TokenEntry), &m->mask);
    if (!m->entries)
        return -1;
    m->used = 0;
    m->cap = cap;
    return 0;
}

static void token_memo_clear(TokenMemo *m) {
    if (!m->used)
        return;
    for (size_t i = 0; i <= m->mask; i++) {
        TokenEntry *e = &m->entries[i];
        if (e->n && e->n + e->vn > TOKEN_INLINE)
            PyMem_Free(e->data.heap);
        e->n = 0;
    }
    m->used = 0;
}

static inline const TokenEntry *token_memo_get(const TokenMemo *m, const char *key, Py_ssize_t n,
                                               uint64_t hash) {
    for (size_t i = hash & m->mask;; i = (i + 1) & m->mask) {
        const TokenEntry *e = &m->entries[i];
        if (!e->n)
            return NULL;
        if (e->hash == hash && e->n == n && memcmp(token_entry_data(e), key, n) == 0)
            return e;
    }
}

static int token_memo_put(TokenMemo *m, const char *key, Py_ssize_t n, uint64_t hash,
                          const char *value, Py_ssize_t vn) {
    if (m->used >= m->cap)
        token_memo_clear(m);
    size_t i = hash & m->mask;
    while (m->entries[i].n)
        i = (i + 1) & m->mask;
    TokenEntry *e = &m->entries[i];
    char *data = e->data.inline_data;
    if (n + vn > TOKEN_INLINE) {
        data = e->data.heap = PyMem_Malloc(n + vn);
        if (!data)
            return -1;
    }
    memcpy(data, key, n);
    memcpy(data + n, value, vn);
    e->hash = hash;
    e->n = (uint32_t)n;
    e->vn = (uint32_t)vn;
    m->used++;
    return 0;
}

static TokenMemo token_memo, shape_memo;

/* MASK */
static char mask_bytes[8];
static Py_ssize_t mask_len;

/* What the rules below ask of an ASCII byte, one table load per byte. */
#define C_SPACE 0x01   /* str.split()'s and re's \s */
#define C_LETTER 0x02  /* [^\W\d_] */
#define C_DIGIT 0x04   /* \d */
#define C_WORD 0x08    /* \w */
#define C_AT 0x10      /* @ */
#define C_DOT 0x40     /* . */
#define C_NUMBER 0x80  /* _REST's [\w.:+-] */
#define C_LEADING 0x100  /* _LEADING */
#define C_TRAILING 0x200 /* _TRAILING */
static uint16_t char_class[256];

static void fill_char_classes(void) {
    for (int c = 0; c < 128; c++) {
        int letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        int digit = c >= '0' && c <= '9';
        int word = letter || digit || c == '_';
        char_class[c] =
            (uint16_t)(((c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f)) ? C_SPACE : 0) |
                       (letter ? C_LETTER : 0) | (digit ? C_DIGIT : 0) | (word ? C_WORD : 0) |
                       (c == '@' ? C_AT : 0) | (c == '.' ? C_DOT : 0) |
                       ((word || c == '.' || c == ':' || c == '+' || c == '-') ? C_NUMBER : 0));
    }
}

/* _HTTP_METHODS */
#define MAX_HTTP_METHODS 16
static char http_methods[MAX_HTTP_METHODS][16];
static Py_ssize_t http_method_lengths[MAX_HTTP_METHODS], http_method_count;

/* _DATE_WORDS and _UNITS (their ASCII members: the bytes of this path are ASCII), each with
 * the form signature.py's _mask_context_words gives it beside a mask. */
#define CONTEXT_SLOTS 1024
#define CONTEXT_DATE 1
#define CONTEXT_UNIT 2
typedef struct {
    uint64_t word; /* its bytes, zero-padded */
    uint8_t n, kind, masked_n;
    char masked[16];
} ContextWord;
static ContextWord context_words[CONTEXT_SLOTS];
static Py_ssize_t context_max_chars;

static inline uint64_t packed_word(const char *s, Py_ssize_t n) {
    uint64_t word = 0;
    memcpy(&word, s, n);
    return word;
}

static inline size_t context_slot(uint64_t word, Py_ssize_t n) {
    return (size_t)(((word + (uint64_t)n) * 0x9E3779B97F4A7C15ULL) >> 54) & (CONTEXT_SLOTS - 1);
}

static const ContextWord *context_word(const char *s, Py_ssize_t n) {
    if (n > context_max_chars)
        return NULL;
    uint64_t word = packed_word(s, n);
    for (size_t i = context_slot(word, n);; i = (i + 1) & (CONTEXT_SLOTS - 1)) {
        const ContextWord *c = &context_words[i];
        if (!c->kind)
            return NULL;
        if (c->word == word && c->n == n)
            return c;
    }
}

/* str.split()'s whitespace, for ASCII: \t \n \v \f \r, space and \x1c-\x1f (also re's \s). */
static inline int ascii_space(unsigned char c) { return char_class[c] & C_SPACE; }

static inline int all_ascii(const uint8_t *s, Py_ssize_t n) {
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t word;
        memcpy(&word, s + i, 8);
        if (word & 0x8080808080808080ULL)
            return 0;
    }
    for (; i < n; i++)
        if (s[i] & 0x80)
            return 0;
    return 1;
}

static inline int ascii_digit(unsigned char c) { return char_class[c] & C_DIGIT; }

/* _MAY_VARY, r"[\d@]|\.[^\W\d_]", given the classes of the token's bytes or'ed together (as
 * the split gathers them): without it a token is its own mask. */
static inline int may_vary(const char *t, Py_ssize_t n, unsigned classes) {
    if (classes & (C_DIGIT | C_AT))
        return 1;
    if (!(classes & C_DOT))
        return 0;
    for (Py_ssize_t i = 0; i + 1 < n; i++)
        if (t[i] == '.' && (char_class[(unsigned char)t[i + 1]] & C_LETTER))
            return 1;
    return 0;
}

/* _NUMBER_LIKE, r"-?\d(?:[\w.:+-]|,\d)*" in full: a core matching it masks whole. */
static int number_like(const char *s, Py_ssize_t n) {
    Py_ssize_t i = 0;
    if (i < n && s[i] == '-')
        i++;
    if (i >= n || !ascii_digit(s[i]))
        return 0;
    for (i++; i < n; i++) {
        if (char_class[(unsigned char)s[i]] & C_NUMBER)
            continue;
        if (s[i] == ',' && i + 1 < n && ascii_digit(s[i + 1]))
            continue;
        return 0;
    }
    return 1;
}

/* The rest of _mask_token for a token without quotes or backslashes (_mask_plain, _mask_value,
 * _mask_unit, _is_hostname, _EMAIL, _PATH and _VARIABLE), so a token seen for the first time
 * costs no Python call either. Each regex is matched as the regex engine would: its greedy
 * parts are settled by the runs of characters they can take (see each function). Held to
 * signature.py by tests/unit/sampling/test_native_signature.py, exhaustively over short tokens
 * and by hypothesis over longer ones. */
#define MAX_TOP_LEVEL_DOMAINS 128
static char top_level_domains[MAX_TOP_LEVEL_DOMAINS][16];
static Py_ssize_t top_level_domain_lengths[MAX_TOP_LEVEL_DOMAINS], top_level_domain_count;

/* Longest token masked here; a longer one goes to _mask_token. */
#define RULES_MAX_TOKEN 256
/* A masked part is at most three bytes per byte of its text (a mask for each). */
#define RULES_BUF (3 * RULES_MAX_TOKEN + 8)

typedef struct {
    char *p, *end;
} Out;

static inline int put(Out *o, const char *s, Py_ssize_t n) {
    if (o->end - o->p < n)
        return -1;
    memcpy(o->p, s, n);
    o->p += n;
    return 0;
}

static inline int put_mask(Out *o) { return put(o, mask_bytes, mask_len); }

/* c is one of set's characters (never NUL, which strchr would find at set's end). */
static inline int in_set(const char *set, char c) { return c && strchr(set, c); }

static inline int is_class(const char *s, Py_ssize_t n, Py_ssize_t i, unsigned bits) {
    return i >= 0 && i < n && (char_class[(unsigned char)s[i]] & bits);
}
#define ALNUM (C_LETTER | C_DIGIT)

static inline int is_hex(const char *s, Py_ssize_t n, Py_ssize_t i) {
    if (i < 0 || i >= n)
        return 0;
    unsigned char c = s[i];
    return ascii_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

static inline Py_ssize_t class_run(const char *s, Py_ssize_t n, Py_ssize_t i, unsigned bits) {
    Py_ssize_t start = i;
    while (i < n && (char_class[(unsigned char)s[i]] & bits))
        i++;
    return i - start;
}

static inline Py_ssize_t hex_run(const char *s, Py_ssize_t n, Py_ssize_t i) {
    Py_ssize_t start = i;
    while (is_hex(s, n, i))
        i++;
    return i - start;
}

/* _REST, r"(?:[\w.:+-]|,\d)*", from i: where it stops. */
static inline Py_ssize_t rest_end(const char *s, Py_ssize_t n, Py_ssize_t i) {
    for (;;) {
        if (is_class(s, n, i, C_NUMBER))
            i++;
        else if (i + 1 < n && s[i] == ',' && ascii_digit(s[i + 1]))
            i += 2;
        else
            return i;
    }
}

/* (?=[0-9a-fA-F:]{0,38}\d): a digit within the first 39 of a run of hex digits and colons. */
static int digit_in_hex_colons(const char *s, Py_ssize_t n, Py_ssize_t p) {
    for (Py_ssize_t i = p; i < n && i <= p + 38; i++) {
        if (ascii_digit(s[i]))
            return 1;
        if (!is_hex(s, n, i) && s[i] != ':')
            return 0;
    }
    return 0;
}

/* An IPv6 address from p: with "::" (compressed) or with exactly eight groups. The end of the
 * part before _REST, or -1. Each group's hex{1,4} is followed by ":" except an address's last,
 * so a group is its whole run of hex digits, which must be 1-4 long. */
static Py_ssize_t ipv6_end(const char *s, Py_ssize_t n, Py_ssize_t p, int compressed) {
    Py_ssize_t run = hex_run(s, n, p);
    if (run < 1 || (compressed && run > 4))
        return -1;
    if (!compressed) {
        for (int group = 0; group < 7; group++) {
            if (run > 4 || p + run >= n || s[p + run] != ':')
                return -1;
            p += run + 1;
            run = hex_run(s, n, p);
            if (run < 1)
                return -1;
        }
        return p + (run < 4 ? run : 4);
    }
    p += run;
    for (int groups = 0;; groups++) {
        if (p + 1 < n && s[p] == ':' && s[p + 1] == ':')
            return p + 2;
        if (groups == 6 || p >= n || s[p] != ':')
            return -1;
        run = hex_run(s, n, p + 1);
        if (run < 1 || run > 4)
            return -1;
        p += run + 1;
    }
}

/* Where one of _VARIABLE's alternatives matches at p, in its order: the end of the match (its
 * start part, then _REST), or -1. */
static Py_ssize_t variable_at(const char *s, Py_ssize_t n, Py_ssize_t p) {
    unsigned char c = s[p];
    int free_before = !is_class(s, n, p - 1, ALNUM); /* (?<![^\W_]) */
    Py_ssize_t end = -1;
    if (free_before && is_hex(s, n, p)) {
        /* a UUID */
        static const signed char uuid[] = {8, 4, 4, 4, 12};
        Py_ssize_t i = p;
        for (int part = 0; part < 5; part++) {
            if (part) {
                if (i >= n || s[i] != '-')
                    goto not_uuid;
                i++;
            }
            if (hex_run(s, n, i) < uuid[part])
                goto not_uuid;
            i += uuid[part];
        }
        return rest_end(s, n, i);
    not_uuid:
        if (digit_in_hex_colons(s, n, p)) {
            if ((end = ipv6_end(s, n, p, 1)) >= 0 || (end = ipv6_end(s, n, p, 0)) >= 0)
                return rest_end(s, n, end);
        }
    }
    /* "::" and hex after the start, whitespace or "([=/" */
    if (c == ':' && (p == 0 || ascii_space(s[p - 1]) || in_set("([=/", s[p - 1])) &&
        p + 2 < n && s[p + 1] == ':' && is_hex(s, n, p + 2))
        return rest_end(s, n, p + 3);
    if (!free_before) {
        /* (?<=[^\W\d_])\d{2,}(?![^\W_]): a counter glued to a word */
        if ((char_class[(unsigned char)s[p - 1]] & C_LETTER) && ascii_digit(c)) {
            Py_ssize_t digits = class_run(s, n, p, C_DIGIT);
            if (digits >= 2 && !is_class(s, n, p + digits, ALNUM))
                return rest_end(s, n, p + digits);
        }
        return -1;
    }
    if (ascii_digit(c)) {
        /* an access log date, "10/Oct/2000" */
        Py_ssize_t digits = class_run(s, n, p, C_DIGIT), i = p + digits;
        if (digits <= 2 && i + 5 <= n && s[i] == '/' && s[i + 1] >= 'A' && s[i + 1] <= 'Z' &&
            s[i + 2] >= 'a' && s[i + 2] <= 'z' && s[i + 3] >= 'a' && s[i + 3] <= 'z' &&
            s[i + 4] == '/' && class_run(s, n, i + 5, C_DIGIT) >= 4)
            return rest_end(s, n, i + 9);
        return rest_end(s, n, p + 1); /* -?\d */
    }
    if (c == '-' && is_class(s, n, p + 1, C_DIGIT))
        return rest_end(s, n, p + 2);
    if (is_hex(s, n, p)) {
        /* long hex starting with a letter: (?=[a-fA-F]*\d)[0-9a-fA-F]{8,}(?![^\W_]) */
        Py_ssize_t i = p;
        while (is_hex(s, n, i) && !ascii_digit(s[i]))
            i++;
        Py_ssize_t run = hex_run(s, n, p);
        if (is_class(s, n, i, C_DIGIT) && run >= 8 && !is_class(s, n, p + run, ALNUM))
            return rest_end(s, n, p + run);
    }
    if (char_class[c] & C_LETTER) {
        /* letters and digits mixed more than once: [^\W\d_]+\d+[^\W\d_]+\d */
        Py_ssize_t i = p + class_run(s, n, p, C_LETTER);
        Py_ssize_t digits = class_run(s, n, i, C_DIGIT);
        if (digits) {
            i += digits;
            Py_ssize_t letters = class_run(s, n, i, C_LETTER);
            if (letters && is_class(s, n, i + letters, C_DIGIT))
                return rest_end(s, n, i + letters + 1);
        }
    }
    if (p > 0 && s[p - 1] == '-' && (char_class[c] & C_LETTER)) {
        /* (?<=-)[^\W\d_]+\d[^\W_]*(?![^\W_]|-): the last dash-separated part of a name */
        Py_ssize_t letters = class_run(s, n, p, C_LETTER);
        if (is_class(s, n, p + letters, C_DIGIT)) {
            Py_ssize_t e = p + letters + 1;
            e += class_run(s, n, e, ALNUM);
            if (e >= n || s[e] != '-')
                return rest_end(s, n, e);
        }
    }
    return -1;
}

/* _VARIABLE.sub(MASK, s) */
static int variable_sub(const char *s, Py_ssize_t n, Out *o) {
    for (Py_ssize_t p = 0; p < n;) {
        Py_ssize_t end = variable_at(s, n, p);
        if (end > p) {
            if (put_mask(o) < 0)
                return -1;
            p = end;
        } else {
            if (put(o, s + p, 1) < 0)
                return -1;
            p++;
        }
    }
    return 0;
}

/* [\w.+-] */
static inline int email_local(const char *s, Py_ssize_t n, Py_ssize_t i) {
    return is_class(s, n, i, C_WORD | C_DOT) || (i >= 0 && i < n && (s[i] == '+' || s[i] == '-'));
}

static inline int label_char(const char *s, Py_ssize_t n, Py_ssize_t i) { /* [\w-] */
    return is_class(s, n, i, C_WORD) || (i >= 0 && i < n && s[i] == '-');
}

/* Where _EMAIL matches at p: (?<![\w.+-])\w[\w.+-]*@ then dot-separated [\w-]+ labels and a
 * last one of two letters or more not followed by [\w-]; the labels' greedy repetition gives
 * back whole labels from the right, so the rightmost dot that can start the last one wins. */
static Py_ssize_t email_at(const char *s, Py_ssize_t n, Py_ssize_t p) {
    if (email_local(s, n, p - 1) || !is_class(s, n, p, C_WORD))
        return -1;
    Py_ssize_t at = p + 1;
    while (email_local(s, n, at))
        at++;
    if (at >= n || s[at] != '@' || !label_char(s, n, at + 1))
        return -1;
    Py_ssize_t end = at + 1; /* the end of the labels' greedy run */
    for (;;) {
        while (label_char(s, n, end))
            end++;
        if (end + 1 < n && s[end] == '.' && label_char(s, n, end + 1))
            end++;
        else
            break;
    }
    for (Py_ssize_t dot = end; dot > at + 1; dot--) {
        if (dot >= n || s[dot] != '.')
            continue;
        Py_ssize_t letters = class_run(s, n, dot + 1, C_LETTER);
        if (letters >= 2 && !label_char(s, n, dot + 1 + letters))
            return dot + 1 + letters;
    }
    return -1;
}

/* _EMAIL.sub(MASK, s) */
static int email_sub(const char *s, Py_ssize_t n, Out *o) {
    for (Py_ssize_t p = 0; p < n;) {
        Py_ssize_t end = email_at(s, n, p);
        if (end > p) {
            if (put_mask(o) < 0)
                return -1;
            p = end;
        } else {
            if (put(o, s + p, 1) < 0)
                return -1;
            p++;
        }
    }
    return 0;
}

/* _is_hostname: dot-separated [\w-]+ labels, then a last label of letters only, two or more,
 * optionally ":digits", and that last label (lowercased) a common top-level domain. */
static int is_hostname(const char *s, Py_ssize_t n) {
    const char *last = NULL;
    for (Py_ssize_t i = n - 1; i >= 0 && !last; i--)
        if (s[i] == '.')
            last = s + i;
    if (!last || last == s)
        return 0;
    Py_ssize_t dot = last - s;
    for (Py_ssize_t i = 0; i < dot; i++) {
        if (s[i] == '.') {
            if (i == 0 || s[i - 1] == '.')
                return 0;
        } else if (!label_char(s, n, i)) {
            return 0;
        }
    }
    if (s[dot - 1] == '.')
        return 0;
    Py_ssize_t letters = class_run(s, n, dot + 1, C_LETTER), end = dot + 1 + letters;
    if (letters < 2 || letters >= 16)
        return 0;
    if (end < n && !(s[end] == ':' && end + 1 < n && class_run(s, n, end + 1, C_DIGIT) == n - end - 1))
        return 0;
    char lower[16];
    for (Py_ssize_t i = 0; i < letters; i++)
        lower[i] = (char)(s[dot + 1 + i] | 0x20);
    for (Py_ssize_t k = 0; k < top_level_domain_count; k++)
        if (top_level_domain_lengths[k] == letters && memcmp(top_level_domains[k], lower, letters) == 0)
            return 1;
    return 0;
}

/* _PATH's search, r"(?:^|\()(?:~|\.{1,2})?/": where the path starts (after a "("), or -1. */
static Py_ssize_t path_start(const char *s, Py_ssize_t n) {
    for (Py_ssize_t p = 0; p < n; p++) {
        Py_ssize_t i;
        if (p == 0) { /* ^ */
            i = 0;
            if (i < n && s[i] == '~')
                i++;
            else if (i + 1 < n && s[i] == '.' && s[i + 1] == '.' && i + 2 < n && s[i + 2] == '/')
                i += 2;
            else if (i < n && s[i] == '.')
                i++;
            if (i < n && s[i] == '/')
                return 0;
        }
        if (s[p] == '(') {
            i = p + 1;
            if (i < n && s[i] == '~')
                i++;
            else if (i + 2 < n && s[i] == '.' && s[i + 1] == '.' && s[i + 2] == '/')
                i += 2;
            else if (i < n && s[i] == '.')
                i++;
            if (i < n && s[i] == '/')
                return p + 1;
        }
    }
    return -1;
}

static inline int has_digit_from(const char *s, Py_ssize_t n, Py_ssize_t i) {
    for (; i < n; i++)
        if (ascii_digit(s[i]))
            return 1;
    return 0;
}

/* _mask_unit */
static int mask_unit(const char *s, Py_ssize_t n, Out *o) {
    if (memchr(s, '/', n)) {
        for (Py_ssize_t i = 0; i + 3 <= n; i++)
            if (s[i] == ':' && s[i + 1] == '/' && s[i + 2] == '/')
                return put_mask(o);
        Py_ssize_t start = path_start(s, n);
        if (start >= 0 && has_digit_from(s, n, start))
            return variable_sub(s, start, o) < 0 ? -1 : put_mask(o);
    }
    if (memchr(s, '.', n) && is_hostname(s, n))
        return put_mask(o);
    if (memchr(s, '@', n)) {
        char buf[RULES_BUF];
        Out e = {buf, buf + sizeof(buf)};
        if (email_sub(s, n, &e) < 0)
            return -1;
        return variable_sub(buf, e.p - buf, o);
    }
    return variable_sub(s, n, o);
}

/* _mask_value: the value after the separator, as one unit. */
static int mask_value(const char *s, Py_ssize_t n, Py_ssize_t separator, Out *o) {
    Py_ssize_t value = separator + 1;
    while (value < n && (char_class[(unsigned char)s[value]] & C_LEADING))
        value++;
    if (value < n) {
        char buf[RULES_BUF];
        Out u = {buf, buf + sizeof(buf)};
        if (mask_unit(s + value, n - value, &u) < 0)
            return -1;
        if (u.p - buf != n - value || memcmp(buf, s + value, n - value) != 0)
            return put(o, s, value) < 0 ? -1 : put_mask(o);
    }
    return put(o, s, n);
}

/* _KEY_BEFORE_EQUALS, r"[^\W\d][\w.:\-\[\]]*", and _KEY_BEFORE_COLON, r"(?:[^\W\d]|[.\-])+". */
static int key_before_equals(const char *s, Py_ssize_t n) {
    if (n < 1 || !is_class(s, n, 0, C_WORD) || ascii_digit(s[0]))
        return 0;
    for (Py_ssize_t i = 1; i < n; i++)
        if (!is_class(s, n, i, C_WORD) && !in_set(".:-[]", s[i]))
            return 0;
    return 1;
}

static int key_before_colon(const char *s, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++)
        if (!is_class(s, n, i, C_LETTER) && s[i] != '_' && s[i] != '.' && s[i] != '-')
            return 0;
    return n > 0;
}

/* _mask_plain */
static int mask_plain(const char *s, Py_ssize_t n, Out *o) {
    const char *equals = memchr(s, '=', n);
    if (equals && equals > s && key_before_equals(s, equals - s))
        return mask_value(s, n, equals - s, o);
    const char *colon = memchr(s, ':', n);
    if (colon && colon > s) {
        Py_ssize_t c = colon - s;
        int slashes = c + 2 < n && s[c + 1] == '/' && s[c + 2] == '/';
        if (!slashes && key_before_colon(s, c) && !(memchr(s, '.', c) && is_hostname(s, c)))
            return mask_value(s, n, c, o);
    }
    return mask_unit(s, n, o);
}

/* _mask_token for a token whose core (start..end) holds no quote or backslash: 1 masked into
 * o, 0 not for these rules, -1 no room. */
static int mask_token_rules(const char *t, Py_ssize_t n, Py_ssize_t start, Py_ssize_t end, Out *o) {
    if (n > RULES_MAX_TOKEN)
        return 0;
    for (Py_ssize_t i = start; i < end; i++)
        if (t[i] == '"' || t[i] == '\'' || t[i] == '\\')
            return 0;
    if (put(o, t, start) < 0 || mask_plain(t + start, end - start, o) < 0 ||
        put(o, t + end, n - end) < 0)
        return -1;
    return 1;
}

/* _mask_token(token) for an ASCII token: its masked bytes written at out (room bytes free),
 * their count; -2 when they do not fit, -1 on error. A token no rule here settles is looked up
 * by shape (digits that are all masked away do not matter which they were) or as itself, and
 * on a miss masked by _mask_token and remembered where signature.py remembers it. */
static Py_ssize_t mask_ascii_token(const char *t, Py_ssize_t n, unsigned classes, char *out,
                                   Py_ssize_t room) {
    int digits = (classes & C_DIGIT) != 0;
    if (!may_vary(t, n, classes)) {
        if (n > room)
            return -2;
        memcpy(out, t, n);
        return n;
    }
    Py_ssize_t start = 0, end = n;
    while (end > 0 && char_class[(unsigned char)t[end - 1]] & C_TRAILING)
        end--;
    while (start < end && char_class[(unsigned char)t[start]] & C_LEADING)
        start++;
    if (number_like(t + start, end - start)) {
        Py_ssize_t length = start + mask_len + (n - end);
        if (length > room)
            return -2;
        memcpy(out, t, start);
        memcpy(out + start, mask_bytes, mask_len);
        memcpy(out + start + mask_len, t + end, n - end);
        return length;
    }
    char shape[256];
    int shaped = digits && n <= (Py_ssize_t)sizeof(shape);
    uint64_t shape_hash = 0;
    const TokenEntry *hit = NULL;
    if (shaped) {
        for (Py_ssize_t i = 0; i < n; i++)
            shape[i] = (t[i] >= '1' && t[i] <= '9') ? '0' : t[i];
        shape_hash = XXH3_64bits(shape, n);
        hit = token_memo_get(&shape_memo, shape, n, shape_hash);
    }
    uint64_t hash = 0;
    if (!hit) {
        hash = XXH3_64bits(t, n);
        hit = token_memo_get(&token_memo, t, n, hash);
    }
    if (hit) {
        if (hit->vn > room)
            return -2;
        memcpy(out, token_entry_data(hit) + hit->n, hit->vn);
        return hit->vn;
    }
    char ruled[RULES_BUF];
    Out o = {ruled, ruled + sizeof(ruled)};
    PyObject *masked = NULL;
    const char *m = ruled;
    Py_ssize_t length;
    if (mask_token_rules(t, n, start, end, &o) == 1) {
        length = o.p - ruled;
    } else {
        signature_token_misses++;
        PyObject *text = PyUnicode_FromStringAndSize(t, n);
        if (!text)
            return -1;
        masked = PyObject_CallOneArg(py_mask_token, text);
        Py_DECREF(text);
        if (!masked)
            return -1;
        if (!PyUnicode_Check(masked) || !PyUnicode_IS_ASCII(masked)) {
            Py_DECREF(masked);
            PyErr_SetString(PyExc_RuntimeError, "_mask_token gave a non-ASCII mask for ASCII");
            return -1;
        }
        m = (const char *)PyUnicode_DATA(masked);
        length = PyUnicode_GET_LENGTH(masked);
    }
    int status = 0;
    if (n <= memo_max_token_chars) {
        int keeps_digit = 0;
        for (Py_ssize_t i = 0; i < length && !keeps_digit; i++)
            keeps_digit = ascii_digit(m[i]);
        if (!digits || keeps_digit)
            status = token_memo_put(&token_memo, t, n, hash, m, length);
        else if (shaped)
            status = token_memo_put(&shape_memo, shape, n, shape_hash, m, length);
    }
    if (status == 0 && length <= room)
        memcpy(out, m, length);
    Py_XDECREF(masked);
    if (status < 0) {
        PyErr_NoMemory();
        return -1;
    }
    return length <= room ? length : -2;
}

/* Up to this many tokens are kept on the stack; a body with more takes the Python path. */
#define MAX_TOKENS 512

/* Longest template written into a caller's buffer; longer ones take the Python path. */
#define TEMPLATE_BUF 8192

/* A token's place in the template being written. */
typedef struct {
    int32_t at, n;
} Piece;

static inline int is_mask(const char *s, Py_ssize_t n) {
    return n == mask_len && memcmp(s, mask_bytes, mask_len) == 0;
}

/* signature.py's _mask_context_words over the written tokens, rewriting out: right to left, a
 * month or weekday before a token starting with a mask joins it, a unit after a mask joins it.
 * 1 done, 0 the template outgrew the buffer. */
static int mask_context_words(char *out, Py_ssize_t *written, Piece *pieces, Py_ssize_t count) {
    char copy[TEMPLATE_BUF];
    const char *text[MAX_TOKENS];
    Py_ssize_t lengths[MAX_TOKENS];
    memcpy(copy, out, *written);
    for (Py_ssize_t k = 0; k < count; k++) {
        text[k] = copy + pieces[k].at;
        lengths[k] = pieces[k].n;
    }
    for (Py_ssize_t i = count - 1; i >= 0; i--) {
        const ContextWord *c = context_word(text[i], lengths[i]);
        if (!c)
            continue;
        int joins = c->kind == CONTEXT_DATE
                        ? i + 1 < count && lengths[i + 1] >= mask_len &&
                              memcmp(text[i + 1], mask_bytes, mask_len) == 0
                        : i > 0 && is_mask(text[i - 1], lengths[i - 1]);
        if (joins) {
            text[i] = c->masked;
            lengths[i] = c->masked_n;
        }
    }
    char *p = out;
    for (Py_ssize_t k = 0; k < count; k++) {
        if (p - out + lengths[k] + (k > 0) > TEMPLATE_BUF)
            return 0;
        if (k)
            *p++ = ' ';
        memcpy(p, text[k], lengths[k]);
        p += lengths[k];
    }
    *written = p - out;
    return 1;
}

static inline int opens_single_quote_after(unsigned char c) {
    return ascii_space(c) || c == '=' || c == '(' || c == '[' || c == '{' || c == ',';
}

static inline int closes_single_quote_before(unsigned char c) {
    return ascii_space(c) || in_set(",.;:)]}!?", (char)c);
}

static int is_http_method(const char *s, Py_ssize_t n) {
    for (Py_ssize_t k = 0; k < http_method_count; k++)
        if (http_method_lengths[k] == n && memcmp(http_methods[k], s, n) == 0)
            return 1;
    return 0;
}

/* _mask_quoted for the quoted string q (quotes included), at out; the bytes written (never
 * more than n). */
static Py_ssize_t mask_quoted(const char *q, Py_ssize_t n, char *out) {
    Py_ssize_t first = 1, inner_end = n - 1;
    while (first < inner_end && ascii_space((unsigned char)q[first]))
        first++;
    Py_ssize_t word_end = first;
    while (word_end < inner_end && !ascii_space((unsigned char)q[word_end]))
        word_end++;
    Py_ssize_t rest = word_end;
    while (rest < inner_end && ascii_space((unsigned char)q[rest]))
        rest++;
    if (rest >= inner_end) { /* one word or none: it stays for the token rules */
        memcpy(out, q, n);
        return n;
    }
    Py_ssize_t length = 0;
    if (q[0] == '"' && is_http_method(q + first, word_end - first)) {
        length = word_end - first;
        memcpy(out, q + first, length);
        out[length++] = ' ';
    }
    memcpy(out + length, mask_bytes, mask_len);
    return length + mask_len;
}

/* One _QUOTED.sub(_mask_quoted, s) over ASCII, into out (never longer than s). A double quote
 * opens unless a backslash precedes it and honours backslash escapes; a single quote opens at
 * the start or after whitespace or "=([{," and closes at the next one if whitespace, one of
 * ",.;:)]}!?" or the end follows. */
static Py_ssize_t mask_quoted_once(const char *s, Py_ssize_t n, char *out) {
    char *p = out;
    Py_ssize_t i = 0;
    while (i < n) {
        char c = s[i];
        Py_ssize_t close = -1;
        if (c == '"' && !(i > 0 && s[i - 1] == '\\')) {
            for (Py_ssize_t q = i + 1; q < n; q++) {
                if (s[q] == '"') {
                    close = q;
                    break;
                }
                if (s[q] == '\\')
                    q++;
            }
        } else if (c == '\'' && (i == 0 || opens_single_quote_after((unsigned char)s[i - 1]))) {
            const char *q = memchr(s + i + 1, '\'', n - i - 1);
            if (q && (q + 1 == s + n || closes_single_quote_before((unsigned char)q[1])))
                close = q - s;
        }
        if (close < 0) {
            *p++ = c;
            i++;
            continue;
        }
        p += mask_quoted(s + i, close - i + 1, p);
        i = close + 1;
    }
    return p - out;
}

static inline int has_quote(const char *s, Py_ssize_t n) {
    return n > 0 && (memchr(s, '"', (size_t)n) || memchr(s, '\'', (size_t)n));
}

/* _mask_quoted_strings for ASCII: rounds until nothing pairs up, at most _MAX_QUOTING_ROUNDS,
 * alternating between the two buffers (n bytes each); *result points at the masked text. */
static Py_ssize_t mask_quoted_strings(const char *s, Py_ssize_t n, char *a, char *b,
                                      const char **result) {
    char *buffers[2] = {a, b};
    for (Py_ssize_t round = 0; round < max_quoting_rounds; round++) {
        char *out = buffers[round & 1];
        Py_ssize_t m = mask_quoted_once(s, n, out);
        if ((m == n && memcmp(out, s, n) == 0) || !has_quote(out, m)) {
            *result = out;
            return m;
        }
        s = out;
        n = m;
    }
    *result = s;
    return n;
}

/* template_of_text for an ASCII body, into out (TEMPLATE_BUF bytes): 1 written (*written
 * bytes), 0 not for this path (no exception), -1 error. */
static int template_ascii_into(const char *s, Py_ssize_t n, Py_ssize_t max_chars, char *out,
                               Py_ssize_t *written) {
    if (n > max_chars)
        n = max_chars;
    Py_ssize_t first = 0;
    while (first < n && ascii_space((unsigned char)s[first]))
        first++;
    if (first < n && s[first] == '{')
        return 0; /* JSON shapes */
    char quoting[2][TEMPLATE_BUF];
    if (has_quote(s, n)) {
        if (n > TEMPLATE_BUF)
            return 0;
        n = mask_quoted_strings(s, n, quoting[0], quoting[1], &s);
        for (first = 0; first < n && ascii_space((unsigned char)s[first]);)
            first++;
    }
    Piece pieces[MAX_TOKENS];
    Py_ssize_t count = 0;
    int context = 0;
    char *p = out, *end = out + TEMPLATE_BUF;
    for (Py_ssize_t i = first; i < n;) {
        Py_ssize_t start = i;
        unsigned classes = 0; /* of the token's bytes, for may_vary */
        for (; i < n; i++) {
            unsigned c = char_class[(unsigned char)s[i]];
            if (c & C_SPACE)
                break;
            classes |= c;
        }
        if (count == MAX_TOKENS || (count && p == end))
            return 0; /* the Python path */
        if (count)
            *p++ = ' ';
        Py_ssize_t length = mask_ascii_token(s + start, i - start, classes, p, end - p);
        if (length < 0)
            return length == -1 ? -1 : 0;
        pieces[count].at = (int32_t)(p - out);
        pieces[count].n = (int32_t)length;
        count++;
        context = context || context_word(p, length);
        p += length;
        while (i < n && ascii_space((unsigned char)s[i]))
            i++;
    }
    *written = p - out;
    return context ? mask_context_words(out, written, pieces, count) : 1;
}

static PyObject *ascii_str(const char *s, Py_ssize_t n) {
    PyObject *str = PyUnicode_New(n, 127);
    if (str)
        memcpy(PyUnicode_DATA(str), s, n);
    return str;
}

/* template_of_text for an ASCII body; NULL with no exception set: not for this path. */
static PyObject *template_ascii(const char *s, Py_ssize_t n, Py_ssize_t max_chars) {
    char buf[TEMPLATE_BUF];
    Py_ssize_t written;
    int status = template_ascii_into(s, n, max_chars, buf, &written);
    return status == 1 ? ascii_str(buf, written) : NULL;
}

/* template_of_text for any text, the Python function doing what this path does not. */
static PyObject *template_of_text_utf8(const char *s, Py_ssize_t n, Py_ssize_t max_chars,
                                       PyObject *text) {
    if (all_ascii((const uint8_t *)s, n)) {
        PyObject *result = template_ascii(s, n, max_chars);
        if (result || PyErr_Occurred())
            return result;
    }
    signature_fallbacks++;
    PyObject *owned = NULL;
    if (!text) {
        text = owned = PyUnicode_DecodeUTF8(s, n, "strict");
        if (!text)
            return NULL;
    }
    PyObject *limit = PyLong_FromSsize_t(max_chars);
    PyObject *result =
        limit ? PyObject_CallFunctionObjArgs(py_template_of_text, text, limit, NULL) : NULL;
    Py_XDECREF(limit);
    Py_XDECREF(owned);
    return result;
}

/* template_of_text(text, max_chars) -> str: the same template as text/signature.py's. */
static PyObject *native_template_of_text(PyObject *self, PyObject *const *args,
                                         Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 2 || !PyUnicode_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "template_of_text(text: str, max_chars: int = ...)");
        return NULL;
    }
    PyObject *text = args[0];
    Py_ssize_t max_chars = default_max_body_chars;
    if (nargs == 2 && (max_chars = PyLong_AsSsize_t(args[1])) == -1 && PyErr_Occurred())
        return NULL;
    if (PyUnicode_IS_ASCII(text))
        return template_of_text_utf8((const char *)PyUnicode_DATA(text),
                                     PyUnicode_GET_LENGTH(text), max_chars, text);
    signature_fallbacks++;
    return PyObject_Vectorcall(py_template_of_text, args, nargs, NULL);
}

/* How often the Python signature was asked: (bodies, token memo misses). */
static PyObject *native_signature_calls(PyObject *self, PyObject *unused) {
    return Py_BuildValue("(KK)", signature_fallbacks, signature_token_misses);
}

/* Empty the token memos, as a fresh process starts (the benchmark's cold passes). */
static PyObject *native_clear_memos(PyObject *self, PyObject *unused) {
    token_memo_clear(&token_memo);
    token_memo_clear(&shape_memo);
    Py_RETURN_NONE;
}

static int fill_char_class(uint16_t bit, PyObject *chars) {
    Py_ssize_t n;
    const char *s = chars ? PyUnicode_AsUTF8AndSize(chars, &n) : NULL;
    if (!s)
        return -1;
    if (!PyUnicode_IS_ASCII(chars)) {
        PyErr_SetString(PyExc_RuntimeError, "signature.py's strip characters must be ASCII");
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++)
        char_class[(unsigned char)s[i]] |= bit;
    return 0;
}

/* Copies the short words of a signature.py table (_HTTP_METHODS, _TOP_LEVEL_DOMAINS) into a
 * fixed C table of `max` words under 16 bytes; -1 with an error naming `name` if it outgrew it. */
static int fill_short_words(PyObject *words, char (*table)[16], Py_ssize_t *lengths,
                            Py_ssize_t *count, Py_ssize_t max, const char *name) {
    PyObject *iterator = words ? PyObject_GetIter(words) : NULL, *word;
    if (!iterator)
        return -1;
    while ((word = PyIter_Next(iterator))) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(word, &n);
        int fits = s && *count < max && n < 16;
        if (fits) {
            memcpy(table[*count], s, n);
            lengths[(*count)++] = n;
        }
        Py_DECREF(word);
        if (!fits) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_RuntimeError, "%s outgrew the compiled table", name);
            Py_DECREF(iterator);
            return -1;
        }
    }
    Py_DECREF(iterator);
    return PyErr_Occurred() ? -1 : 0;
}

/* Each ASCII word of words with the form _mask_context_words gives it: a date word in front of
 * a mask ([word, MASK]), a unit after one ([MASK, word]). */
static int fill_context_words(PyObject *words, int kind, PyObject *mask_words, PyObject *mask) {
    PyObject *iterator = words ? PyObject_GetIter(words) : NULL, *word;
    if (!iterator)
        return -1;
    int status = 0;
    while (status == 0 && (word = PyIter_Next(iterator))) {
        Py_ssize_t n, masked_n;
        const char *s = PyUnicode_AsUTF8AndSize(word, &n);
        PyObject *tokens = NULL;
        status = -1;
        if (!s || !PyUnicode_IS_ASCII(word)) {
            status = s ? 0 : -1; /* not one of this path's words */
        } else if (n > 8) {
            PyErr_SetString(PyExc_RuntimeError, "a context word outgrew the compiled table");
        } else if ((tokens = PyList_New(2))) {
            PyList_SET_ITEM(tokens, kind == CONTEXT_DATE ? 0 : 1, Py_NewRef(word));
            PyList_SET_ITEM(tokens, kind == CONTEXT_DATE ? 1 : 0, Py_NewRef(mask));
            PyObject *done = PyObject_CallOneArg(mask_words, tokens);
            PyObject *masked = PyList_GET_ITEM(tokens, kind == CONTEXT_DATE ? 0 : 1);
            const char *m = done ? PyUnicode_AsUTF8AndSize(masked, &masked_n) : NULL;
            if (m && masked_n < 16) {
                uint64_t packed = packed_word(s, n);
                size_t i = context_slot(packed, n);
                while (context_words[i].kind)
                    i = (i + 1) & (CONTEXT_SLOTS - 1);
                ContextWord *c = &context_words[i];
                c->word = packed;
                c->n = (uint8_t)n;
                c->kind = (uint8_t)kind;
                c->masked_n = (uint8_t)masked_n;
                memcpy(c->masked, m, masked_n);
                if (n > context_max_chars)
                    context_max_chars = n;
                status = 0;
            } else if (m) {
                PyErr_SetString(PyExc_RuntimeError, "a masked context word outgrew its slot");
            }
            Py_XDECREF(done);
        }
        Py_XDECREF(tokens);
        Py_DECREF(word);
    }
    Py_DECREF(iterator);
    return status < 0 || PyErr_Occurred() ? -1 : 0;
}

static Py_ssize_t module_int(PyObject *module, const char *name) {
    PyObject *value = PyObject_GetAttrString(module, name);
    Py_ssize_t result = value ? PyLong_AsSsize_t(value) : -1;
    Py_XDECREF(value);
    return result;
}

static int signature_tables(PyObject *module) {
    PyObject *mask = PyObject_GetAttrString(module, "MASK");
    const char *m = mask ? PyUnicode_AsUTF8AndSize(mask, &mask_len) : NULL;
    if (m && (!PyUnicode_IS_ASCII(mask) || mask_len > (Py_ssize_t)sizeof(mask_bytes))) {
        PyErr_SetString(PyExc_RuntimeError, "signature.MASK must be short ASCII");
        m = NULL;
    }
    if (m)
        memcpy(mask_bytes, m, mask_len);
    PyObject *leading = PyObject_GetAttrString(module, "_LEADING");
    PyObject *trailing = PyObject_GetAttrString(module, "_TRAILING");
    PyObject *methods = PyObject_GetAttrString(module, "_HTTP_METHODS");
    PyObject *dates = PyObject_GetAttrString(module, "_DATE_WORDS");
    PyObject *units = PyObject_GetAttrString(module, "_UNITS");
    PyObject *mask_words = PyObject_GetAttrString(module, "_mask_context_words");
    PyObject *domains = PyObject_GetAttrString(module, "_TOP_LEVEL_DOMAINS");
    fill_char_classes();
    int status = m && fill_char_class(C_LEADING, leading) == 0 &&
                         fill_char_class(C_TRAILING, trailing) == 0 &&
                         fill_short_words(methods, http_methods, http_method_lengths, &http_method_count,
                                          MAX_HTTP_METHODS, "_HTTP_METHODS") == 0 &&
                         fill_short_words(domains, top_level_domains, top_level_domain_lengths,
                                          &top_level_domain_count, MAX_TOP_LEVEL_DOMAINS,
                                          "_TOP_LEVEL_DOMAINS") == 0 &&
                         mask_words &&
                         fill_context_words(dates, CONTEXT_DATE, mask_words, mask) == 0 &&
                         fill_context_words(units, CONTEXT_UNIT, mask_words, mask) == 0
                     ? 0
                     : -1;
    Py_XDECREF(mask);
    Py_XDECREF(leading);
    Py_XDECREF(trailing);
    Py_XDECREF(methods);
    Py_XDECREF(dates);
    Py_XDECREF(units);
    Py_XDECREF(mask_words);
    Py_XDECREF(domains);
    return status;
}

static int signature_init(void) {
    PyObject *module = PyImport_ImportModule("lipservice_otel.text.signature");
    if (!module)
        return -1;
    py_mask_token = PyObject_GetAttrString(module, "_mask_token");
    py_template_of_text = PyObject_GetAttrString(module, "template_of_text");
    memo_max_entries = module_int(module, "_MEMO_MAX_ENTRIES");
    memo_max_token_chars = module_int(module, "_MEMO_MAX_TOKEN_CHARS");
    max_quoting_rounds = module_int(module, "_MAX_QUOTING_ROUNDS");
    default_max_body_chars = module_int(module, "DEFAULT_MAX_BODY_CHARS");
    int status = py_mask_token && py_template_of_text && !PyErr_Occurred()
                     ? signature_tables(module)
                     : -1;
    Py_DECREF(module);
    if (status < 0)
        return -1;
    if (token_memo_init(&token_memo, memo_max_entries) < 0 ||
        token_memo_init(&shape_memo, memo_max_entries) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * The error-context store: error_context.py's ErrorContext, the same operations in C
 * ---------------------------------------------------------------------------------------- */

/* Remembering runs for most dropped records with a trace id: in Python that is a tuple, a
 * deque append and a dict update each, plus the garbage collector's passes over them, more
 * than the rest of a record's work. This is the same store with the same API (the Python
 * sampler uses it too under the compiled implementation, and tests/unit/sampling holds the
 * two to the same results), its entries plain C structs. */

#define ENTRY_OVERHEAD_BYTES 200 /* error_context.ENTRY_OVERHEAD_BYTES (a test compares) */

typedef struct Entry {
    uint8_t trace[16];
    double at;
    PyObject *origin, *record;
    struct Entry *next; /* the window queue, oldest first */
} Entry;

typedef struct {
    uint8_t trace[16];
    Entry **items; /* the trace's last entries, oldest first: a ring of cap */
    Py_ssize_t first, count, cap;
} TraceList;

#define SLOT_EMPTY NULL
static TraceList TOMBSTONE;

typedef struct {
    PyObject_HEAD
    double window_s, hot_ttl_s;
    Py_ssize_t max_bytes, max_hot, max_per_trace, bytes;
    Entry *head, *tail;
    TraceList **traces; /* open addressing by trace id; &TOMBSTONE where one was removed */
    size_t mask;
    Py_ssize_t used, dead;
    PyObject *hot; /* collections.OrderedDict: trace id -> until, as error_context.py */
} Context;

static PyTypeObject ContextType;

static inline uint64_t trace_hash(const uint8_t *trace) { return XXH3_64bits(trace, 16); }

static TraceList **trace_find(Context *c, const uint8_t *trace) {
    for (size_t i = trace_hash(trace) & c->mask;; i = (i + 1) & c->mask) {
        TraceList *t = c->traces[i];
        if (t == SLOT_EMPTY)
            return &c->traces[i];
        if (t != &TOMBSTONE && memcmp(t->trace, trace, 16) == 0)
            return &c->traces[i];
    }
}

static int traces_rehash(Context *c, size_t size) {
    TraceList **items = PyMem_Calloc(size, sizeof(TraceList *));
    if (!items)
        return -1;
    for (size_t i = 0; c->traces && i <= c->mask; i++) {
        TraceList *t = c->traces[i];
        if (t == SLOT_EMPTY || t == &TOMBSTONE)
            continue;
        size_t j = trace_hash(t->trace) & (size - 1);
        while (items[j])
            j = (j + 1) & (size - 1);
        items[j] = t;
    }
    PyMem_Free(c->traces);
    c->traces = items;
    c->mask = size - 1;
    c->dead = 0;
    return 0;
}

static void trace_remove(Context *c, TraceList **where) {
    PyMem_Free((*where)->items);
    PyMem_Free(*where);
    *where = &TOMBSTONE;
    c->used--;
    c->dead++;
}

static void entry_free(Entry *e) {
    Py_DECREF(e->origin);
    Py_DECREF(e->record);
    PyMem_Free(e);
}

static void context_evict(Context *c, double now) {
    double oldest_allowed = now - c->window_s;
    while (c->head && (c->head->at < oldest_allowed || c->bytes > c->max_bytes)) {
        Entry *old = c->head;
        c->head = old->next;
        if (!c->head)
            c->tail = NULL;
        c->bytes -= PyBytes_GET_SIZE(old->record) + ENTRY_OVERHEAD_BYTES;
        TraceList **where = trace_find(c, old->trace);
        TraceList *same = *where;
        if (same != SLOT_EMPTY && same->items[same->first] == old) {
            if (same->count == 1) {
                trace_remove(c, where);
            } else {
                same->first = (same->first + 1) % same->cap;
                same->count--;
            }
        }
        entry_free(old);
    }
}

static int context_remember(Context *c, const uint8_t *trace, double at, PyObject *origin,
                            PyObject *record) {
    Entry *e = PyMem_Malloc(sizeof(Entry));
    if (!e)
        return -1;
    memcpy(e->trace, trace, 16);
    e->at = at;
    e->origin = Py_NewRef(origin);
    e->record = Py_NewRef(record);
    e->next = NULL;
    if (c->tail)
        c->tail->next = e;
    else
        c->head = e;
    c->tail = e;
    if ((size_t)(c->used + c->dead + 1) * 2 > c->mask + 1 &&
        traces_rehash(c, (size_t)(c->used + 1) * 4 > c->mask + 1 ? (c->mask + 1) * 2
                                                                    : c->mask + 1) < 0)
        return -1;
    TraceList **where = trace_find(c, trace);
    TraceList *same = *where;
    if (same == SLOT_EMPTY) {
        same = PyMem_Calloc(1, sizeof(TraceList));
        if (!same)
            return -1;
        memcpy(same->trace, trace, 16);
        *where = same;
        c->used++;
    }
    if (same->count == c->max_per_trace) {
        /* the trace's oldest gives way; it waits in the window queue to be discarded */
        same->first = (same->first + 1) % same->cap;
        same->count--;
    }
    if (same->count == same->cap) {
        Py_ssize_t cap = same->cap ? same->cap * 2 : 4;
        if (cap > c->max_per_trace)
            cap = c->max_per_trace;
        Entry **items = PyMem_Malloc(cap * sizeof(Entry *));
        if (!items)
            return -1;
        for (Py_ssize_t i = 0; i < same->count; i++)
            items[i] = same->items[(same->first + i) % same->cap];
        PyMem_Free(same->items);
        same->items = items;
        same->first = 0;
        same->cap = cap;
    }
    same->items[(same->first + same->count) % same->cap] = e;
    same->count++;
    c->bytes += PyBytes_GET_SIZE(record) + ENTRY_OVERHEAD_BYTES;
    if (c->bytes > c->max_bytes || c->head->at < at - c->window_s)
        context_evict(c, at);
    return 0;
}

/* 1 hot, 0 not, -1 error; an expired mark is dropped as is_hot() drops it. */
static int context_is_hot(Context *c, PyObject *trace_id, double now) {
    if (!PyDict_GET_SIZE(c->hot))
        return 0;
    PyObject *until = PyDict_GetItemWithError(c->hot, trace_id);
    if (!until)
        return PyErr_Occurred() ? -1 : 0;
    double value = PyFloat_AsDouble(until);
    if (value == -1.0 && PyErr_Occurred())
        return -1;
    if (value < now)
        return PyObject_DelItem(c->hot, trace_id) < 0 ? -1 : 0;
    return 1;
}

static PyObject *context_recall(Context *c, PyObject *trace_id, double now) {
    PyObject *until = PyFloat_FromDouble(now + c->hot_ttl_s);
    if (!until || PyObject_SetItem(c->hot, trace_id, until) < 0) {
        Py_XDECREF(until);
        return NULL;
    }
    Py_DECREF(until);
    PyObject *moved = PyObject_CallMethod(c->hot, "move_to_end", "O", trace_id);
    if (!moved)
        return NULL;
    Py_DECREF(moved);
    while (PyObject_Length(c->hot) > c->max_hot) {
        PyObject *popped = PyObject_CallMethod(c->hot, "popitem", "O", Py_False);
        if (!popped)
            return NULL;
        Py_DECREF(popped);
    }
    const uint8_t *trace = (const uint8_t *)PyBytes_AS_STRING(trace_id);
    TraceList **where = trace_find(c, trace);
    TraceList *same = *where;
    Entry **recalled = NULL;
    Py_ssize_t n = 0;
    if (same != SLOT_EMPTY) {
        n = same->count;
        recalled = PyMem_Malloc((n ? n : 1) * sizeof(Entry *));
        if (!recalled)
            return PyErr_NoMemory();
        for (Py_ssize_t i = 0; i < n; i++)
            recalled[i] = same->items[(same->first + i) % same->cap];
        trace_remove(c, where);
    }
    /* Tuples made before evicting: an entry recalled may leave the window queue now. */
    PyObject *out = PyList_New(0);
    for (Py_ssize_t i = 0; out && i < n; i++) {
        Entry *e = recalled[i];
        PyObject *item = Py_BuildValue("(y#dOO)", (const char *)e->trace, (Py_ssize_t)16, e->at,
                                       e->origin, e->record);
        if (!item || PyList_Append(out, item) < 0)
            Py_CLEAR(out);
        Py_XDECREF(item);
    }
    PyMem_Free(recalled);
    if (!out)
        return NULL;
    context_evict(c, now);
    double oldest = now - c->window_s;
    PyObject *kept = PyList_New(0);
    for (Py_ssize_t i = 0; kept && i < PyList_GET_SIZE(out); i++) {
        PyObject *item = PyList_GET_ITEM(out, i);
        if (PyFloat_AS_DOUBLE(PyTuple_GET_ITEM(item, 1)) >= oldest && PyList_Append(kept, item) < 0)
            Py_CLEAR(kept);
    }
    Py_DECREF(out);
    return kept;
}

static int trace_arg(PyObject *trace_id) {
    if (!PyBytes_Check(trace_id) || PyBytes_GET_SIZE(trace_id) != 16) {
        PyErr_SetString(PyExc_ValueError, "trace ids are 16 bytes");
        return -1;
    }
    return 0;
}

static int context_init(Context *self, PyObject *args, PyObject *kwargs) {
    if (!PyArg_ParseTuple(args, "dndnn", &self->window_s, &self->max_bytes, &self->hot_ttl_s,
                          &self->max_hot, &self->max_per_trace))
        return -1;
    if (self->max_per_trace < 1) {
        PyErr_SetString(PyExc_ValueError, "max_records_per_trace must be >= 1");
        return -1;
    }
    PyObject *collections = PyImport_ImportModule("collections");
    if (!collections)
        return -1;
    Py_XSETREF(self->hot, PyObject_CallMethod(collections, "OrderedDict", NULL));
    Py_DECREF(collections);
    if (!self->hot || traces_rehash(self, 1024) < 0)
        return -1;
    return 0;
}

static void context_dealloc(Context *self) {
    while (self->head) {
        Entry *e = self->head;
        self->head = e->next;
        entry_free(e);
    }
    for (size_t i = 0; self->traces && i <= self->mask; i++) {
        TraceList *t = self->traces[i];
        if (t != SLOT_EMPTY && t != &TOMBSTONE) {
            PyMem_Free(t->items);
            PyMem_Free(t);
        }
    }
    PyMem_Free(self->traces);
    Py_XDECREF(self->hot);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *py_context_remember(Context *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4 || trace_arg(args[0]) < 0 || !PyBytes_Check(args[3])) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "remember(trace_id, at, origin, record: bytes)");
        return NULL;
    }
    double at = PyFloat_AsDouble(args[1]);
    if (at == -1.0 && PyErr_Occurred())
        return NULL;
    if (context_remember(self, (const uint8_t *)PyBytes_AS_STRING(args[0]), at, args[2],
                         args[3]) < 0)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *py_context_recall(Context *self, PyObject *const *args, Py_ssize_t nargs) {
    double now;
    if (nargs != 2 || trace_arg(args[0]) < 0 ||
        ((now = PyFloat_AsDouble(args[1])) == -1.0 && PyErr_Occurred()))
        return NULL;
    return context_recall(self, args[0], now);
}

static PyObject *py_context_is_hot(Context *self, PyObject *const *args, Py_ssize_t nargs) {
    double now;
    if (nargs != 2 || trace_arg(args[0]) < 0 ||
        ((now = PyFloat_AsDouble(args[1])) == -1.0 && PyErr_Occurred()))
        return NULL;
    int hot = context_is_hot(self, args[0], now);
    if (hot < 0)
        return NULL;
    return PyBool_FromLong(hot);
}

static PyObject *py_context_give_back(Context *self, PyObject *entries) {
    PyObject *iterator = PyObject_GetIter(entries), *entry;
    if (!iterator)
        return NULL;
    while ((entry = PyIter_Next(iterator))) {
        PyObject *trace_id, *origin, *record;
        double at;
        int ok = PyArg_ParseTuple(entry, "SdOS", &trace_id, &at, &origin, &record) &&
                 trace_arg(trace_id) == 0 &&
                 context_remember(self, (const uint8_t *)PyBytes_AS_STRING(trace_id), at, origin,
                                  record) == 0;
        Py_DECREF(entry);
        if (!ok) {
            Py_DECREF(iterator);
            return PyErr_Occurred() ? NULL : PyErr_NoMemory();
        }
    }
    Py_DECREF(iterator);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *context_bytes_held(Context *self, void *closure) {
    return PyLong_FromSsize_t(self->bytes);
}

static PyMethodDef context_methods[] = {
    {"remember", (PyCFunction)(void (*)(void))py_context_remember, METH_FASTCALL,
     "remember(trace_id, at, origin, record)"},
    {"recall", (PyCFunction)(void (*)(void))py_context_recall, METH_FASTCALL,
     "recall(trace_id, now) -> the trace's remembered entries; the trace becomes hot"},
    {"is_hot", (PyCFunction)(void (*)(void))py_context_is_hot, METH_FASTCALL,
     "is_hot(trace_id, now) -> bool"},
    {"give_back", (PyCFunction)py_context_give_back, METH_O, "give_back(entries)"},
    {NULL},
};

static PyGetSetDef context_getset[] = {
    {"bytes_held", (getter)context_bytes_held, NULL, "Bytes counted against max_bytes.", NULL},
    {NULL},
};

static PyTypeObject ContextType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "lipservice_otel.sampling._native.ErrorContext",
    .tp_basicsize = sizeof(Context),
    .tp_dealloc = (destructor)context_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)context_init,
    .tp_methods = context_methods,
    .tp_getset = context_getset,
};

/* ------------------------------------------------------------------------------------------
 * The decision and the splice: sampler.py's _sample_scope, over a walked request
 * ---------------------------------------------------------------------------------------- */

#define SEED_STEP 0x9E3779B97F4A7C15ULL
#define DISCARD_BITS 8 /* 64 - RANDOMNESS_BITS */

/* What one (service, template, severity) needs per record under the current policy: the
 * Python side computes it (CompiledSampler._native_slot) the first time the key is seen; its
 * annotation bytes (what annotate() writes on a record without our keys) are made here. */
typedef struct {
    Py_hash_t hash;
    PyObject *tenant, *service, *template; /* the key, with severity */
    const char *template_p;       /* the template's UTF-8, owned by template */
    Py_ssize_t template_n;
    int32_t severity;
    PyObject *signature_id, *pattern_id, *reason, *annotation;
    /* shadow mode's, for a record of the rule's reason: [would_keep], made on first use */
    PyObject *shadow_annotation[2];
    uint64_t threshold;
    double rate, burst_limit, template_limit;
    int known, baseline;
    PyObject *fallback[2]; /* (threshold, rate, reason) by bool(severity_number), or NULL */
    PyObject *counts;      /* PatternCounts of this interval, NULL until asked */
    /* this request; bytes: the records' encoded sizes as received (their spans) */
    Py_ssize_t received, kept, first;
    long long received_bytes, kept_bytes;
    int touched;
} Slot;

typedef struct {
    Slot **items; /* open addressing; NULL: empty */
    size_t mask;
    Py_ssize_t used, cap;
} SlotTable;

typedef struct {
    PyObject *reason;
    Py_ssize_t kept, dropped;
} ReasonCount;

typedef struct {
    PyObject_HEAD
    Py_ssize_t max_body_chars, max_attributes, max_body_bytes;
    int infer;
    PyObject *make_slot, *make_fallback, *make_counts, *infer_severity, *template_of_value;
    PyObject *note_pattern, *unknown_service, *empty;
    PyObject *tenant_attribute; /* bytes: the resource attribute naming the tenant, or b"" */
    PyObject *tenant_of;        /* (value or None, records) -> the tenant name to count under */
    SlotTable slots;
    Memo bodies, structured;
    /* Bodies are remembered on their second sight: most hold a value seen once, and copying
     * each into the memo only to clear it later costs more than the memo saves. */
    uint64_t seen[1 << 16];
    /* records that needed a Python call (a structured body's template, a severity to infer,
     * an exemption's regex) */
    unsigned long long to_python;
    /* the policy's exemptions, in its order (set_exemptions) */
    struct Exempt *exempts;
    Py_ssize_t nexempts;
    int record_exempts, resource_exempts; /* how many of each kind */
} Engine;

static void slot_free(Slot *slot) {
    Py_XDECREF(slot->tenant);
    Py_XDECREF(slot->service);
    Py_XDECREF(slot->template);
    Py_XDECREF(slot->signature_id);
    Py_XDECREF(slot->pattern_id);
    Py_XDECREF(slot->reason);
    Py_XDECREF(slot->annotation);
    Py_XDECREF(slot->shadow_annotation[0]);
    Py_XDECREF(slot->shadow_annotation[1]);
    Py_XDECREF(slot->fallback[0]);
    Py_XDECREF(slot->fallback[1]);
    Py_XDECREF(slot->counts);
    PyMem_Free(slot);
}

static void slots_clear(SlotTable *t) {
    if (!t->items)
        return;
    for (size_t i = 0; i <= t->mask; i++)
        if (t->items[i]) {
            slot_free(t->items[i]);
            t->items[i] = NULL;
        }
    t->used = 0;
}

static int slots_resize(SlotTable *t, size_t size) {
    Slot **items = PyMem_Calloc(size, sizeof(Slot *));
    if (!items)
        return -1;
    if (t->items) {
        for (size_t i = 0; i <= t->mask; i++) {
            Slot *slot = t->items[i];
            if (!slot)
                continue;
            size_t j = (size_t)slot->hash & (size - 1);
            while (items[j])
                j = (j + 1) & (size - 1);
            items[j] = slot;
        }
        PyMem_Free(t->items);
    }
    t->items = items;
    t->mask = size - 1;
    return 0;
}

/* A record's template: its bytes (UTF-8), in a buffer of the caller's or in obj's. */
typedef struct {
    const char *p;
    Py_ssize_t n;
    PyObject *obj; /* a new reference, or NULL while the bytes are only in the buffer */
} Template;

static inline Py_hash_t slot_hash(Py_hash_t tenant, Py_hash_t service, const Template *t,
                                  int32_t severity) {
    Py_uhash_t h = (Py_uhash_t)XXH3_64bits(t->p, t->n);
    h = (h ^ (Py_uhash_t)service) * 1000003u ^ (Py_uhash_t)(uint32_t)severity;
    h = (h ^ (Py_uhash_t)tenant) * 1000003u;
    return (Py_hash_t)(h == (Py_uhash_t)-1 ? 7 : h);
}

static inline int same_str(PyObject *a, PyObject *b) {
    return a == b || (PyUnicode_GET_LENGTH(a) == PyUnicode_GET_LENGTH(b) &&
                      PyUnicode_Compare(a, b) == 0);
}

static int as_threshold(PyObject *value, uint64_t *out) {
    unsigned long long v = PyLong_AsUnsignedLongLong(value);
    if (v == (unsigned long long)-1 && PyErr_Occurred())
        return -1;
    *out = v;
    return 0;
}

/* The slot of a key, made by the Python side on a miss (a never-seen key: rare). */
static Slot *slot_for(Engine *e, PyObject *tenant, Py_hash_t tenant_hash, PyObject *service,
                      Py_hash_t service_hash, Template *t, int32_t severity) {
    SlotTable *table = &e->slots;
    Py_hash_t hash = slot_hash(tenant_hash, service_hash, t, severity);
    for (size_t i = (size_t)hash & table->mask;; i = (i + 1) & table->mask) {
        Slot *slot = table->items[i];
        if (!slot)
            break;
        if (slot->hash == hash && slot->severity == severity && slot->template_n == t->n &&
            memcmp(slot->template_p, t->p, t->n) == 0 && same_str(slot->service, service) &&
            same_str(slot->tenant, tenant))
            return slot;
    }
    /* Grown, never cleared inside a request: records walked earlier point at their slots. */
    if ((size_t)(table->used + 1) * 2 > table->mask + 1 &&
        slots_resize(table, (table->mask + 1) * 2) < 0) {
        PyErr_NoMemory();
        return NULL;
    }
    PyObject *template = t->obj ? Py_NewRef(t->obj) : ascii_str(t->p, t->n);
    if (!template)
        return NULL;
    PyObject *made =
        PyObject_CallFunction(e->make_slot, "OOiO", service, template, (int)severity, tenant);
    Slot *slot = made ? PyMem_Calloc(1, sizeof(Slot)) : NULL;
    if (!slot) {
        Py_DECREF(template);
        Py_XDECREF(made);
        return made ? (Slot *)PyErr_NoMemory() : NULL;
    }
    PyObject *threshold;
    int known, baseline;
    if (!PyArg_ParseTuple(made, "OOOdOppdd", &slot->signature_id, &slot->pattern_id, &threshold,
                          &slot->rate, &slot->reason, &known, &baseline, &slot->burst_limit,
                          &slot->template_limit) ||
        as_threshold(threshold, &slot->threshold) < 0) {
        Py_DECREF(made);
        Py_DECREF(template);
        PyMem_Free(slot);
        return NULL;
    }
    Py_INCREF(slot->signature_id);
    Py_INCREF(slot->pattern_id);
    Py_INCREF(slot->reason);
    Py_DECREF(made);
    slot->known = known;
    slot->baseline = baseline;
    slot->hash = hash;
    slot->tenant = Py_NewRef(tenant);
    slot->service = Py_NewRef(service);
    slot->template = template;
    slot->template_p = PyUnicode_AsUTF8AndSize(template, &slot->template_n);
    slot->severity = severity;
    size_t i = (size_t)hash & table->mask;
    while (table->items[i])
        i = (i + 1) & table->mask;
    table->items[i] = slot;
    table->used++;
    if (!slot->template_p)
        return NULL; /* the slot is in the table and freed with it */
    return slot;
}

/* Per record of the walked request, beside its Record. */
typedef struct {
    Slot *slot;
    int32_t severity; /* inferred when the record has none */
    PyObject *service; /* borrowed from the request's list */
} Decided;

typedef struct {
    PyObject_HEAD
    PyObject *payload;
    Py_buffer view;
    Walk walk;
    /* Why the Python sampler must take this request (NULL: it need not). */
    const char *to_python;
} Walked;

static void walked_dealloc(Walked *self) {
    walk_free(&self->walk);
    if (self->payload)
        PyBuffer_Release(&self->view);
    Py_XDECREF(self->payload);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *walked_records(Walked *self, void *closure) {
    return PyLong_FromSsize_t(self->walk.nrecords);
}

static PyObject *walked_to_python(Walked *self, void *closure) {
    if (!self->to_python)
        Py_RETURN_NONE;
    return PyUnicode_FromString(self->to_python);
}

static PyGetSetDef walked_getset[] = {
    {"records", (getter)walked_records, NULL, "Log records in the request.", NULL},
    {"to_python", (getter)walked_to_python, NULL,
     "Why the Python sampler must take this request, or None.", NULL},
    {NULL},
};

static PyTypeObject WalkedType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "lipservice_otel.sampling._native.Walked",
    .tp_basicsize = sizeof(Walked),
    .tp_dealloc = (destructor)walked_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_getset = walked_getset,
};

static int engine_init(Engine *self, PyObject *args, PyObject *kwargs) {
    static char *names[] = {"max_body_chars", "max_attributes", "cache_size", "slot_cap",
                            "infer", "make_slot", "make_fallback", "make_counts",
                            "infer_severity", "template_of_value", "note_pattern",
                            "unknown_service", "tenant_attribute", "tenant_of", NULL};
    Py_ssize_t cache_size, slot_cap;
    int infer;
    PyObject *make_slot, *make_fallback, *make_counts, *infer_severity, *template_of_value,
        *note_pattern, *unknown_service, *tenant_attribute, *tenant_of;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "nnnnpOOOOOOUSO", names,
                                     &self->max_body_chars, &self->max_attributes, &cache_size,
                                     &slot_cap, &infer, &make_slot, &make_fallback, &make_counts,
                                     &infer_severity, &template_of_value, &note_pattern,
                                     &unknown_service, &tenant_attribute, &tenant_of))
        return -1;
    Py_XSETREF(self->tenant_attribute, Py_NewRef(tenant_attribute));
    Py_XSETREF(self->tenant_of, Py_NewRef(tenant_of));
    self->infer = infer;
    Py_XSETREF(self->make_slot, Py_NewRef(make_slot));
    Py_XSETREF(self->make_fallback, Py_NewRef(make_fallback));
    Py_XSETREF(self->make_counts, Py_NewRef(make_counts));
    Py_XSETREF(self->infer_severity, Py_NewRef(infer_severity));
    Py_XSETREF(self->template_of_value, Py_NewRef(template_of_value));
    Py_XSETREF(self->note_pattern, Py_NewRef(note_pattern));
    Py_XSETREF(self->unknown_service, Py_NewRef(unknown_service));
    Py_XSETREF(self->empty, PyUnicode_FromStringAndSize("", 0));
    self->slots.cap = slot_cap;
    if (!self->empty || slots_resize(&self->slots, 1024) < 0 ||
        memo_init(&self->bodies, cache_size > 0 ? cache_size : 1) < 0 ||
        memo_init(&self->structured, cache_size > 0 ? cache_size : 1) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    self->bodies.cap = self->structured.cap = cache_size;
    return 0;
}

static void exempts_clear(Engine *self);

static void engine_dealloc(Engine *self) {
    exempts_clear(self);
    slots_clear(&self->slots);
    PyMem_Free(self->slots.items);
    memo_free(&self->bodies);
    memo_free(&self->structured);
    Py_XDECREF(self->make_slot);
    Py_XDECREF(self->make_fallback);
    Py_XDECREF(self->make_counts);
    Py_XDECREF(self->infer_severity);
    Py_XDECREF(self->template_of_value);
    Py_XDECREF(self->note_pattern);
    Py_XDECREF(self->unknown_service);
    Py_XDECREF(self->empty);
    Py_XDECREF(self->tenant_attribute);
    Py_XDECREF(self->tenant_of);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* forget(): the slots belong to a policy or an interval that is over. */
static PyObject *engine_forget(Engine *self, PyObject *unused) {
    slots_clear(&self->slots);
    Py_RETURN_NONE;
}

/* walk(payload, max_body_bytes) -> Walked, or None when upb must decide (see walk_request).
 * Walked.to_python names what makes the request one for the Python sampler. */
static PyObject *engine_walk(Engine *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_ssize_t max_body_bytes;
    if (nargs != 2 || (max_body_bytes = PyLong_AsSsize_t(args[1])) == -1) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "walk(payload, max_body_bytes)");
        return NULL;
    }
    Walked *walked = PyObject_New(Walked, &WalkedType);
    if (!walked)
        return NULL;
    walked->payload = NULL;
    memset(&walked->walk, 0, sizeof(Walk));
    walked->to_python = NULL;
    if (PyObject_GetBuffer(args[0], &walked->view, PyBUF_SIMPLE) < 0) {
        Py_DECREF(walked);
        return NULL;
    }
    walked->payload = Py_NewRef(args[0]);
    Span tenant_key = {(const uint8_t *)PyBytes_AS_STRING(self->tenant_attribute),
                       PyBytes_GET_SIZE(self->tenant_attribute)};
    int status = walk_request(walked->view.buf, walked->view.len, tenant_key, &walked->walk);
    if (status < 0) {
        Py_DECREF(walked);
        if (status == -1)
            Py_RETURN_NONE;
        return NULL;
    }
    Walk *w = &walked->walk;
    int large = walked->view.len > max_body_bytes;
    for (Py_ssize_t k = 0; k < w->nrecords && !walked->to_python; k++) {
        Record *rec = &w->records[k];
        if (rec->attributes > (uint32_t)self->max_attributes)
            walked->to_python = "attributes";
        else if (rec->flags & REC_UPSTREAM_STAMP)
            walked->to_python = "upstream_stamp";
        else if (rec->trace_id.n != 0 && rec->trace_id.n != 16)
            walked->to_python = "trace_id";
        else if (rec->span_id.n != 0 && rec->span_id.n != 8)
            walked->to_python = "span_id";
        else if (large && rec->body.n > max_body_bytes)
            walked->to_python = "body_size";
    }
    return (PyObject *)walked;
}

static PyObject *service_of(Engine *e, Resource *res) {
    if (!res->has_service || res->service.n == 0)
        return Py_NewRef(e->unknown_service);
    return span_str(res->service);
}

/* The template of a record's body: memos by body bytes, else the signature. 0 or -1. The
 * common body's template is only written into buf: a str is made for a new slot only. */
static int template_for(Engine *e, Record *rec, char *buf, Template *t) {
    t->obj = NULL;
    if (rec->body_kind == BODY_NONE || (rec->body_kind == BODY_STRING && rec->body_string.n == 0)) {
        t->obj = Py_NewRef(e->empty);
        t->p = "";
        t->n = 0;
        return 0;
    }
    Memo *memo = rec->body_kind == BODY_STRING ? &e->bodies : &e->structured;
    Span key = rec->body_kind == BODY_STRING ? rec->body_string : rec->body;
    uint64_t hash = XXH3_64bits(key.p, key.n);
    PyObject *hit = memo->cap ? memo_get(memo, (const char *)key.p, key.n, hash) : NULL;
    uint64_t *seen = &e->seen[hash & ((1 << 16) - 1)];
    int remember = memo->cap && *seen == hash;
    *seen = hash;
    if (hit) {
        t->obj = Py_NewRef(hit);
    } else if (rec->body_kind == BODY_STRING) {
        int status = 0;
        if (all_ascii(key.p, key.n)) {
            status = template_ascii_into((const char *)key.p, key.n, e->max_body_chars, buf, &t->n);
            if (status < 0)
                return -1;
        }
        if (status == 1) {
            t->p = buf;
            if (!remember)
                return 0;
            t->obj = ascii_str(buf, t->n);
        } else {
            t->obj = template_of_text_utf8((const char *)key.p, key.n, e->max_body_chars, NULL);
        }
    } else {
        e->to_python++;
        PyObject *value = span_bytes(key);
        t->obj = value ? PyObject_CallOneArg(e->template_of_value, value) : NULL;
        Py_XDECREF(value);
    }
    if (!t->obj)
        return -1;
    if (!hit && remember && memo_put(memo, (const char *)key.p, key.n, hash, t->obj) < 0) {
        Py_CLEAR(t->obj);
        PyErr_NoMemory();
        return -1;
    }
    t->p = PyUnicode_AsUTF8AndSize(t->obj, &t->n);
    if (!t->p) {
        Py_CLEAR(t->obj);
        return -1;
    }
    return 0;
}

static inline Py_ssize_t varint_size(uint64_t v) {
    Py_ssize_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static inline uint8_t *put_varint(uint8_t *out, uint64_t v) {
    while (v >= 0x80) {
        *out++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *out++ = (uint8_t)v;
    return out;
}

static inline uint8_t *put_span(uint8_t *out, Span s) {
    memcpy(out, s.p, s.n);
    return out + s.n;
}

/* annotate()'s bytes for a record without our keys: sampling.adjusted_count (double 1/rate,
 * 0 for rate 0), lipservice.pattern_id, lipservice.reason; as LogRecord field 6 entries. */
static PyObject *annotation_bytes(double rate, PyObject *pattern_id, PyObject *reason) {
    static const char count_key[] = "sampling.adjusted_count", pid_key[] = "lipservice.pattern_id",
                      reason_key[] = "lipservice.reason";
    Py_ssize_t pid_n, reason_n;
    const char *pid = PyUnicode_AsUTF8AndSize(pattern_id, &pid_n);
    const char *why = PyUnicode_AsUTF8AndSize(reason, &reason_n);
    if (!pid || !why)
        return NULL;
    const char *keys[3] = {count_key, pid_key, reason_key};
    const char *strings[3] = {NULL, pid, why};
    Py_ssize_t lengths[3] = {0, pid_n, reason_n}, value_n[3], kv_n[3], total = 0;
    for (int i = 0; i < 3; i++) {
        Py_ssize_t key_n = (Py_ssize_t)strlen(keys[i]);
        value_n[i] = i == 0 ? 9 : 1 + varint_size(lengths[i]) + lengths[i];
        kv_n[i] = 1 + varint_size(key_n) + key_n + 1 + varint_size(value_n[i]) + value_n[i];
        total += 1 + varint_size(kv_n[i]) + kv_n[i];
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, total);
    if (!out)
        return NULL;
    uint8_t *p = (uint8_t *)PyBytes_AS_STRING(out);
    double adjusted = rate ? 1.0 / rate : 0.0;
    for (int i = 0; i < 3; i++) {
        Py_ssize_t key_n = (Py_ssize_t)strlen(keys[i]);
        *p++ = 0x32;
        p = put_varint(p, kv_n[i]);
        *p++ = 0x0a;
        p = put_varint(p, key_n);
        memcpy(p, keys[i], key_n);
        p += key_n;
        *p++ = 0x12;
        p = put_varint(p, value_n[i]);
        if (i == 0) {
            uint64_t bits;
            memcpy(&bits, &adjusted, 8);
            *p++ = 0x21;
            for (int b = 0; b < 8; b++)
                *p++ = (uint8_t)(bits >> (8 * b));
        } else {
            *p++ = 0x0a;
            p = put_varint(p, lengths[i]);
            memcpy(p, strings[i], lengths[i]);
            p += lengths[i];
        }
    }
    return out;
}

/* Shadow mode's bytes: annotate(record, 1.0, pattern_id, reason), then set_would_keep()'s
 * lipservice.would_keep (a bool, present when false too: it is one of AnyValue's oneof). */
static PyObject *shadow_annotation_bytes(PyObject *pattern_id, PyObject *reason, int would_keep) {
    static const char key[] = "lipservice.would_keep";
    const Py_ssize_t key_n = sizeof key - 1, value_n = 2, kv_n = 1 + 1 + key_n + 1 + 1 + value_n;
    PyObject *head = annotation_bytes(1.0, pattern_id, reason);
    if (!head)
        return NULL;
    Py_ssize_t head_n = PyBytes_GET_SIZE(head);
    PyObject *out = PyBytes_FromStringAndSize(NULL, head_n + 2 + kv_n);
    if (!out) {
        Py_DECREF(head);
        return NULL;
    }
    uint8_t *p = (uint8_t *)PyBytes_AS_STRING(out);
    memcpy(p, PyBytes_AS_STRING(head), head_n);
    Py_DECREF(head);
    p += head_n;
    *p++ = 0x32;
    *p++ = (uint8_t)kv_n;
    *p++ = 0x0a;
    *p++ = (uint8_t)key_n;
    memcpy(p, key, key_n);
    p += key_n;
    *p++ = 0x12;
    *p++ = (uint8_t)value_n;
    *p++ = 0x10; /* AnyValue.bool_value */
    *p = would_keep ? 1 : 0;
    return out;
}

/* write_inferred_severity() (annotation.py) as bytes appended to `*annotation`, whose record
 * has no severity_number: the inferred one (a scalar appended later wins), the bucket's name
 * upper-cased when the record has no severity_text, then lipservice.severity_inferred = true
 * after the annotation's attributes, where Python adds it. */
static int append_inferred_severity(PyObject **annotation, int32_t severity, int needs_text) {
    static const char key[] = "lipservice.severity_inferred";
    static const char *const names[] = {"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"};
    const char *name = severity <= 0 ? "UNSPECIFIED" : names[severity >= 21 ? 5 : (severity - 1) / 4];
    const Py_ssize_t key_n = sizeof key - 1, kv_n = 2 + key_n + 4;
    Py_ssize_t name_n = needs_text ? (Py_ssize_t)strlen(name) : 0;
    Py_ssize_t head_n = PyBytes_GET_SIZE(*annotation);
    Py_ssize_t n = head_n + 1 + varint_size((uint64_t)(uint32_t)severity) +
                   (needs_text ? 2 + name_n : 0) + 2 + kv_n;
    PyObject *out = PyBytes_FromStringAndSize(NULL, n);
    if (!out)
        return -1;
    uint8_t *p = (uint8_t *)PyBytes_AS_STRING(out);
    memcpy(p, PyBytes_AS_STRING(*annotation), head_n);
    p += head_n;
    *p++ = 0x10; /* LogRecord.severity_number */
    p = put_varint(p, (uint64_t)(uint32_t)severity);
    if (needs_text) {
        *p++ = 0x1a; /* LogRecord.severity_text */
        *p++ = (uint8_t)name_n;
        memcpy(p, name, name_n);
        p += name_n;
    }
    *p++ = 0x32;
    *p++ = (uint8_t)kv_n;
    *p++ = 0x0a;
    *p++ = (uint8_t)key_n;
    memcpy(p, key, key_n);
    p += key_n;
    *p++ = 0x12;
    *p++ = 2;
    *p++ = 0x10; /* AnyValue.bool_value */
    *p = 1;
    Py_SETREF(*annotation, out);
    return 0;
}

static int count_reason(ReasonCount **counts, Py_ssize_t *n, Py_ssize_t *cap, PyObject *reason,
                        int kept) {
    for (Py_ssize_t i = 0; i < *n; i++)
        if ((*counts)[i].reason == reason) {
            if (kept)
                (*counts)[i].kept++;
            else
                (*counts)[i].dropped++;
            return 0;
        }
    if (grow((void **)counts, cap, *n + 1, sizeof(ReasonCount)) < 0)
        return -1;
    (*counts)[(*n)++] = (ReasonCount){reason, kept ? 1 : 0, kept ? 0 : 1};
    return 0;
}

/* Bump a per-second counter dict[key] and return the new count (-1: error). */
static long long bump(PyObject *dict, PyObject *key) {
    PyObject *old = PyDict_GetItemWithError(dict, key);
    long long seen = 1;
    if (old) {
        seen = PyLong_AsLongLong(old) + 1;
    } else if (PyErr_Occurred()) {
        return -1;
    }
    PyObject *value = PyLong_FromLongLong(seen);
    if (!value || PyDict_SetItem(dict, key, value) < 0) {
        Py_XDECREF(value);
        return -1;
    }
    Py_DECREF(value);
    return seen;
}

/* dict.get(key, -1) >= second */
static int holds(PyObject *dict, PyObject *key, long long second) {
    if (!PyDict_GET_SIZE(dict))
        return 0;
    PyObject *until = PyDict_GetItemWithError(dict, key);
    if (!until)
        return PyErr_Occurred() ? -1 : 0;
    long long value = PyLong_AsLongLong(until);
    if (value == -1 && PyErr_Occurred())
        return -1;
    return value >= second;
}

static int set_until(PyObject *dict, PyObject *key, long long second) {
    PyObject *value = PyLong_FromLongLong(second);
    int status = value ? PyDict_SetItem(dict, key, value) : -1;
    Py_XDECREF(value);
    return status;
}

static const uint8_t NO_TRACE_ID[16] = {0};

/* counts.<name> += n on a PatternCounts; its value before, or -1 with an exception set. */
static long long add_to_count(PyObject *counts, const char *name, long long n) {
    PyObject *old = PyObject_GetAttrString(counts, name);
    long long before = old ? PyLong_AsLongLong(old) : -1;
    Py_XDECREF(old);
    if (before == -1 && PyErr_Occurred())
        return -1;
    PyObject *now = PyLong_FromLongLong(before + n);
    int status = now ? PyObject_SetAttrString(counts, name, now) : -1;
    Py_XDECREF(now);
    return status < 0 ? -1 : before;
}

/* The per-request counts by tenant: dict[tenant] += n. 0 or -1. */
static int add_by_tenant(PyObject *dict, PyObject *tenant, Py_ssize_t n) {
    PyObject *old = PyDict_GetItemWithError(dict, tenant);
    if (!old && PyErr_Occurred())
        return -1;
    long long before = old ? PyLong_AsLongLong(old) : 0;
    if (before == -1 && PyErr_Occurred())
        return -1;
    PyObject *now = PyLong_FromLongLong(before + n);
    int status = now ? PyDict_SetItem(dict, tenant, now) : -1;
    Py_XDECREF(now);
    return status;
}


/* ------------------------------------------------------------------------------------------
 * Exemptions (policy/model.py Exemption, sampler.py _matching_exemption)
 * ---------------------------------------------------------------------------------------- */

enum { EXEMPT_ATTRIBUTE = 0, EXEMPT_RESOURCE = 1, EXEMPT_BODY = 2 };

typedef struct Exempt {
    int scope;
    PyObject *key;    /* bytes: the attribute key's UTF-8 */
    PyObject *equals; /* bytes: the exact value's UTF-8, or NULL */
    PyObject *search; /* the compiled pattern's search, or NULL; neither: presence alone */
    PyObject *reason; /* str: exempt/<name> */
} Exempt;

static void exempts_clear(Engine *self) {
    for (Py_ssize_t i = 0; i < self->nexempts; i++) {
        Py_XDECREF(self->exempts[i].key);
        Py_XDECREF(self->exempts[i].equals);
        Py_XDECREF(self->exempts[i].search);
        Py_XDECREF(self->exempts[i].reason);
    }
    PyMem_Free(self->exempts);
    self->exempts = NULL;
    self->nexempts = self->record_exempts = self->resource_exempts = 0;
}

/* set_exemptions(((scope, key, equals or None, search or None, reason), ...)): the policy's,
 * handed over when it changes (scope: 0 attribute, 1 resource, 2 body). */
static PyObject *engine_set_exemptions(Engine *self, PyObject *arg) {
    PyObject *items = PySequence_Fast(arg, "set_exemptions() takes a sequence");
    if (!items)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(items);
    Exempt *exempts = PyMem_Calloc(n ? n : 1, sizeof(Exempt));
    if (!exempts) {
        Py_DECREF(items);
        return PyErr_NoMemory();
    }
    exempts_clear(self);
    self->exempts = exempts;
    for (Py_ssize_t i = 0; i < n; i++) {
        int scope;
        PyObject *key, *equals, *search, *reason;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(items, i), "iSOOU", &scope, &key, &equals,
                              &search, &reason)) {
            Py_DECREF(items);
            return NULL;
        }
        if (scope < EXEMPT_ATTRIBUTE || scope > EXEMPT_BODY ||
            (equals != Py_None && !PyBytes_Check(equals)) ||
            (search != Py_None && !PyCallable_Check(search))) {
            Py_DECREF(items);
            PyErr_SetString(PyExc_TypeError, "set_exemptions(): (scope, key, equals, search, "
                                             "reason) with equals bytes or None, search a "
                                             "callable or None");
            return NULL;
        }
        exempts[i] = (Exempt){scope, Py_NewRef(key),
                              equals == Py_None ? NULL : Py_NewRef(equals),
                              search == Py_None ? NULL : Py_NewRef(search), Py_NewRef(reason)};
        self->nexempts = i + 1;
        if (scope == EXEMPT_RESOURCE)
            self->resource_exempts++;
        else
            self->record_exempts++;
    }
    Py_DECREF(items);
    Py_RETURN_NONE;
}

/* A value as _string_attribute() reads it: a string's own bytes, or int / bool / double
 * written as str(value).lower() writes them. */
typedef struct {
    const char *p;
    Py_ssize_t n;
    char buf[64];
} ExemptValue;

/* The first KeyValue named `key` among `message`'s fields `field` (LogRecord 6, Resource 1):
 * 1 with its value, 0 for None (no such key, or a value of another kind), -1 on error.
 * The message was walked already, so it reads as the walker read it. */
static int string_attribute(Span message, uint32_t field, PyObject *key, ExemptValue *out) {
    Reader r = {message.p, message.p + message.n};
    uint32_t number;
    int wire;
    const char *want = PyBytes_AS_STRING(key);
    Py_ssize_t want_n = PyBytes_GET_SIZE(key);
    while (read_tag(&r, &number, &wire) > 0) {
        Span kv;
        if (number != field || wire != WT_LEN) {
            if (skip_field(&r, wire) < 0)
                return 0;
            continue;
        }
        if (read_len(&r, &kv) < 0)
            return 0;
        Reader k = {kv.p, kv.p + kv.n};
        Span name = {kv.p, 0}, value = {kv.p, 0};
        uint32_t kfield;
        int kwire;
        while (read_tag(&k, &kfield, &kwire) > 0) {
            if (kfield == 1 && kwire == WT_LEN) {
                if (read_len(&k, &name) < 0)
                    return 0;
            } else if (kfield == 2 && kwire == WT_LEN) {
                if (read_len(&k, &value) < 0)
                    return 0;
            } else if (skip_field(&k, kwire) < 0) {
                return 0;
            }
        }
        if (name.n != want_n || memcmp(name.p, want, want_n) != 0)
            continue;
        /* AnyValue: the oneof member set last. */
        Reader v = {value.p, value.p + value.n};
        uint32_t vfield;
        int vwire, kind = 0;
        Span string = {NULL, 0};
        uint64_t bits = 0;
        while (read_tag(&v, &vfield, &vwire) > 0) {
            if (vfield == 1 && vwire == WT_LEN) {
                if (read_len(&v, &string) < 0)
                    return 0;
                kind = 1;
            } else if ((vfield == 2 || vfield == 3) && vwire == WT_VARINT) {
                if (read_varint(&v, &bits) < 0)
                    return 0;
                kind = (int)vfield;
            } else if (vfield == 4 && vwire == WT_I64) {
                if (v.end - v.p < 8)
                    return 0;
                bits = 0;
                for (int b = 7; b >= 0; b--)
                    bits = (bits << 8) | v.p[b];
                v.p += 8;
                kind = 4;
            } else {
                if (vfield >= 5 && vfield <= 8)
                    kind = -1; /* a list, bytes, an index: None */
                if (skip_field(&v, vwire) < 0)
                    return 0;
            }
        }
        if (kind == 1) {
            out->p = (const char *)string.p;
            out->n = string.n;
        } else if (kind == 2) {
            out->p = bits ? "true" : "false";
            out->n = bits ? 4 : 5;
        } else if (kind == 3) {
            out->n = snprintf(out->buf, sizeof out->buf, "%lld", (long long)(int64_t)bits);
            out->p = out->buf;
        } else if (kind == 4) {
            double d;
            memcpy(&d, &bits, sizeof d);
            /* float.__repr__, which str() is */
            char *text = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
            if (!text)
                return -1;
            Py_ssize_t n = (Py_ssize_t)strlen(text);
            if (n >= (Py_ssize_t)sizeof out->buf)
                n = sizeof out->buf - 1;
            for (Py_ssize_t i = 0; i < n; i++)
                out->buf[i] = (char)((text[i] >= 'A' && text[i] <= 'Z') ? text[i] + 32 : text[i]);
            PyMem_Free(text);
            out->p = out->buf;
            out->n = n;
        } else {
            return 0;
        }
        return 1;
    }
    return 0;
}

/* Exemption.matches_value() for a value present: 1, 0, -1 on error. A regex is Python's own
 * search, called with the value as a str (counted as a Python call). */
static int exempt_matches(Engine *e, const Exempt *x, const char *p, Py_ssize_t n) {
    if (x->equals)
        return n == PyBytes_GET_SIZE(x->equals) && memcmp(p, PyBytes_AS_STRING(x->equals), n) == 0;
    if (!x->search)
        return 1;
    e->to_python++;
    PyObject *text = PyUnicode_DecodeUTF8(p, n, "strict");
    PyObject *match = text ? PyObject_CallOneArg(x->search, text) : NULL;
    Py_XDECREF(text);
    if (!match)
        return -1;
    int found = match != Py_None;
    Py_DECREF(match);
    return found;
}

/* _matching_exemption(): the reason of the first exemption of the kind asked (resource, or
 * record: attribute and body) matching, *reason NULL for none; -1 on error. `message`: the
 * Resource or the LogRecord; body: the record's string body ("" for any other). */
static int matching_exemption(Engine *e, int resource, Span message, Span body,
                              PyObject **reason) {
    *reason = NULL;
    for (Py_ssize_t i = 0; i < e->nexempts; i++) {
        const Exempt *x = &e->exempts[i];
        if ((x->scope == EXEMPT_RESOURCE) != resource)
            continue;
        ExemptValue value;
        int found;
        if (x->scope == EXEMPT_BODY) {
            value.p = (const char *)body.p;
            value.n = body.n;
            found = 1;
        } else {
            found = string_attribute(message, resource ? 1 : 6, x->key, &value);
        }
        if (found > 0)
            found = exempt_matches(e, x, value.p ? value.p : "", value.n);
        if (found < 0)
            return -1;
        if (found) {
            *reason = x->reason;
            return 0;
        }
    }
    return 0;
}

/* sample(walked, state) -> (payload out, received, kept, kept_by_reason, dropped_by_reason,
 *                           recalled, anomaly budget left, received_by_tenant,
 *                           kept_by_tenant), or None: the Python sampler must.
 * state: (per_second, bursting, template_seconds, template_bursting, second, anomaly budget,
 *         error context or None, severity floor, now, burst reason, error-context reason,
 *         tenant: "" without tenants, the request's tenant name, or None to name each
 *         resource's through tenant_of, shadow mode: every record forwarded with what enforce
 *         mode would do, lipservice.would_keep, infer_severity.write: a kept record without a
 *         severity_number gets the one inferred). */
static PyObject *engine_sample(Engine *e, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || Py_TYPE(args[0]) != &WalkedType || !PyTuple_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "sample(walked, state)");
        return NULL;
    }
    Walked *walked = (Walked *)args[0];
    PyObject *per_second, *bursting, *template_seconds, *template_bursting, *context,
        *burst_reason, *context_reason, *request_tenant;
    long long second, budget;
    int floor, shadow, write_severity;
    double now;
    if (!PyArg_ParseTuple(args[1], "O!O!O!O!LLOidUUOpp", &PyDict_Type, &per_second, &PyDict_Type,
                          &bursting, &PyDict_Type, &template_seconds, &PyDict_Type,
                          &template_bursting, &second, &budget, &context, &floor, &now,
                          &burst_reason, &context_reason, &request_tenant, &shadow,
                          &write_severity))
        return NULL;
    if (request_tenant != Py_None && !PyUnicode_Check(request_tenant)) {
        PyErr_SetString(PyExc_TypeError, "sample(): the tenant must be a str or None");
        return NULL;
    }
    /* Counted by tenant only when there are tenants. */
    int by_tenant = request_tenant == Py_None || PyUnicode_GET_LENGTH(request_tenant) > 0;
    if (walked->to_python)
        Py_RETURN_NONE;
    if (context != Py_None && Py_TYPE(context) != &ContextType) {
        PyErr_SetString(PyExc_TypeError, "sample(): the error context must be _native's");
        return NULL;
    }
    Walk *w = &walked->walk;
    if (e->slots.used >= e->slots.cap)
        slots_clear(&e->slots); /* between requests only: see slot_for */
    char *template_buf = PyMem_Malloc(TEMPLATE_BUF);
    Decided *decided = PyMem_Calloc(w->nrecords ? w->nrecords : 1, sizeof(Decided));
    uint8_t *keep = PyMem_Calloc(w->nrecords ? w->nrecords : 1, 1);
    PyObject **annotations = PyMem_Calloc(w->nrecords ? w->nrecords : 1, sizeof(PyObject *));
    PyObject *services = PyList_New(0), *recalled = PyList_New(0), *result = NULL;
    PyObject *tenants = PyList_New(0);
    PyObject *received_by_tenant = PyDict_New(), *kept_by_tenant = PyDict_New();
    PyObject *now_obj = PyFloat_FromDouble(now);
    Slot **touched = PyMem_Calloc(w->nrecords ? w->nrecords : 1, sizeof(Slot *));
    Py_ssize_t ntouched = 0, nreasons = 0, capreasons = 0, kept_total = 0;
    ReasonCount *reasons = NULL;
    PyObject *origin = NULL;
    if (!template_buf || !decided || !keep || !annotations || !services || !recalled ||
        !now_obj || !touched || !tenants || !received_by_tenant || !kept_by_tenant) {
        PyErr_NoMemory();
        goto done;
    }
    /* Pass 1, nothing observable changes: templates, slots, inferred severities, counters. */
    for (Py_ssize_t r = 0; r < w->nresources; r++) {
        Resource *res = &w->resources[r];
        PyObject *service = service_of(e, res);
        if (!service || PyList_Append(services, service) < 0) {
            Py_XDECREF(service);
            goto done;
        }
        Py_DECREF(service);
        Py_hash_t service_hash = PyObject_Hash(service);
        if (service_hash == -1)
            goto done;
        Py_ssize_t first = res->count ? w->scopes[res->first].first : 0, last = first;
        for (Py_ssize_t s = res->first; s < res->first + res->count; s++)
            last = w->scopes[s].first + w->scopes[s].count;
        PyObject *tenant;
        if (request_tenant != Py_None) {
            tenant = Py_NewRef(request_tenant);
        } else {
            PyObject *value = res->has_tenant ? span_str(res->tenant) : Py_NewRef(Py_None);
            tenant = value ? PyObject_CallFunction(e->tenant_of, "On", value, last - first) : NULL;
            Py_XDECREF(value);
            if (tenant && !PyUnicode_Check(tenant)) {
                Py_CLEAR(tenant);
                PyErr_SetString(PyExc_TypeError, "tenant_of() must return a str");
            }
        }
        if (!tenant || PyList_Append(tenants, tenant) < 0) {
            Py_XDECREF(tenant);
            goto done;
        }
        Py_DECREF(tenant); /* held by the list */
        Py_hash_t tenant_hash = PyObject_Hash(tenant);
        if (tenant_hash == -1)
            goto done;
        for (Py_ssize_t k = first; k < last; k++) {
            Record *rec = &w->records[k];
            Template template;
            if (template_for(e, rec, template_buf, &template) < 0)
                goto done;
            int32_t severity = rec->severity;
            if (!severity && e->infer) {
                e->to_python++;
                if (!template.obj && !(template.obj = ascii_str(template.p, template.n)))
                    goto done;
                PyObject *record = span_bytes(rec->contents);
                PyObject *inferred = record ? PyObject_CallFunctionObjArgs(
                                                  e->infer_severity, record, template.obj, NULL)
                                            : NULL;
                Py_XDECREF(record);
                if (!inferred) {
                    Py_DECREF(template.obj);
                    goto done;
                }
                severity = (int32_t)PyLong_AsLong(inferred);
                Py_DECREF(inferred);
                if (PyErr_Occurred()) {
                    Py_DECREF(template.obj);
                    goto done;
                }
                template.p = PyUnicode_AsUTF8AndSize(template.obj, &template.n);
            }
            Slot *slot = slot_for(e, tenant, tenant_hash, service, service_hash, &template, severity);
            Py_XDECREF(template.obj);
            if (!slot)
                goto done;
            decided[k] = (Decided){slot, severity, service};
            if (!slot->touched) {
                slot->touched = 1;
                slot->first = k;
                touched[ntouched++] = slot;
            }
        }
    }
    for (Py_ssize_t i = 0; i < ntouched; i++) {
        Slot *slot = touched[i];
        if (slot->counts)
            continue;
        PyObject *counts = PyObject_CallFunction(e->make_counts, "OOiO", slot->service,
                                                 slot->template, (int)slot->severity,
                                                 slot->tenant);
        if (!counts)
            goto done;
        if (counts == Py_None) {
            /* Past the aggregate key cap: every record of it counts as overflow, in Python. */
            Py_DECREF(counts);
            result = Py_NewRef(Py_None);
            goto done;
        }
        slot->counts = counts;
    }
    /* Pass 2: the decision of _sample_scope, record by record in request order. */
    Py_ssize_t index = 0;
    for (Py_ssize_t r = 0; r < w->nresources; r++) {
        Resource *res = &w->resources[r];
        PyObject *resource_exempt = NULL; /* borrowed from e->exempts, as every reason here */
        if (e->resource_exempts &&
            matching_exemption(e, 1, res->resource, (Span){NULL, 0}, &resource_exempt) < 0)
            goto done;
        for (Py_ssize_t s = res->first; s < res->first + res->count; s++) {
            Scope *scope = &w->scopes[s];
            Py_CLEAR(origin);
            for (Py_ssize_t k = scope->first; k < scope->first + scope->count; k++) {
                Record *rec = &w->records[k];
                Slot *slot = decided[k].slot;
                int32_t severity = decided[k].severity;
                index++;
                int traced = rec->trace_id.n == 16;
                int decided_keep = -1, by_rule = 0;
                double rate = 1.0;
                PyObject *reason = NULL;
                uint64_t threshold = 0;
                double draw_rate = 0;
                PyObject *draw_reason = NULL;
                PyObject *exempt = resource_exempt;
                if (!exempt && e->record_exempts &&
                    matching_exemption(e, 0, rec->contents,
                                       rec->body_kind == BODY_STRING ? rec->body_string
                                                                     : (Span){NULL, 0},
                                       &exempt) < 0)
                    goto done;
                if (exempt) {
                    /* Kept before any rule: no budget taken, no burst counted. */
                    decided_keep = 1, rate = 1.0, reason = exempt, by_rule = 0;
                } else if (slot->rate >= 1.0) {
                    if (slot->known || budget > 0) {
                        if (!slot->known)
                            budget--;
                        decided_keep = 1, rate = 1.0, reason = slot->reason, by_rule = 1;
                    } else {
                        int which = rec->severity != 0;
                        if (!slot->fallback[which]) {
                            slot->fallback[which] = PyObject_CallFunction(
                                e->make_fallback, "OOiiO", slot->service, slot->template,
                                (int)slot->severity, (int)rec->severity, slot->tenant);
                            if (!slot->fallback[which])
                                goto done;
                        }
                        PyObject *t;
                        if (!PyArg_ParseTuple(slot->fallback[which], "OdO", &t, &draw_rate,
                                              &draw_reason) ||
                            as_threshold(t, &threshold) < 0)
                            goto done;
                    }
                } else {
                    threshold = slot->threshold, draw_rate = slot->rate,
                    draw_reason = slot->reason, by_rule = 1;
                    if (slot->baseline) {
                        long long seen = bump(per_second, slot->pattern_id);
                        if (seen < 0)
                            goto done;
                        if ((double)seen > slot->burst_limit &&
                            set_until(bursting, slot->pattern_id, second + 1) < 0)
                            goto done;
                        if (slot->template_limit) {
                            seen = bump(template_seconds, slot->signature_id);
                            if (seen < 0)
                                goto done;
                            if ((double)seen > slot->template_limit &&
                                set_until(template_bursting, slot->signature_id, second + 1) < 0)
                                goto done;
                        }
                        int hot = holds(bursting, slot->pattern_id, second);
                        if (hot == 0)
                            hot = holds(template_bursting, slot->signature_id, second);
                        if (hot < 0)
                            goto done;
                        if (hot && budget > 0) {
                            budget--;
                            decided_keep = 1, rate = 1.0, reason = burst_reason, by_rule = 0;
                        }
                    }
                }
                int zero_id = traced && memcmp(rec->trace_id.p, NO_TRACE_ID, 16) == 0;
                if (decided_keep < 0) {
                    uint64_t randomness;
                    if (traced && !zero_id) {
                        randomness = 0;
                        for (int b = 9; b < 16; b++)
                            randomness = (randomness << 8) | rec->trace_id.p[b];
                    } else {
                        uint64_t seed = rec->time + (uint64_t)index * SEED_STEP;
                        Span body = rec->body_kind == BODY_STRING ? rec->body_string : (Span){NULL, 0};
                        randomness = XXH3_64bits_withSeed(body.p, body.n, seed) >> DISCARD_BITS;
                    }
                    decided_keep = randomness < threshold;
                    rate = draw_rate;
                    reason = draw_reason;
                }
                if (traced && zero_id)
                    traced = 0;
                slot->received++;
                slot->received_bytes += rec->contents.n;
                if (context != Py_None && traced) {
                    Context *store = (Context *)context;
                    PyObject *id = PyBytes_FromStringAndSize((const char *)rec->trace_id.p, 16);
                    if (!id)
                        goto done;
                    if (severity >= floor) {
                        PyObject *back = context_recall(store, id, now);
                        Py_DECREF(id);
                        if (!back)
                            goto done;
                        PyObject *extended = _PyList_Extend((PyListObject *)recalled, back);
                        Py_DECREF(back);
                        if (!extended)
                            goto done;
                        Py_DECREF(extended);
                    } else if (!decided_keep && !shadow) {
                        /* Shadow mode forwards every record: none is remembered for later. */
                        int is_hot = context_is_hot(store, id, now);
                        Py_DECREF(id);
                        if (is_hot < 0)
                            goto done;
                        if (is_hot) {
                            decided_keep = 1, rate = 0.0, reason = context_reason, by_rule = 0;
                        } else {
                            if (!origin) {
                                PyObject *resource = span_bytes(res->resource);
                                PyObject *scope_bytes = span_bytes(scope->scope);
                                origin = resource && scope_bytes
                                             ? PyTuple_Pack(2, resource, scope_bytes)
                                             : NULL;
                                Py_XDECREF(resource);
                                Py_XDECREF(scope_bytes);
                            }
                            PyObject *record = origin ? span_bytes(rec->contents) : NULL;
                            int status = record ? context_remember(store, rec->trace_id.p, now,
                                                                   origin, record)
                                                : -1;
                            Py_XDECREF(record);
                            if (status < 0) {
                                if (!PyErr_Occurred())
                                    PyErr_NoMemory();
                                goto done;
                            }
                        }
                    } else {
                        Py_DECREF(id);
                    }
                }
                if (shadow) {
                    /* What enforce mode would keep is counted; everything is forwarded. */
                    if (decided_keep) {
                        slot->kept++;
                        slot->kept_bytes += rec->contents.n;
                    }
                    if (reason == slot->reason) {
                        PyObject **cached = &slot->shadow_annotation[decided_keep];
                        if (!*cached &&
                            !(*cached = shadow_annotation_bytes(slot->pattern_id, reason,
                                                                decided_keep)))
                            goto done;
                        annotations[k] = Py_NewRef(*cached);
                    } else if (!(annotations[k] = shadow_annotation_bytes(slot->pattern_id, reason,
                                                                           decided_keep))) {
                        goto done;
                    }
                    if (write_severity && severity && !rec->severity &&
                        append_inferred_severity(&annotations[k], severity,
                                                 rec->severity_text.n == 0) < 0)
                        goto done;
                    keep[k] = 1;
                    kept_total++;
                    if (count_reason(&reasons, &nreasons, &capreasons, reason, 1) < 0) {
                        PyErr_NoMemory();
                        goto done;
                    }
                    continue;
                }
                if (decided_keep) {
                    if (by_rule) {
                        /* Made on the first keep: most slots of a flood never keep one. */
                        if (!slot->annotation &&
                            !(slot->annotation =
                                  annotation_bytes(slot->rate, slot->pattern_id, slot->reason)))
                            goto done;
                        annotations[k] = Py_NewRef(slot->annotation);
                    } else {
                        annotations[k] = annotation_bytes(rate, slot->pattern_id, reason);
                        if (!annotations[k])
                            goto done;
                    }
                    if (write_severity && severity && !rec->severity &&
                        append_inferred_severity(&annotations[k], severity,
                                                 rec->severity_text.n == 0) < 0)
                        goto done;
                    keep[k] = 1;
                    slot->kept++;
                    slot->kept_bytes += rec->contents.n;
                    kept_total++;
                }
                if (count_reason(&reasons, &nreasons, &capreasons, reason, decided_keep) < 0) {
                    PyErr_NoMemory();
                    goto done;
                }
            }
        }
    }
    /* The counts, and each pattern's first sight, as the Python loop leaves them. */
    for (Py_ssize_t i = 0; i < ntouched; i++) {
        Slot *slot = touched[i];
        long long r0 = add_to_count(slot->counts, "received", slot->received);
        if (r0 < 0 || add_to_count(slot->counts, "kept", slot->kept) < 0 ||
            add_to_count(slot->counts, "received_bytes", slot->received_bytes) < 0 ||
            add_to_count(slot->counts, "kept_bytes", slot->kept_bytes) < 0)
            goto done;
        if (by_tenant && (add_by_tenant(received_by_tenant, slot->tenant, slot->received) < 0 ||
                          add_by_tenant(kept_by_tenant, slot->tenant,
                                        shadow ? slot->received : slot->kept) < 0))
            goto done;
        if (r0 == 0) {
            Record *rec = &w->records[slot->first];
            PyObject *example = rec->body_kind == BODY_STRING && rec->body_string.n
                                    ? span_str(rec->body_string)
                                    : Py_NewRef(slot->template);
            PyObject *noted =
                example ? PyObject_CallFunctionObjArgs(e->note_pattern, slot->signature_id,
                                                       decided[slot->first].service,
                                                       slot->template, example, slot->tenant,
                                                       NULL)
                        : NULL;
            Py_XDECREF(example);
            if (!noted)
                goto done;
            Py_DECREF(noted);
        }
    }
    /* The outgoing request: kept records' spans with their annotation appended. */
    Py_ssize_t total = 0;
    Py_ssize_t *resource_n = PyMem_Calloc(w->nresources ? w->nresources : 1, sizeof(Py_ssize_t));
    Py_ssize_t *scope_n = PyMem_Calloc(w->nscopes ? w->nscopes : 1, sizeof(Py_ssize_t));
    if (!resource_n || !scope_n) {
        PyMem_Free(resource_n);
        PyMem_Free(scope_n);
        PyErr_NoMemory();
        goto done;
    }
    /* Sizes, bottom up: a scope or resource without a kept record is left out (_prune_empty). */
    for (Py_ssize_t r = 0; r < w->nresources; r++) {
        Resource *res = &w->resources[r];
        Reader rd = {res->contents.p, res->contents.p + res->contents.n};
        uint32_t number;
        int wire;
        Py_ssize_t s = res->first, size = 0, scopes_kept = 0;
        while (read_tag(&rd, &number, &wire) > 0) {
            const uint8_t *start = rd.p;
            Span span;
            if (number == 2 && wire == WT_LEN) {
                read_len(&rd, &span);
                Scope *scope = &w->scopes[s];
                Reader sr = {scope->contents.p, scope->contents.p + scope->contents.n};
                uint32_t field;
                int swire;
                Py_ssize_t k = scope->first, scope_size = 0, records_kept = 0;
                while (read_tag(&sr, &field, &swire) > 0) {
                    const uint8_t *fstart = sr.p;
                    if (field == 2 && swire == WT_LEN) {
                        Span record;
                        read_len(&sr, &record);
                        if (keep[k]) {
                            Py_ssize_t n = record.n + PyBytes_GET_SIZE(annotations[k]);
                            scope_size += 1 + varint_size(n) + n;
                            records_kept++;
                        }
                        k++;
                    } else {
                        skip_field(&sr, swire);
                        scope_size += (sr.p - fstart) + varint_size(((uint64_t)field << 3) | swire);
                    }
                }
                scope_n[s] = records_kept ? scope_size : -1;
                if (records_kept) {
                    size += 1 + varint_size(scope_size) + scope_size;
                    scopes_kept++;
                }
                s++;
            } else {
                skip_field(&rd, wire);
                size += (rd.p - start) + varint_size(((uint64_t)number << 3) | wire);
            }
        }
        resource_n[r] = scopes_kept ? size : -1;
        if (scopes_kept)
            total += 1 + varint_size(size) + size;
    }
    /* Fields of the request other than resource_logs are kept as they came. */
    {
        Reader rd = {walked->view.buf, (const uint8_t *)walked->view.buf + walked->view.len};
        uint32_t number;
        int wire;
        while (read_tag(&rd, &number, &wire) > 0) {
            const uint8_t *start = rd.p;
            skip_field(&rd, wire);
            if (number != 1)
                total += (rd.p - start) + varint_size(((uint64_t)number << 3) | wire);
        }
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, total);
    if (!out) {
        PyMem_Free(resource_n);
        PyMem_Free(scope_n);
        goto done;
    }
    uint8_t *p = (uint8_t *)PyBytes_AS_STRING(out);
    {
        Reader rd = {walked->view.buf, (const uint8_t *)walked->view.buf + walked->view.len};
        uint32_t number;
        int wire;
        Py_ssize_t r = 0;
        while (read_tag(&rd, &number, &wire) > 0) {
            const uint8_t *start = rd.p;
            Span span;
            if (number != 1) {
                skip_field(&rd, wire);
                p = put_varint(p, ((uint64_t)number << 3) | wire);
                p = put_span(p, (Span){start, rd.p - start});
                continue;
            }
            read_len(&rd, &span);
            Resource *res = &w->resources[r];
            if (resource_n[r] >= 0) {
                *p++ = 0x0a;
                p = put_varint(p, resource_n[r]);
                Reader rr = {res->contents.p, res->contents.p + res->contents.n};
                uint32_t field;
                int rwire;
                Py_ssize_t s = res->first;
                while (read_tag(&rr, &field, &rwire) > 0) {
                    const uint8_t *fstart = rr.p;
                    if (field == 2 && rwire == WT_LEN) {
                        read_len(&rr, &span);
                        Scope *scope = &w->scopes[s];
                        if (scope_n[s] >= 0) {
                            *p++ = 0x12;
                            p = put_varint(p, scope_n[s]);
                            Reader sr = {scope->contents.p, scope->contents.p + scope->contents.n};
                            uint32_t f;
                            int swire;
                            Py_ssize_t k = scope->first;
                            while (read_tag(&sr, &f, &swire) > 0) {
                                const uint8_t *gstart = sr.p;
                                if (f == 2 && swire == WT_LEN) {
                                    Span record;
                                    read_len(&sr, &record);
                                    if (keep[k]) {
                                        Span note = {(const uint8_t *)PyBytes_AS_STRING(annotations[k]),
                                                     PyBytes_GET_SIZE(annotations[k])};
                                        *p++ = 0x12;
                                        p = put_varint(p, record.n + note.n);
                                        p = put_span(p, record);
                                        p = put_span(p, note);
                                    }
                                    k++;
                                } else {
                                    skip_field(&sr, swire);
                                    p = put_varint(p, ((uint64_t)f << 3) | swire);
                                    p = put_span(p, (Span){gstart, sr.p - gstart});
                                }
                            }
                        }
                        s++;
                    } else {
                        skip_field(&rr, rwire);
                        p = put_varint(p, ((uint64_t)field << 3) | rwire);
                        p = put_span(p, (Span){fstart, rr.p - fstart});
                    }
                }
            }
            r++;
        }
    }
    PyMem_Free(resource_n);
    PyMem_Free(scope_n);
    if (p != (uint8_t *)PyBytes_AS_STRING(out) + total) {
        Py_DECREF(out);
        PyErr_SetString(PyExc_SystemError, "_native: spliced request size mismatch");
        goto done;
    }
    PyObject *kept_by = PyDict_New(), *dropped_by = PyDict_New();
    for (Py_ssize_t i = 0; kept_by && dropped_by && i < nreasons; i++) {
        for (int which = 0; which < 2; which++) {
            Py_ssize_t n = which ? reasons[i].dropped : reasons[i].kept;
            PyObject *dict = which ? dropped_by : kept_by;
            if (!n)
                continue;
            PyObject *old = PyDict_GetItemWithError(dict, reasons[i].reason);
            long long sum = n + (old ? PyLong_AsLongLong(old) : 0);
            PyObject *value = PyLong_FromLongLong(sum);
            if (!value || PyDict_SetItem(dict, reasons[i].reason, value) < 0) {
                Py_XDECREF(value);
                Py_CLEAR(kept_by);
                break;
            }
            Py_DECREF(value);
        }
    }
    if (!kept_by || !dropped_by) {
        Py_XDECREF(kept_by);
        Py_XDECREF(dropped_by);
        Py_DECREF(out);
        goto done;
    }
    result = Py_BuildValue("(NnnNNOLOO)", out, w->nrecords, kept_total, kept_by, dropped_by,
                           recalled, budget, received_by_tenant, kept_by_tenant);
done:
    for (Py_ssize_t i = 0; i < ntouched; i++) {
        touched[i]->touched = 0;
        touched[i]->received = touched[i]->kept = 0;
        touched[i]->received_bytes = touched[i]->kept_bytes = 0;
    }
    if (annotations)
        for (Py_ssize_t k = 0; k < w->nrecords; k++)
            Py_XDECREF(annotations[k]);
    PyMem_Free(annotations);
    PyMem_Free(template_buf);
    PyMem_Free(decided);
    PyMem_Free(keep);
    PyMem_Free(touched);
    PyMem_Free(reasons);
    Py_XDECREF(origin);
    Py_XDECREF(services);
    Py_XDECREF(tenants);
    Py_XDECREF(received_by_tenant);
    Py_XDECREF(kept_by_tenant);
    Py_XDECREF(recalled);
    Py_XDECREF(now_obj);
    return result;
}

/* Records that needed a Python call so far. */
static PyObject *engine_to_python(Engine *e, PyObject *unused) {
    return PyLong_FromUnsignedLongLong(e->to_python);
}

/* Slots held (tests: the table stays within the aggregate key cap). */
static PyObject *engine_slots(Engine *e, PyObject *unused) {
    return PyLong_FromSsize_t(e->slots.used);
}

static PyMethodDef engine_methods[] = {
    {"walk", (PyCFunction)(void (*)(void))engine_walk, METH_FASTCALL,
     "walk(payload, max_body_bytes) -> Walked or None."},
    {"sample", (PyCFunction)(void (*)(void))engine_sample, METH_FASTCALL,
     "sample(walked, state) -> outcome tuple, or None for the Python sampler."},
    {"forget", (PyCFunction)engine_forget, METH_NOARGS, "Drop the slots (policy or interval)."},
    {"set_exemptions", (PyCFunction)engine_set_exemptions, METH_O,
     "set_exemptions(((scope, key, equals, search, reason), ...)): the policy's."},
    {"to_python", (PyCFunction)engine_to_python, METH_NOARGS,
     "Records that needed a Python call so far."},
    {"slots", (PyCFunction)engine_slots, METH_NOARGS, "Slots held in the table."},
    {NULL},
};

static PyTypeObject EngineType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "lipservice_otel.sampling._native.Engine",
    .tp_basicsize = sizeof(Engine),
    .tp_dealloc = (destructor)engine_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)engine_init,
    .tp_methods = engine_methods,
};

static PyMethodDef native_methods[] = {
    {"walk", native_walk, METH_O, "Walk an ExportLogsServiceRequest's wire bytes (tests)."},
    {"template_of_text", (PyCFunction)(void (*)(void))native_template_of_text, METH_FASTCALL,
     "template_of_text(text, max_chars=2048): text/signature.py's template, computed natively."},
    {"clear_memos", native_clear_memos, METH_NOARGS, "Empty the token memos (benchmarks)."},
    {"signature_calls", native_signature_calls, METH_NOARGS,
     "(bodies, tokens) handed to the Python signature so far."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT, "_native", "The compiled sampler (see sampler.py).", -1,
    native_methods,
};

PyMODINIT_FUNC PyInit__native(void) {
    if (signature_init() < 0 || PyType_Ready(&EngineType) < 0 || PyType_Ready(&WalkedType) < 0 ||
        PyType_Ready(&ContextType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&native_module);
    if (!module)
        return NULL;
    if (PyModule_AddObjectRef(module, "Engine", (PyObject *)&EngineType) < 0 ||
        PyModule_AddObjectRef(module, "ErrorContext", (PyObject *)&ContextType) < 0 ||
        PyModule_AddIntConstant(module, "ENTRY_OVERHEAD_BYTES", ENTRY_OVERHEAD_BYTES) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
