/* jobs/synth.c — `lethe synth`: generate the built-in benchmark data (io/synth/synth.h).
 *
 * Runs on any number of ranks: the data do not depend on the layout, so the job
 * ignores layout.* and builds a plain dp = ranks grid. Rank 0 validates and generates
 * (every rank learns the verdict: exit 2 naming the key on a bad config), then the
 * output folder and resolved config are written, then rank 0 writes the dataset while
 * the other ranks wait for its verdict. Rank 0 also writes synth.json (what was
 * written, the digest, the sizes and timings) to the output folder. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../io/safefile.h"
#include "../io/synth/synth.h"
#include "../mpi/fatal.h"
#include "jobs.h"

int job_synth(int argc, char **argv);


/* The folders above `path` (mkdir -p of its directory part). */
static int make_parent_dirs(const char *path, char *err, size_t errlen)
{
    char tmp[1024];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) {
        snprintf(err, errlen, "synth.output path too long: '%.200s...'", path);
        return -1;
    }
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0777) && errno != EEXIST) {
            snprintf(err, errlen, "synth.output: cannot create folder '%.700s': %s", tmp,
                     strerror(errno));
            return -1;
        }
        *p = '/';
    }
    return 0;
}

/* session_open without the layout: config (with --set overrides) on every rank, a
 * dp = ranks grid, one verdict. */
static void synth_open(lethe_session *s, int argc, char **argv)
{
    memset(s, 0, sizeof(*s));
    s->job = "synth";
    int size, ok;
    char err[1024] = "";
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size));
    ok = grid_create(&s->grid, MPI_COMM_WORLD, size, 1, 1, err, sizeof err) == 0;
    lethe_check(MPI_COMM_WORLD, ok, 2, "%s", err);
    fatal_set_grid(&s->grid);
    ok = session_read_config(s, "synth", argc, argv, err, sizeof err) == 0;
    lethe_check(s->grid.world, ok, 2, "%s", err);
    job_agree_config(&s->cfg, "synth", s->grid.world);
}

static void write_summary(const lethe_session *S, const synth_summary *m)
{
    char path[1100], err[4800];
    session_path(S, "synth.json", path, sizeof path);
    safe_out w;
    if (safe_create(&w, path, err, sizeof err)) lethe_fatal("%s", err);
    FILE *f = w.f;
    const lethe_synth_config *c = &S->cfg.synth;
    fprintf(f,
            "{\n  \"kind\": \"%s\",\n  \"seed\": %llu,\n  \"output\": \"%s\",\n"
            "  \"source_digest\": \"%s\",\n  \"vocab_size\": %lld,\n  \"seq_len\": %d,\n"
            "  \"max_len\": %d,\n  \"rows\": %lld,\n  \"file_bytes\": %lld,\n"
            "  \"jsonl_files\": %d,\n  \"generate_seconds\": %.6f,\n  \"write_seconds\": %.6f,\n"
            "  \"splits\": {",
            m->kind, (unsigned long long)c->seed, c->output, m->source_digest,
            (long long)m->vocab_size, m->seq_len, m->max_len, (long long)m->total_rows,
            (long long)m->file_bytes, m->jsonl_files, m->gen_seconds, m->write_seconds);
    for (int i = 0; i < m->n_splits; i++)
        fprintf(f, "%s\"%s\": %lld", i ? ", " : "", m->split[i], (long long)m->rows[i]);
    fprintf(f, "}\n}\n");
    if (safe_finish(&w, err, sizeof err)) lethe_fatal("%s", err);
}

int job_synth(int argc, char **argv)
{
    lethe_session S;
    synth_open(&S, argc, argv);
    const lethe_synth_config *c = &S.cfg.synth;
    int rank0 = S.grid.rank == 0, ok = 1;
    char err[1024] = "";
    synth_data *d = NULL;
    /* the output replaces what is at its name: never the config this job reads */
    ok = !S.config_path || !safe_same_file(c->output, S.config_path);
    lethe_check(S.grid.world, ok, 2,
                "synth.output '%s' is the config file '%s' itself; choose "
                "another name",
                c->output, S.config_path);
    if (rank0) ok = synth_generate(&d, c, err, sizeof err) == 0;
    lethe_check(S.grid.world, ok, 2, "%s", err);
    session_output(&S);
    if (rank0)
        ok = make_parent_dirs(c->output, err, sizeof err) == 0 &&
             synth_write(d, err, sizeof err) == 0;
    lethe_check(S.grid.world, ok, 1, "%s", err);
    if (rank0) {
        synth_summary m;
        synth_get_summary(d, &m);
        write_summary(&S, &m);
        printf("lethe synth: %s, seed %llu: %lld rows in %d splits (T = %d, longest row %d), "
               "vocab %lld, %s\n",
               m.kind, (unsigned long long)c->seed, (long long)m.total_rows, m.n_splits, m.seq_len,
               m.max_len, (long long)m.vocab_size, m.source_digest);
        for (int i = 0; i < m.n_splits; i++)
            printf("  %-16s %8lld rows\n", m.split[i], (long long)m.rows[i]);
        printf("lethe synth: wrote %s (%.1f KiB)%s%s in %.3f s (generate %.3f s, write %.3f s); "
               "summary in %s/synth.json\n",
               c->output, m.file_bytes / 1024.0, m.jsonl_files ? " and " : "",
               m.jsonl_files ? "JSON lines per split" : "", m.gen_seconds + m.write_seconds,
               m.gen_seconds, m.write_seconds, S.cfg.output.dir);
        synth_free(d);
    }
    session_close(&S);
    return 0;
}
