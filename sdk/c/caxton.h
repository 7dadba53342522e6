/*
 * caxton.h: Caxton's C SDK for tool modules (header only).
 *
 * A tool module is a WebAssembly module whose exported functions `int32_t NAME(void)` are tools.
 * Caxton's sandbox speaks Extism's kernel ABI ("extism:host/env") plus Caxton's own host
 * functions ("extism:host/user"); this header declares them and wraps them in plain C:
 * input, output, errors, configuration, state, logging, HTTP, files, read-only SQLite, and a
 * small JSON reader and writer for tools that take and return JSON.
 *
 * Build with Debian's toolchain (clang, lld, wasi-libc):
 *   clang --target=wasm32-wasi --sysroot=/usr -O2 -nostartfiles -Wl,--no-entry \
 *         -Wl,--export-dynamic -I include -o build/tool.wasm src/tool.c
 * wasi-libc supplies malloc and the string functions; do not call anything that reaches WASI
 * (printf to stdout, fopen, time): the sandbox offers no WASI and refuses such a module when it
 * loads, naming the import.
 *
 * Limits (fuel, memory, wall clock, sizes) and grants (hosts, paths, databases) come from the
 * manifest and the operator; a call that exceeds them ends with a clear outcome.
 */
#ifndef CAXTON_H
#define CAXTON_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CX_IMPORT(mod, name) __attribute__((import_module(mod), import_name(name)))
#define CX_ENV(name) CX_IMPORT("extism:host/env", name)
#define CX_USER(name) CX_IMPORT("extism:host/user", name)
/* Marks a function as a tool: CAXTON_TOOL(greet) int32_t greet(void) { ... } */
#define CAXTON_TOOL(name) __attribute__((export_name(#name)))

typedef uint64_t cx_block; /* an offset in the host's kernel memory; 0 = none */

CX_ENV("alloc") cx_block cx_host_alloc(uint64_t n);
CX_ENV("free") void cx_host_free(cx_block b);
CX_ENV("length") uint64_t cx_host_length(cx_block b);
CX_ENV("load_u8") uint32_t cx_host_load_u8(uint64_t offset);
CX_ENV("load_u64") uint64_t cx_host_load_u64(uint64_t offset);
CX_ENV("store_u8") void cx_host_store_u8(uint64_t offset, uint32_t v);
CX_ENV("store_u64") void cx_host_store_u64(uint64_t offset, uint64_t v);
CX_ENV("input_length") uint64_t cx_host_input_length(void);
CX_ENV("input_load_u8") uint32_t cx_host_input_load_u8(uint64_t offset);
CX_ENV("input_load_u64") uint64_t cx_host_input_load_u64(uint64_t offset);
CX_ENV("output_set") void cx_host_output_set(cx_block b, uint64_t n);
CX_ENV("error_set") void cx_host_error_set(cx_block b);
CX_ENV("config_get") cx_block cx_host_config_get(cx_block key);
CX_ENV("var_get") cx_block cx_host_var_get(cx_block key);
CX_ENV("var_set") void cx_host_var_set(cx_block key, cx_block value);
CX_ENV("http_request") cx_block cx_host_http_request(cx_block request, cx_block body);
CX_ENV("http_status_code") int32_t cx_host_http_status_code(void);
CX_ENV("http_headers") cx_block cx_host_http_headers(void);
CX_ENV("log_info") void cx_host_log_info(cx_block b);
CX_ENV("log_warn") void cx_host_log_warn(cx_block b);
CX_ENV("log_error") void cx_host_log_error(cx_block b);
CX_USER("caxton_file_read") cx_block cx_host_file_read(cx_block path);
CX_USER("caxton_file_write") void cx_host_file_write(cx_block path, cx_block data);
CX_USER("caxton_file_list") cx_block cx_host_file_list(cx_block path);
CX_USER("caxton_sqlite_query") cx_block cx_host_sqlite_query(cx_block request);

/* ── bytes between the module and the host ─────────────────────────────────────────────── */

/* Copies n bytes into a new kernel block, 8 bytes per host call. */
static inline cx_block cx_block_from(const void *data, size_t n) {
  cx_block b = cx_host_alloc(n);
  const uint8_t *p = (const uint8_t *)data;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    cx_host_store_u64(b + i, w);
  }
  for (; i < n; i++) cx_host_store_u8(b + i, p[i]);
  return b;
}

static inline cx_block cx_block_str(const char *s) { return cx_block_from(s, strlen(s)); }

/* A kernel block copied into a new NUL-terminated malloc'd buffer (NULL for block 0); *len gets its size. */
static inline char *cx_block_read(cx_block b, size_t *len) {
  if (b == 0) {
    if (len) *len = 0;
    return NULL;
  }
  size_t n = (size_t)cx_host_length(b);
  char *out = (char *)malloc(n + 1);
  if (!out) return NULL;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w = cx_host_load_u64(b + i);
    memcpy(out + i, &w, 8);
  }
  for (; i < n; i++) out[i] = (char)cx_host_load_u8(b + i);
  out[n] = 0;
  if (len) *len = n;
  return out;
}

/* ── input, output, errors ─────────────────────────────────────────────────────────────── */

/* The call's input (the tool arguments as JSON text), NUL-terminated; free() it when done. */
static inline char *cx_input(size_t *len) {
  size_t n = (size_t)cx_host_input_length();
  char *out = (char *)malloc(n + 1);
  if (!out) return NULL;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w = cx_host_input_load_u64(i);
    memcpy(out + i, &w, 8);
  }
  for (; i < n; i++) out[i] = (char)cx_host_input_load_u8(i);
  out[n] = 0;
  if (len) *len = n;
  return out;
}

/* Sets the call's output (what the model sees). */
static inline void cx_output(const char *data, size_t n) { cx_host_output_set(cx_block_from(data, n), n); }
static inline void cx_output_str(const char *s) { cx_output(s, strlen(s)); }

/* Reports an error to the model; return its result from the tool function. */
static inline int32_t cx_fail(const char *message) {
  cx_host_error_set(cx_block_str(message));
  return 1;
}

/* ── configuration, state, logging ─────────────────────────────────────────────────────── */

/* A value declared in the manifest's [config] (NULL when unset); free() it. */
static inline char *cx_config(const char *key) { return cx_block_read(cx_host_config_get(cx_block_str(key)), NULL); }
/* State kept between calls, up to limits.max_state (NULL when unset); free() it. */
static inline char *cx_var_get(const char *key) { return cx_block_read(cx_host_var_get(cx_block_str(key)), NULL); }
static inline void cx_var_set(const char *key, const char *value) {
  cx_host_var_set(cx_block_str(key), cx_block_str(value));
}
static inline void cx_log(const char *message) { cx_host_log_info(cx_block_str(message)); }

/* ── HTTP, files, SQLite (each refused unless the manifest and the operator grant it) ───── */

/* request: {"method","url","headers"} as JSON text; body may be NULL. Returns the body (free it). */
static inline char *cx_http(const char *request, const char *body, int32_t *status, size_t *len) {
  cx_block res = cx_host_http_request(cx_block_str(request), body ? cx_block_str(body) : 0);
  if (status) *status = cx_host_http_status_code();
  char *out = cx_block_read(res, len);
  return out ? out : (char *)calloc(1, 1);
}
static inline char *cx_file_read(const char *path, size_t *len) {
  return cx_block_read(cx_host_file_read(cx_block_str(path)), len);
}
static inline void cx_file_write(const char *path, const char *data, size_t n) {
  cx_host_file_write(cx_block_str(path), cx_block_from(data, n));
}
/* The names in a directory, as a JSON array text. */
static inline char *cx_file_list(const char *path) { return cx_block_read(cx_host_file_list(cx_block_str(path)), NULL); }
/* request: {"database","sql","params","max_rows"}; answer: {"columns","rows","row_count","truncated"} or {"error"}. */
static inline char *cx_sqlite_query(const char *request) {
  return cx_block_read(cx_host_sqlite_query(cx_block_str(request)), NULL);
}

/* ── JSON: a reader over the input text and a growing writer ───────────────────────────── */

/* Skips one JSON value starting at p (after whitespace); returns the character after it, or NULL if malformed. */
static inline const char *cx_json_skip_ws(const char *p) {
  while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
  return p;
}

static inline const char *cx_json_skip(const char *p, int depth) {
  p = cx_json_skip_ws(p);
  if (depth > 64) return NULL;
  if (*p == '"') {
    for (p++; *p && *p != '"'; p++)
      if (*p == '\\' && !*++p) return NULL;
    return *p ? p + 1 : NULL;
  }
  if (*p == '{' || *p == '[') {
    char close = *p == '{' ? '}' : ']';
    p = cx_json_skip_ws(p + 1);
    if (*p == close) return p + 1;
    for (;;) {
      if (close == '}') {
        p = cx_json_skip(p, depth + 1);
        if (!p) return NULL;
        p = cx_json_skip_ws(p);
        if (*p++ != ':') return NULL;
      }
      p = cx_json_skip(p, depth + 1);
      if (!p) return NULL;
      p = cx_json_skip_ws(p);
      if (*p == ',') {
        p++;
        continue;
      }
      return *p == close ? p + 1 : NULL;
    }
  }
  if (!*p) return NULL;
  while (*p && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n' && *p != '\r' && *p != '\t') p++;
  return p;
}

/* The value of member `key` in the JSON object at `obj` (NULL when absent or not an object). */
static inline const char *cx_json_get(const char *obj, const char *key) {
  const char *p = cx_json_skip_ws(obj);
  if (*p != '{') return NULL;
  size_t klen = strlen(key);
  p = cx_json_skip_ws(p + 1);
  while (*p == '"') {
    const char *name = p + 1;
    const char *end = cx_json_skip(p, 0);
    if (!end) return NULL;
    int match = (size_t)(end - 1 - name) == klen && memcmp(name, key, klen) == 0;
    p = cx_json_skip_ws(end);
    if (*p++ != ':') return NULL;
    p = cx_json_skip_ws(p);
    if (match) return p;
    p = cx_json_skip(p, 1);
    if (!p) return NULL;
    p = cx_json_skip_ws(p);
    if (*p != ',') return NULL;
    p = cx_json_skip_ws(p + 1);
  }
  return NULL;
}

/* Parses a JSON number at p into *out; returns 1 on success. (Not strtod: it would link wasi-libc's
 * stdio and its WASI imports.) Exact for integers below 2^53; otherwise within a few ulps. */
static inline int cx_json_number(const char *p, double *out) {
  if (!p) return 0;
  int neg = *p == '-', any = 0, exp10 = 0;
  if (neg) p++;
  double v = 0;
  for (; *p >= '0' && *p <= '9'; p++, any = 1) v = v * 10 + (*p - '0');
  if (*p == '.')
    for (p++; *p >= '0' && *p <= '9'; p++, any = 1) v = v * 10 + (*p - '0'), exp10--;
  if (!any) return 0;
  if (*p == 'e' || *p == 'E') {
    int eneg = *++p == '-', e = 0;
    if (*p == '-' || *p == '+') p++;
    if (*p < '0' || *p > '9') return 0;
    for (; *p >= '0' && *p <= '9'; p++)
      if (e < 100000) e = e * 10 + (*p - '0');
    exp10 += eneg ? -e : e;
  }
  double scale = 1, base = 10;
  for (int e = exp10 < 0 ? -exp10 : exp10; e; e >>= 1, base *= base)
    if (e & 1) scale *= base;
  v = exp10 < 0 ? v / scale : v * scale;
  *out = neg ? -v : v;
  return 1;
}

static inline unsigned cx_hex4(const char *p) {
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    v = v * 16 + (unsigned)(c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : 0);
  }
  return v;
}

/* Decodes the JSON string at p (escapes, \uXXXX as UTF-8) into a new malloc'd text; NULL if not a string. */
static inline char *cx_json_string(const char *p) {
  if (!p || *p != '"') return NULL;
  const char *end = cx_json_skip(p, 0);
  if (!end) return NULL;
  char *out = (char *)malloc((size_t)(end - p) + 1), *o = out;
  if (!out) return NULL;
  for (p++; p < end - 1; p++) {
    if (*p != '\\') {
      *o++ = *p;
      continue;
    }
    switch (*++p) {
      case 'n': *o++ = '\n'; break;
      case 't': *o++ = '\t'; break;
      case 'r': *o++ = '\r'; break;
      case 'b': *o++ = '\b'; break;
      case 'f': *o++ = '\f'; break;
      case 'u': {
        if (!p[1] || !p[2] || !p[3] || !p[4]) break;
        unsigned cp = cx_hex4(p + 1);
        p += 4;
        if (cp < 0x80) *o++ = (char)cp;
        else if (cp < 0x800) *o++ = (char)(0xC0 | (cp >> 6)), *o++ = (char)(0x80 | (cp & 0x3F));
        else *o++ = (char)(0xE0 | (cp >> 12)), *o++ = (char)(0x80 | ((cp >> 6) & 0x3F)), *o++ = (char)(0x80 | (cp & 0x3F));
        break;
      }
      default: *o++ = *p;
    }
  }
  *o = 0;
  return out;
}

/* Iterates a JSON array: call with the array's '[' first, then with the returned cursor; NULL at the end. */
static inline const char *cx_json_next(const char **cursor) {
  const char *p = cx_json_skip_ws(*cursor);
  if (*p == '[' || *p == ',') p = cx_json_skip_ws(p + 1);
  if (*p == ']' || !*p) return NULL;
  const char *item = p;
  const char *after = cx_json_skip(p, 1);
  if (!after) return NULL;
  *cursor = cx_json_skip_ws(after);
  return item;
}

typedef struct {
  char *data;
  size_t len, cap;
} cx_buf;

static inline void cx_buf_put(cx_buf *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 256;
    while (cap < b->len + n + 1) cap *= 2;
    b->data = (char *)realloc(b->data, cap);
    b->cap = cap;
  }
  memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = 0;
}
static inline void cx_buf_str(cx_buf *b, const char *s) { cx_buf_put(b, s, strlen(s)); }

/* Appends s as a JSON string literal. */
static inline void cx_buf_quote(cx_buf *b, const char *s) {
  static const char hex[] = "0123456789abcdef";
  cx_buf_put(b, "\"", 1);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      char esc[2] = {'\\', (char)c};
      cx_buf_put(b, esc, 2);
    } else if (c < 0x20) {
      char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      cx_buf_put(b, esc, 6);
    } else {
      cx_buf_put(b, (const char *)&c, 1);
    }
  }
  cx_buf_put(b, "\"", 1);
}

/* Appends a number: integers below 2^53 exactly, others with 15 significant digits; null for NaN
 * and infinities. Written here because snprintf would link wasi-libc's stdio and its WASI imports. */
static inline void cx_buf_number(cx_buf *b, double v) {
  char tmp[40];
  int n = 0;
  if (v != v || v > 1.7976931348623157e308 || v < -1.7976931348623157e308) {
    cx_buf_str(b, "null");
    return;
  }
  if (v < 0) tmp[n++] = '-', v = -v;
  if (v == 0) {
    cx_buf_put(b, "0", 1);
    return;
  }
  char digits[24];
  int d = 0, exp10 = 0;
  if (v < 9007199254740992.0 && v == (double)(uint64_t)v) {
    uint64_t u = (uint64_t)v;
    do digits[d++] = (char)('0' + u % 10); while (u /= 10);
    while (d) tmp[n++] = digits[--d];
    cx_buf_put(b, tmp, (size_t)n);
    return;
  }
  /* Scale into [1e14, 1e15) to take 15 significant digits. */
  while (v >= 1e15) v /= 10, exp10++;
  while (v < 1e14) v *= 10, exp10--;
  uint64_t u = (uint64_t)(v + 0.5);
  if (u >= 1000000000000000ULL) u /= 10, exp10++;
  do digits[d++] = (char)('0' + u % 10); while (u /= 10);
  /* digits holds 15 digits, least significant first; the value is 0.D1D2... × 10^(exp10 + 15). */
  int point = exp10 + 15, first = 0;
  while (first < d - 1 && digits[first] == '0') first++;
  if (point > 0 && point <= 21) {
    for (int i = d - 1, k = 0; i >= first || k < point; i--, k++) {
      if (k == point) tmp[n++] = '.';
      tmp[n++] = i >= 0 ? digits[i] : '0';
    }
  } else if (point <= 0 && point > -6) {
    tmp[n++] = '0', tmp[n++] = '.';
    for (int k = point; k < 0; k++) tmp[n++] = '0';
    for (int i = d - 1; i >= first; i--) tmp[n++] = digits[i];
  } else {
    tmp[n++] = digits[d - 1];
    if (d - 2 >= first) tmp[n++] = '.';
    for (int i = d - 2; i >= first; i--) tmp[n++] = digits[i];
    int e = point - 1;
    tmp[n++] = 'e';
    if (e < 0) tmp[n++] = '-', e = -e;
    char ed[8];
    int k = 0;
    do ed[k++] = (char)('0' + e % 10); while (e /= 10);
    while (k) tmp[n++] = ed[--k];
  }
  cx_buf_put(b, tmp, (size_t)n);
}

/* Sets the output to the buffer's text and frees it. */
static inline int32_t cx_buf_output(cx_buf *b) {
  cx_output(b->data ? b->data : "", b->len);
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
  return 0;
}

#endif /* CAXTON_H */
