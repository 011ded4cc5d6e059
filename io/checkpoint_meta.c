/* io/checkpoint_meta.c — what a checkpoint's metadata and contents must satisfy before a
 * job trusts them: the metadata digest (step, epoch, loader cursor, the job's named
 * values, the resolved config, layout, world size, version and every rank's RNG state in
 * one 64-bit value, so that an edited field is caught like an edited tensor), the bounds
 * of each field a job turns into a loop count or a rank count, the stored model config
 * against the job's (a weight table that happens to fit is not the same model: an untied
 * head, another rope_theta), and finite tensors. Used by ckpt_save and ckpt_load
 * (checkpoint.c, checkpoint_load.c) and by convert's import. */
#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint_impl.h"
#include "config.h"

static uint64_t fold(uint64_t h, uint64_t w)
{
    return ck_mix64(h ^ w);
}

uint64_t ckpt_meta_digest(const lethe_ckpt_meta *m, const uint64_t *rng)
{
    uint64_t h = 0x6c657468652d6d31ULL; /* "lethe-m1" */
    h = fold(h, (uint64_t)m->step);
    h = fold(h, (uint64_t)m->epoch);
    for (int i = 0; i < 3; i++) h = fold(h, (uint64_t)(int64_t)m->layout[i]);
    h = fold(h, (uint64_t)(int64_t)m->world_size);
    h = fold(h, lethe_hash_str(m->version));
    h = fold(h, (uint64_t)(int64_t)m->n_cursor);
    for (int i = 0; i < m->n_cursor && i < LETHE_CKPT_CURSOR_MAX; i++)
        h = fold(h, (uint64_t)m->cursor[i]);
    /* /job is read back sorted by name: its values count in any order */
    uint64_t job = 0;
    for (int i = 0; i < m->n_job && i < LETHE_CKPT_JOB_MAX; i++) {
        uint64_t bits;
        memcpy(&bits, &m->job_value[i], sizeof bits);
        job += ck_mix64(lethe_hash_str(m->job_key[i]) ^ ck_mix64(bits));
    }
    h = fold(h, (uint64_t)(int64_t)m->n_job);
    h = fold(h, job);
    h = fold(h, lethe_hash_str(m->config_json ? m->config_json : ""));
    for (int r = 0; r < m->world_size; r++) h = fold(h, rng[r]);
    return h;
}

int ck_check_meta(const lethe_ckpt_meta *m, char *msg)
{
    if (m->step < 0 || m->step > INT_MAX)
        return ck_fail(msg, "attribute 'step' is %lld, expected [0, %d]", (long long)m->step,
                       INT_MAX);
    if (m->epoch < 0 || m->epoch > INT_MAX)
        return ck_fail(msg, "attribute 'epoch' is %lld, expected [0, %d]", (long long)m->epoch,
                       INT_MAX);
    if (m->world_size < 1 || m->world_size > LETHE_CKPT_WORLD_MAX)
        return ck_fail(msg, "attribute 'world_size' is %d, expected [1, %d]", m->world_size,
                       LETHE_CKPT_WORLD_MAX);
    int64_t prod = 1;
    for (int i = 0; i < 3; i++) {
        if (m->layout[i] < 1 || m->layout[i] > m->world_size) prod = -1;
        if (prod > 0) prod *= m->layout[i];
    }
    if (prod != m->world_size)
        return ck_fail(msg,
                       "attribute 'layout' is [%d,%d,%d], expected dp x pp x tp = world_size %d",
                       m->layout[0], m->layout[1], m->layout[2], m->world_size);
    for (int i = 0; i < m->n_job; i++)
        if (!isfinite(m->job_value[i]))
            return ck_fail(msg, "group '/job': value '%s' is %g, expected a finite number",
                           m->job_key[i], m->job_value[i]);
    return 1;
}

/* The model keys that make two configs the same model for a given weight table; the
 * initialisation (model.init_*) does not matter once weights are loaded. */
static const char *const model_keys[] = {
    "vocab_size",  "dim",        "n_layers",           "n_heads",
    "n_kv_heads",  "mlp_dim",    "max_seq_len",        "rope_theta",
    "rope_type",   "rope_factor", "rope_low_freq_factor", "rope_high_freq_factor",
    "rope_original_max_seq_len", "norm_eps", "tie_embeddings"};

int ck_check_model_config(const char *stored, const char *expect, char *msg)
{
    if (!expect) return 1;
    cJSON *a = cJSON_Parse(stored ? stored : ""), *b = cJSON_Parse(expect);
    const cJSON *ma = cJSON_GetObjectItemCaseSensitive(a, "model");
    const cJSON *mb = cJSON_GetObjectItemCaseSensitive(b, "model");
    int ok = 1;
    if (!cJSON_IsObject(ma))
        ok = ck_fail(msg, "dataset '/meta/config' holds no model config to compare with the "
                          "job's");
    for (size_t k = 0; ok && cJSON_IsObject(mb) && k < sizeof model_keys / sizeof *model_keys;
         k++) {
        const cJSON *va = cJSON_GetObjectItemCaseSensitive(ma, model_keys[k]);
        const cJSON *vb = cJSON_GetObjectItemCaseSensitive(mb, model_keys[k]);
        if (!vb || (va && cJSON_Compare(va, vb, 1))) continue;
        char *sa = va ? cJSON_PrintUnformatted(va) : NULL, *sb = cJSON_PrintUnformatted(vb);
        char key[64], line[CK_MSG - 64];
        snprintf(key, sizeof key, "model.%s", model_keys[k]);
        config_model_conflict(line, sizeof line, key, sa, sb, "the checkpoint");
        ok = ck_fail(msg, "%s", line);
        cJSON_free(sa);
        cJSON_free(sb);
    }
    cJSON_Delete(a);
    cJSON_Delete(b);
    return ok;
}

int ck_read_config(hid_t fid, const char *path, char **out, char *msg)
{
    *out = NULL;
    hid_t ds = H5Lexists(fid, "/meta", H5P_DEFAULT) > 0 &&
                       H5Lexists(fid, "/meta/config", H5P_DEFAULT) > 0
                   ? H5Dopen2(fid, "/meta/config", H5P_DEFAULT)
                   : -1;
    size_t len = 0;
    hid_t ty = ds >= 0 ? H5Dget_type(ds) : -1;
    if (ty >= 0 && H5Tget_class(ty) == H5T_STRING && !H5Tis_variable_str(ty))
        len = H5Tget_size(ty);
    if (ty >= 0) H5Tclose(ty);
    int ok = 1;
    if (!len)
        ok = ck_fail(msg, "dataset '/meta/config' is missing or not a string");
    else if (len > CK_CONFIG_MAX)
        ok = ck_fail(msg, "dataset '/meta/config' is a string of %zu bytes, at most %d", len,
                     CK_CONFIG_MAX);
    if (ok) {
        char *cfg = lethe_calloc(len + 1, 1, "checkpoint config");
        ty = ck_str_type(path, "dataset '/meta/config'", len);
        if (H5Dread(ds, ty, H5S_ALL, H5S_ALL, H5P_DEFAULT, cfg) < 0)
            ok = ck_fail(msg, "cannot read dataset '/meta/config'");
        H5Tclose(ty);
        *out = cfg;
    }
    if (ds >= 0) H5Dclose(ds);
    return ok;
}

int ckpt_read_config(const char *path, MPI_Comm comm, char **json, char *err, size_t errlen)
{
    char msg[CK_MSG] = "";
    *json = NULL;
    hid_t fid = ck_open_for_read(path, comm, NULL, msg);
    if (fid < 0) return ck_result(msg, path, err, errlen);
    int ok = ck_read_config(fid, path, json, msg);
    if (H5Fclose(fid) < 0) ok = ck_fail(msg, "closing failed");
    lethe_agree(comm, ok && !msg[0], msg, CK_MSG, NULL);
    if (msg[0]) {
        free(*json);
        *json = NULL;
    }
    return ck_result(msg, path, err, errlen);
}

int ckpt_first_nonfinite(const lethe_param *p, const float *x, int64_t *row, int64_t *col)
{
    for (int64_t i = 0; i < p->vshape[0]; i++) {
        const float *r = x + i * p->lshape[1];
        /* exponent bits all set = Inf or NaN; an OR over integers vectorises */
        uint32_t bad = 0;
        for (int64_t j = 0; j < p->vshape[1]; j++) {
            uint32_t u;
            memcpy(&u, &r[j], sizeof u);
            bad |= (u & 0x7f800000u) == 0x7f800000u;
        }
        if (!bad) continue;
        for (int64_t j = 0; j < p->vshape[1]; j++)
            if (!isfinite(r[j])) {
                *row = p->gstart[0] + i;
                *col = p->gstart[1] + j;
                return 1;
            }
    }
    return 0;
}

int ck_check_finite(const lethe_params *t, int nkinds, char *msg)
{
    const float *bufs[CK_KINDS] = {t->data, t->m, t->v};
    for (int kind = 0; kind < nkinds; kind++)
        for (int i = 0; i < t->n; i++) {
            const lethe_param *p = &t->p[i];
            int64_t r, c;
            if (!ckpt_first_nonfinite(p, bufs[kind] + p->off, &r, &c)) continue;
            float v = bufs[kind][p->off + (size_t)(r - p->gstart[0]) * p->lshape[1] +
                                 (size_t)(c - p->gstart[1])];
            char at[48];
            if (p->ndim == 1)
                snprintf(at, sizeof at, "[%lld]", (long long)r);
            else
                snprintf(at, sizeof at, "[%lld,%lld]", (long long)r, (long long)c);
            return ck_fail(msg,
                           "dataset '%s/%s': element %s is %g: the checkpoint holds "
                           "non-finite values",
                           ck_group[kind], p->name, at, (double)v);
        }
    return 1;
}
