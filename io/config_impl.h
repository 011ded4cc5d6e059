/* io/config_impl.h — what the parts of the config code share (internal): the key
 * table's row type, the parsing context, and the helpers each part exports
 * (config_keys.c: the schema, lookups, value formatting, defaults, presets;
 * config.c: parsing, validation, overrides, rules, loading; config_out.c: the resolved
 * config as JSON and the key listing). */
#ifndef LETHE_IO_CONFIG_IMPL_H
#define LETHE_IO_CONFIG_IMPL_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* A config is a few hundred bytes; 16 MiB stops a wrong path (a dataset, a
 * checkpoint) from being slurped into memory on every rank. */
#define CONFIG_MAX_BYTES (16u << 20)
/* Seeds given as JSON numbers must be below 2^53: every integer there is a
 * double, and any literal from 2^53 + 1 up rounds to >= 2^53, so a seed that
 * the parser silently changed is refused rather than used. Larger seeds are
 * decimal strings. */
#define EXACT_DOUBLE_MAX 9007199254740991.0

#if defined(__GNUC__)
#define CFG_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CFG_PRINTF(a, b)
#endif

/* T_ENUM keys hold the name itself (a char buffer); T_CHOICE keys hold its index in
 * choices, the value of a model/model_config.h enum declared in the same order. */
typedef enum { T_INT, T_U64, T_FLOAT, T_BOOL, T_STRING, T_ENUM, T_CHOICE } key_type;

typedef struct {
    const char *name; /* dotted path, e.g. "model.dim" */
    key_type type;
    size_t off;           /* offsetof(lethe_config, field) */
    size_t cap;           /* sizeof the field (string buffers: capacity incl. NUL) */
    double def;           /* default of int / uint64 / float / bool keys */
    const char *sdef;     /* default of string / enum / choice keys */
    double lo, hi;        /* int / float range; string: minimum length in lo */
    int lo_open, hi_open; /* float bounds that exclude the endpoint */
    const char *choices;  /* enum and choice: "a|b|c" */
    const char *desc;
} key_def;

typedef struct {
    char origin[300]; /* escaped file name */
    char **overrides;
    int n_overrides;
    int applied; /* overrides applied so far (only those can be blamed) */
    char *err;
    size_t errlen;
} ctx;

/* The schema: one row per key (config_keys.c). */
extern const key_def SCHEMA[];
#define N_KEYS config_key_count()

/* config.c */
/* One line naming the file (or the override to blame) into x->err; returns -1. */
int cf_fail(ctx *x, const char *fmt, ...) CFG_PRINTF(2, 3);
/* A failed parse of text[0..len) at pos: one line naming line, column and what (config_syntax.c). */
int cf_parse_error(ctx *x, const char *text, size_t len, size_t pos);
/* 1-based line and column (in characters, not bytes) of text[pos]. */
void cf_line_col(const char *text, size_t pos, int *line, int *col);

/* config_carry.c: the model and hf sections of base_json into root (see config_load_base);
 * 0 or -1 via cf_fail. */
int cf_carry_base(ctx *x, cJSON *root, const char *base_json, const char *base_origin);
/* A JSON value printed on one line for messages (control bytes as '?', cut when long). */
void cf_shown_json(char *buf, size_t len, const cJSON *v);
/* The same with the stored config of root's init.checkpoint, if one is set. */
int cf_carry_init_checkpoint(ctx *x, cJSON *root);

/* config_keys.c */
const key_def *cf_find_key(const char *name);
int cf_is_section(const char *path);
void *cf_field(lethe_config *c, const key_def *k);
const void *cf_cfield(const lethe_config *c, const key_def *k);
void cf_fmt_double(char *buf, size_t n, double v);
double cf_float_to_short_double(float f);
void cf_escape(char *dst, size_t n, const char *s, size_t maxc);
void cf_describe(char *buf, size_t n, const cJSON *v);
void cf_fmt_range(char *buf, size_t n, const key_def *k);
void cf_fmt_expected(char *buf, size_t n, const key_def *k);
void cf_fmt_value(char *buf, size_t n, const lethe_config *c, const key_def *k);
const char *cf_type_name(key_type t);
void cf_set_string(char *dst, size_t cap, const char *s);
int cf_choice_index(const char *choices, const char *name);
void cf_choice_name(char *buf, size_t n, const char *choices, int index);
int cf_apply_preset(ctx *x, cJSON *root);

#endif
