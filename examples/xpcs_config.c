/*
 * xpcs_config.c - fit_xpcs --config FILE.yaml (see xpcs_config.h for the
 * keys).  The YAML file is loaded whole as a libyaml document (a
 * configuration is small), then looked up key path by key path; every
 * failure names the path ("analyzer_parameters.dt: expected a number, not
 * 'abc'").
 */
#include "xpcs_config.h"
#include "nlsq_xpcs.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

typedef struct cfg_doc {
    yaml_document_t doc;
    const char *path;     /* the file, for messages */
    char *err;
    size_t es;
} cfg_doc;

static int cfg_fail(cfg_doc *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int cfg_fail(cfg_doc *c, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(c->err, c->es, "--config %s: %s", c->path, msg);
    for (char *p = c->err; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Nodes                                                                     */
/* ------------------------------------------------------------------------ */

static yaml_node_t *node_at(cfg_doc *c, int index) { return yaml_document_get_node(&c->doc, index); }

static const char *scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* A YAML null ("", "~", "null") counts as absent. */
static int is_null(const yaml_node_t *n)
{
    const char *s = scalar(n);
    return !n || (s && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                  (!*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null")));
}

/* The value of key in mapping map, or NULL. */
static yaml_node_t *map_get(cfg_doc *c, yaml_node_t *map, const char *key)
{
    if (!map || map->type != YAML_MAPPING_NODE) return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        const char *k = scalar(node_at(c, p->key));
        if (k && !strcmp(k, key)) {
            yaml_node_t *v = node_at(c, p->value);
            return is_null(v) ? NULL : v;
        }
    }
    return NULL;
}

/* The node at a dotted path from the root ("analyzer_parameters.dt"); NULL
 * when a component is absent.  A component that is not a mapping fails. */
static int get_path(cfg_doc *c, const char *path, yaml_node_t **out)
{
    yaml_node_t *n = yaml_document_get_root_node(&c->doc);
    char key[64];
    const char *s = path;
    *out = NULL;
    while (n) {
        const char *dot = strchr(s, '.');
        size_t len = dot ? (size_t)(dot - s) : strlen(s);
        if (len >= sizeof key) return cfg_fail(c, "%s: key too long", path);
        memcpy(key, s, len);
        key[len] = '\0';
        if (n->type != YAML_MAPPING_NODE)
            return cfg_fail(c, "%.*s: expected a mapping (key: value lines)", (int)(s - path - 1),
                            path);
        n = map_get(c, n, key);
        if (!dot) break;
        s = dot + 1;
    }
    *out = n;
    return 0;
}

static int to_number(cfg_doc *c, const char *what, const yaml_node_t *n, double *v)
{
    const char *s = scalar(n);
    char *end;
    if (!s) return cfg_fail(c, "%s: expected a number, not a list or mapping", what);
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || *end || errno == ERANGE || !isfinite(x))
        return cfg_fail(c, "%s: expected a number, not '%.80s'", what, s);
    *v = x;
    return 0;
}

/* Number at path: 1 found (in *v), 0 absent, -1 error. */
static int get_number(cfg_doc *c, const char *path, double *v)
{
    yaml_node_t *n;
    if (get_path(c, path, &n) < 0) return -1;
    if (!n) return 0;
    return to_number(c, path, n, v) < 0 ? -1 : 1;
}

static int get_string(cfg_doc *c, const char *path, const char **v)
{
    yaml_node_t *n;
    if (get_path(c, path, &n) < 0) return -1;
    if (!n) return 0;
    if (!(*v = scalar(n))) return cfg_fail(c, "%s: expected a string", path);
    return 1;
}

/* Sequence at path: 1 found, 0 absent, -1 not a sequence. */
static int get_seq(cfg_doc *c, const char *path, yaml_node_t **seq)
{
    if (get_path(c, path, seq) < 0) return -1;
    if (!*seq) return 0;
    if ((*seq)->type != YAML_SEQUENCE_NODE) return cfg_fail(c, "%s: expected a list", path);
    return 1;
}

static size_t seq_len(const yaml_node_t *s)
{
    return (size_t)(s->data.sequence.items.top - s->data.sequence.items.start);
}

static yaml_node_t *seq_item(cfg_doc *c, const yaml_node_t *s, size_t i)
{
    return node_at(c, s->data.sequence.items.start[i]);
}

/* ------------------------------------------------------------------------ */
/* Parameter names                                                           */
/* ------------------------------------------------------------------------ */

int xpcs_config_param_index(const char *name)
{
    static const struct { const char *alias; int k; } aliases[] = {
        {"gamma_dot_t0", 3}, {"gamma_dot_t_offset", 5}, {"phi_0", 6}};
    if (!name) return -1;
    int k = fit_xpcs_param_index(name);
    for (size_t i = 0; k < 0 && i < sizeof aliases / sizeof aliases[0]; i++)
        if (!strcmp(name, aliases[i].alias)) k = aliases[i].k;
    return k;
}

/* Parameter k is fitted in this mode (static: the first 3). */
static int in_mode(const fit_xpcs_args *a, int k) { return k >= 0 && (a->mode == 0 || k < 3); }

/* ------------------------------------------------------------------------ */
/* Sections                                                                  */
/* ------------------------------------------------------------------------ */

static int apply_data_file(cfg_doc *c, fit_xpcs_args *a, xpcs_config_store *store)
{
    const char *fp = NULL, *dir = NULL, *name = NULL;
    int r1 = get_string(c, "experimental_data.file_path", &fp);
    int r2 = get_string(c, "experimental_data.data_folder_path", &dir);
    int r3 = get_string(c, "experimental_data.data_file_name", &name);
    if (r1 < 0 || r2 < 0 || r3 < 0) return -1;
    if (a->input || (!fp && !name)) return 0;
    size_t n = (fp ? strlen(fp) : strlen(name) + (dir ? strlen(dir) : 0)) + 2;
    if (!(store->input = malloc(n))) return cfg_fail(c, "out of memory");
    if (fp) snprintf(store->input, n, "%s", fp);
    else if (dir && *dir && dir[strlen(dir) - 1] != '/') snprintf(store->input, n, "%s/%s", dir, name);
    else snprintf(store->input, n, "%s%s", dir ? dir : "", name);
    a->input = store->input;
    return 0;
}

static int apply_analyzer(cfg_doc *c, fit_xpcs_args *a)
{
    double v;
    int r;
    if ((r = get_number(c, "analyzer_parameters.dt", &v)) < 0) return -1;
    if (r && !(v > 0)) return cfg_fail(c, "analyzer_parameters.dt: must be > 0, not %g", v);
    if (r && !a->have_dt) a->dt = v, a->have_dt = 1;
    if ((r = get_number(c, "analyzer_parameters.scattering.wavevector_q", &v)) < 0) return -1;
    if (r && !(v > 0))
        return cfg_fail(c, "analyzer_parameters.scattering.wavevector_q: must be > 0, not %g", v);
    if (r && isnan(a->q) && !a->q_all) a->q = v;
    if ((r = get_number(c, "analyzer_parameters.geometry.stator_rotor_gap", &v)) < 0) return -1;
    if (r && !(v > 0))
        return cfg_fail(c, "analyzer_parameters.geometry.stator_rotor_gap: must be > 0, not %g", v);
    if (r && !a->have_gap) a->gap = v, a->have_gap = 1;
    double s = NAN, e = NAN;
    int rs = get_number(c, "analyzer_parameters.start_frame", &s);
    int re = rs < 0 ? -1 : get_number(c, "analyzer_parameters.end_frame", &e);
    if (rs < 0 || re < 0) return -1;
    if (a->have_frames || (!rs && !re)) return 0;
    if (rs && (s != floor(s) || s < 1))
        return cfg_fail(c, "analyzer_parameters.start_frame: a frame number from 1, not %g", s);
    if (re && (e != floor(e) || e < (rs ? s : 1) || e > 1e15))
        return cfg_fail(c, "analyzer_parameters.end_frame: a frame number from start_frame, not %g", e);
    a->first = rs ? (size_t)s - 1 : 0;   /* 1-based inclusive -> 0-based inclusive */
    a->last = re ? (size_t)e - 1 : SIZE_MAX;
    a->have_frames = 1;
    return 0;
}

static int apply_mode(cfg_doc *c, fit_xpcs_args *a)
{
    const char *m = NULL;
    int r = get_string(c, "analysis_mode", &m);
    if (r <= 0 || a->have_mode) return r;
    if (!strcmp(m, "laminar_flow")) a->mode = 0;
    else if (!strncmp(m, "static", 6)) a->mode = 1;
    else return cfg_fail(c, "analysis_mode: laminar_flow or static..., not '%.60s'", m);
    return 0;
}

/* initial_parameters.parameter_names + values: start values (--init wins). */
static int apply_values(cfg_doc *c, fit_xpcs_args *a, double *start)
{
    yaml_node_t *names, *vals;
    int rn = get_seq(c, "initial_parameters.parameter_names", &names);
    int rv = rn < 0 ? -1 : get_seq(c, "initial_parameters.values", &vals);
    if (rn < 0 || rv < 0) return -1;
    if (!rn || !rv) return 0;
    if (seq_len(names) != seq_len(vals))
        return cfg_fail(c, "initial_parameters: %zu parameter_names but %zu values", seq_len(names),
                        seq_len(vals));
    for (size_t i = 0; i < seq_len(names); i++) {
        char what[64];
        const char *nm = scalar(seq_item(c, names, i));
        if (!nm) return cfg_fail(c, "initial_parameters.parameter_names[%zu]: expected a name", i);
        snprintf(what, sizeof what, "initial_parameters.values[%zu]", i);
        double v;
        if (to_number(c, what, seq_item(c, vals, i), &v) < 0) return -1;
        int k = xpcs_config_param_index(nm);
        if (!in_mode(a, k)) continue;   /* contrast, offset, shear in static mode: not ours */
        start[k] = v;
        if (isnan(a->init[k])) a->init[k] = v;
    }
    return 0;
}

static int apply_bounds(cfg_doc *c, fit_xpcs_args *a)
{
    yaml_node_t *b;
    int r = get_seq(c, "parameter_space.bounds", &b);
    if (r <= 0) return r;
    for (size_t i = 0; i < seq_len(b); i++) {
        yaml_node_t *e = seq_item(c, b, i);
        char what[64];
        const char *nm = scalar(map_get(c, e, "name"));
        if (e->type != YAML_MAPPING_NODE || !nm)
            return cfg_fail(c, "parameter_space.bounds[%zu]: expected {name, min, max}", i);
        int k = xpcs_config_param_index(nm);
        if (!in_mode(a, k)) continue;
        yaml_node_t *lo = map_get(c, e, "min"), *hi = map_get(c, e, "max");
        snprintf(what, sizeof what, "parameter_space.bounds[%zu].min", i);
        if (lo && to_number(c, what, lo, &a->lower[k]) < 0) return -1;
        snprintf(what, sizeof what, "parameter_space.bounds[%zu].max", i);
        if (hi && to_number(c, what, hi, &a->upper[k]) < 0) return -1;
        if (a->lower[k] > a->upper[k])
            return cfg_fail(c, "parameter_space.bounds[%zu]: %s min %g > max %g", i, nm,
                            a->lower[k], a->upper[k]);
    }
    return 0;
}

/* Hold parameter k at value v (lower == upper == start). */
static int hold(cfg_doc *c, fit_xpcs_args *a, const char *what, int k, double v)
{
    if (isnan(v))
        return cfg_fail(c, "%s: %s is held but has no value (give it in initial_parameters.values)",
                        what, nlsq_xpcs_param_name((size_t)k));
    a->lower[k] = a->upper[k] = a->init[k] = v;
    return 0;
}

static int apply_fixed(cfg_doc *c, fit_xpcs_args *a, const double *start)
{
    const char *what = "initial_parameters.fixed_parameters";
    yaml_node_t *f;
    if (get_path(c, what, &f) < 0) return -1;
    if (f && f->type == YAML_MAPPING_NODE) {   /* {name: value} */
        for (yaml_node_pair_t *p = f->data.mapping.pairs.start; p < f->data.mapping.pairs.top; p++) {
            int k = xpcs_config_param_index(scalar(node_at(c, p->key)));
            double v;
            if (!in_mode(a, k)) continue;
            if (to_number(c, what, node_at(c, p->value), &v) < 0 || hold(c, a, what, k, v) < 0)
                return -1;
        }
    } else if (f && f->type == YAML_SEQUENCE_NODE) {   /* names, held at their start */
        for (size_t i = 0; i < seq_len(f); i++) {
            int k = xpcs_config_param_index(scalar(seq_item(c, f, i)));
            if (in_mode(a, k) && hold(c, a, what, k, isnan(a->init[k]) ? start[k] : a->init[k]) < 0)
                return -1;
        }
    } else if (f) {
        return cfg_fail(c, "%s: expected a list of names or a {name: value} mapping", what);
    }
    yaml_node_t *act;
    int r = get_seq(c, "initial_parameters.active_parameters", &act);
    if (r <= 0) return r;
    for (int k = 0; k < FIT_XPCS_N_PHYS; k++) {   /* not listed: held at the start */
        int listed = 0;
        for (size_t i = 0; i < seq_len(act); i++)
            listed |= xpcs_config_param_index(scalar(seq_item(c, act, i))) == k;
        if (!listed && in_mode(a, k) &&
            hold(c, a, "initial_parameters.active_parameters", k,
                 isnan(a->init[k]) ? start[k] : a->init[k]) < 0)
            return -1;
    }
    return 0;
}

static int apply_phi_filter(cfg_doc *c, fit_xpcs_args *a)
{
    yaml_node_t *en, *tr;
    if (get_path(c, "phi_filtering.enabled", &en) < 0) return -1;
    const char *e = scalar(en);
    if (e && (!strcmp(e, "false") || !strcmp(e, "False") || !strcmp(e, "no"))) return 0;
    int r = get_seq(c, "phi_filtering.target_ranges", &tr);
    if (r <= 0) return r;
    if (seq_len(tr) > FIT_XPCS_MAX_PHI_RANGES)
        return cfg_fail(c, "phi_filtering.target_ranges: at most %d ranges", FIT_XPCS_MAX_PHI_RANGES);
    for (size_t i = 0; i < seq_len(tr); i++) {
        yaml_node_t *it = seq_item(c, tr, i);
        yaml_node_t *lo = map_get(c, it, "min_angle"), *hi = map_get(c, it, "max_angle");
        char what[64];
        snprintf(what, sizeof what, "phi_filtering.target_ranges[%zu]", i);
        if (!lo || !hi) return cfg_fail(c, "%s: expected {min_angle, max_angle}", what);
        if (to_number(c, what, lo, &a->phi_ranges[i][0]) < 0 ||
            to_number(c, what, hi, &a->phi_ranges[i][1]) < 0)
            return -1;
        if (a->phi_ranges[i][0] > a->phi_ranges[i][1])
            return cfg_fail(c, "%s: min_angle > max_angle", what);
    }
    a->n_phi_ranges = seq_len(tr);
    return 0;
}

/* ------------------------------------------------------------------------ */

static int load(cfg_doc *c)
{
    FILE *fp = fopen(c->path, "rb");
    if (!fp) return cfg_fail(c, "cannot open: %s", strerror(errno));
    yaml_parser_t parser;
    int ok = yaml_parser_initialize(&parser);
    if (ok) {
        yaml_parser_set_input_file(&parser, fp);
        ok = yaml_parser_load(&parser, &c->doc);
        if (!ok)
            cfg_fail(c, "line %zu column %zu: %s", parser.problem_mark.line + 1,
                     parser.problem_mark.column + 1, parser.problem ? parser.problem : "YAML error");
        yaml_parser_delete(&parser);
    } else {
        cfg_fail(c, "out of memory");
    }
    fclose(fp);
    if (!ok) return -1;
    yaml_node_t *root = yaml_document_get_root_node(&c->doc);
    if (!root || root->type != YAML_MAPPING_NODE) {
        yaml_document_delete(&c->doc);
        return cfg_fail(c, "not a YAML mapping (key: value lines)");
    }
    return 0;
}

int xpcs_config_apply(const char *path, fit_xpcs_args *a, xpcs_config_store *store, char *err,
                      size_t es)
{
    cfg_doc c;
    memset(&c, 0, sizeof c);
    c.path = path;
    c.err = err;
    c.es = es;
    memset(store, 0, sizeof *store);
    if (load(&c) < 0) return -1;
    double start[FIT_XPCS_N_PHYS];
    for (int k = 0; k < FIT_XPCS_N_PHYS; k++) start[k] = NAN;
    int rc = apply_data_file(&c, a, store) < 0 || apply_mode(&c, a) < 0 ||
                     apply_analyzer(&c, a) < 0 || apply_values(&c, a, start) < 0 ||
                     apply_bounds(&c, a) < 0 || apply_fixed(&c, a, start) < 0 ||
                     apply_phi_filter(&c, a) < 0
                 ? -1
                 : 0;
    yaml_document_delete(&c.doc);
    return rc;
}

void xpcs_config_store_free(xpcs_config_store *store)
{
    if (!store) return;
    free(store->input);
    store->input = NULL;
}
