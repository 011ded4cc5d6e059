/* slurm/plan_units.c — the plan's units: one sbatch submission each, a plain job or a
 * job array of one hyper-parameter group and kind, with their names, the units and
 * earlier submissions each waits for (the report waits for everything), and the order
 * they are submitted in (dependencies first, ties in study order). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan_impl.h"

static int find_unit_by_group(const ctx_t *c, int group, const char *kind)
{
    for (int u = 0; u < c->nunits; u++) {
        const unit_t *x = &c->units[u];
        if (x->array && !strcmp(x->kind, kind) && c->s.jobs[x->members[0]].array_group == group)
            return u;
    }
    return -1;
}

static int name_taken(const ctx_t *c, const char *name)
{
    for (int j = 0; j < c->s.njobs; j++)
        if (!strcmp(c->s.jobs[j].name, name)) return 1;
    for (int u = 0; u < c->nunits; u++)
        if (c->units[u].array && !strcmp(c->units[u].name, name)) return 1;
    return 0;
}

/* Each job's ranks and nodes, and its unit (a new one, or its group's array). */
static int assign_units(ctx_t *c)
{
    study *s = &c->s;
    for (int j = 0; j < s->njobs; j++) {
        study_job *J = &s->jobs[j];
        job_plan *p = &c->plan[j];
        int rc = sl_job_ranks(c, J, &p->ranks);
        if (rc) return rc;
        sl_job_nodes(c, j, p->ranks, &p->nodes, &p->per_node);
        p->unit = -1;
        int u = J->array_group > 0 ? find_unit_by_group(c, J->array_group, J->job) : -1;
        if (u < 0) {
            u = c->nunits++;
            unit_t *x = &c->units[u];
            x->kind = J->job;
            x->array = J->array_group > 0;
            x->ranks = p->ranks;
            x->nodes = p->nodes;
            x->per_node = p->per_node;
            snprintf(x->name, sizeof x->name, "%s", J->name);
        }
        unit_t *x = &c->units[u];
        if (x->ranks != p->ranks || x->nodes != p->nodes)
            return slurm_fail(
                c->err, 2,
                "slurm: jobs '%s' and '%s' of one hyper-parameter group need %d ranks on "
                "%d nodes and %d on %d (a job array needs one shape)",
                s->jobs[x->members[0]].name, J->name, x->ranks, x->nodes, p->ranks, p->nodes);
        p->task = x->nmembers;
        if (sl_add_unique(c->err, &x->members, &x->nmembers, j)) return 1;
        if (p->status == ST_TODO) p->unit = u;
    }
    return 0;
}

/* Array names: the members' longest common prefix up to its last '-'. */
static void name_arrays(ctx_t *c)
{
    const study *s = &c->s;
    for (int u = 0; u < c->nunits; u++) {
        unit_t *x = &c->units[u];
        if (!x->array) continue;
        char pre[160];
        snprintf(pre, sizeof pre, "%s", s->jobs[x->members[0]].name);
        for (int m = 1; m < x->nmembers; m++) {
            const char *n = s->jobs[x->members[m]].name;
            size_t k = 0;
            while (pre[k] && pre[k] == n[k]) k++;
            pre[k] = 0;
        }
        char *dash = strrchr(pre, '-');
        if (dash) *dash = 0;
        x->name[0] = 0;
        if (pre[0] && !name_taken(c, pre))
            snprintf(x->name, sizeof x->name, "%s", pre);
        else
            snprintf(x->name, sizeof x->name, "%s-group%d", x->kind,
                     s->jobs[x->members[0]].array_group);
    }
}

/* Dependencies of the units that will be submitted. */
static int add_deps(ctx_t *c)
{
    const study *s = &c->s;
    for (int j = 0; j < s->njobs; j++) {
        const job_plan *p = &c->plan[j];
        if (p->unit < 0) continue;
        unit_t *x = &c->units[p->unit];
        const study_job *J = &s->jobs[j];
        if (!strcmp(J->job, "report") && !J->config_json) continue; /* report_deps */
        for (int d = 0; d < J->ndeps; d++) {
            const job_plan *q = &c->plan[J->deps[d]];
            if (q->status == ST_DONE) continue;
            if (q->status == ST_QUEUED) {
                if (sl_add_ext(c->err, x, q->prev_id)) return 1;
            } else if (q->unit == p->unit) {
                return slurm_fail(c->err, 2,
                                  "slurm: job '%s' depends on '%s' of its own job array '%s'",
                                  J->name, s->jobs[J->deps[d]].name, x->name);
            } else if (sl_add_unique(c->err, &x->deps, &x->ndeps, q->unit)) {
                return 1;
            }
        }
    }
    return 0;
}

/* The report reads every result: it waits for everything else (a study job lists at
 * most STUDY_MAX_DEPS direct dependencies), that is for every submission no other one
 * waits for, and for every job still queued from before. */
static int report_deps(ctx_t *c)
{
    const study *s = &c->s;
    for (int j = 0; j < s->njobs; j++) {
        const job_plan *p = &c->plan[j];
        if (p->unit < 0 || strcmp(s->jobs[j].job, "report")) continue;
        unit_t *x = &c->units[p->unit];
        for (int k = 0; k < s->njobs; k++) {
            const job_plan *q = &c->plan[k];
            if (k == j) continue;
            if (q->status == ST_QUEUED && sl_add_ext(c->err, x, q->prev_id)) return 1;
            if (q->unit < 0 || q->unit == p->unit) continue;
            int waited_for = 0;
            for (int u = 0; u < c->nunits && !waited_for; u++)
                for (int d = 0; u != p->unit && d < c->units[u].ndeps; d++)
                    waited_for |= c->units[u].deps[d] == q->unit;
            if (!waited_for && sl_add_unique(c->err, &x->deps, &x->ndeps, q->unit)) return 1;
        }
    }
    return 0;
}

/* 1 when unit u has a member to submit. */
static int has_todo(const ctx_t *c, int u)
{
    int todo = 0;
    for (int m = 0; m < c->units[u].nmembers; m++)
        todo |= c->plan[c->units[u].members[m]].unit == u;
    return todo;
}

/* Submission order: dependencies first (Kahn), ties in study order. */
static int order_units(ctx_t *c)
{
    int *done = calloc((size_t)c->nunits + 1, sizeof(int)), next = 0;
    if (!done) return slurm_fail(c->err, 1, "slurm: out of memory");
    for (int u = 0; u < c->nunits; u++) c->units[u].order = -1;
    for (int placed = 1; placed;) {
        placed = 0;
        for (int u = 0; u < c->nunits; u++) {
            unit_t *x = &c->units[u];
            if (!has_todo(c, u) || done[u]) continue;
            int ready = 1;
            for (int d = 0; d < x->ndeps; d++) ready &= done[x->deps[d]];
            if (!ready) continue;
            done[u] = 1;
            x->order = next++;
            placed = 1;
            break; /* restart: keep study order among the ready ones */
        }
    }
    int rc = 0;
    for (int u = 0; u < c->nunits && !rc; u++)
        if (has_todo(c, u) && !done[u])
            rc = slurm_fail(c->err, 2, "slurm: the jobs' dependencies form a cycle through '%s'",
                            c->units[u].name);
    free(done);
    return rc;
}

int sl_make_units(ctx_t *c)
{
    c->units = calloc((size_t)c->s.njobs + 1, sizeof(unit_t));
    if (!c->units) return slurm_fail(c->err, 1, "slurm: out of memory");
    int rc = assign_units(c);
    if (rc) return rc;
    name_arrays(c);
    rc = add_deps(c);
    if (!rc) rc = report_deps(c);
    if (!rc) rc = order_units(c);
    return rc;
}
