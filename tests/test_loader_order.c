/* tests/test_loader_order.c — which rows the loader delivers, in which order, to which
 * rank: at dp = 1 an epoch visits every row once with the row's own content; the order is
 * loader_order's function of (seed, epoch) (epochs differ, two loaders and all ranks agree,
 * another seed differs, shuffle off is file order); for every dp dividing the rank count,
 * with and without prefetch, ranks of one replica get identical batches and the replicas'
 * slices are exactly the dp = 1 global batch; drop_last off delivers all rows with the last
 * batch split evenly; a saved cursor resumes exactly across an epoch boundary. */
#include "test_loader.h"
#include "mpi/fatal.h"

#include <mpi.h>
#include <stdlib.h>
#include <string.h>

/* ---- order and dp slices ------------------------------------------------------------------ */

void test_order(const char *path)
{
    loader_opts o;
    loader_opts_defaults(&o);
    o.world = MPI_COMM_WORLD;
    o.global_batch = B_MAIN;
    o.seed = 1234;
    o.max_epochs = 2;
    o.prefetch = 1;
    o.candidates = 1;
    loader *ld = open_or_die(path, "forget", &o);
    CHECK(loader_batches_per_epoch(ld) == N_MAIN / B_MAIN, "batches per epoch %lld",
          (long long)loader_batches_per_epoch(ld));
    /* reference order at dp = 1: two epochs */
    int64_t *ref = malloc(2 * N_MAIN * sizeof *ref);
    int64_t got = 0;
    loader_batch *b;
    int checked = 0;
    while (next_or_die(ld, &b) == 1) {
        CHECK(b->n == B_MAIN && b->global_n == B_MAIN, "dp=1 batch of %d rows", b->n);
        CHECK(b->position == (got % N_MAIN) && b->epoch == got / N_MAIN,
              "batch at epoch %lld position %lld, expected %lld %lld", (long long)b->epoch,
              (long long)b->position, (long long)(got / N_MAIN), (long long)(got % N_MAIN));
        checked += check_rows(b, 1);
        for (int i = 0; i < b->n && got < 2 * N_MAIN; i++) ref[got++] = b->index[i];
    }
    CHECK(got == 2 * N_MAIN && checked == 2 * N_MAIN, "two epochs gave %lld rows", (long long)got);
    loader_close(ld);
    /* each epoch is a permutation; epochs differ; the order is loader_order's */
    char *seen = calloc(N_MAIN, 1);
    int perm_ok = 1, same_pos = 0, formula_ok = 1;
    for (int e = 0; e < 2; e++) {
        memset(seen, 0, N_MAIN);
        for (int p = 0; p < N_MAIN; p++) {
            int64_t r = ref[e * N_MAIN + p];
            perm_ok &= r >= 0 && r < N_MAIN && !seen[r];
            if (r >= 0 && r < N_MAIN) seen[r] = 1;
            formula_ok &= r == loader_order(1234, e, N_MAIN, p, 1);
        }
    }
    for (int p = 0; p < N_MAIN; p++) same_pos += ref[p] == ref[N_MAIN + p];
    CHECK(perm_ok, "an epoch is not a permutation of the rows");
    CHECK(formula_ok, "the batches do not follow loader_order");
    /* two random permutations share ~1 position; 20 is far beyond chance */
    CHECK(same_pos < 20, "epochs 0 and 1 agree at %d of %d positions", same_pos, N_MAIN);
    int moved = 0, other_seed = 0;
    for (int p = 0; p < N_MAIN; p++) {
        moved += ref[p] != p;
        other_seed += loader_order(99, 0, N_MAIN, p, 1) == ref[p];
    }
    CHECK(moved > N_MAIN - 20, "the shuffle left %d of %d rows in place", N_MAIN - moved, N_MAIN);
    CHECK(other_seed < 20, "seeds 1234 and 99 agree at %d positions", other_seed);
    for (int p = 0; p < N_MAIN; p++)
        if (loader_order(1234, 3, N_MAIN, p, 0) != p) {
            CHECK(0, "shuffle off is not file order at %d", p);
            break;
        }
    /* the same order on every rank (each rank is its own process) */
    uint64_t h = fnv(1469598103934665603ull, ref, 2 * N_MAIN * sizeof *ref), h0 = h;
    MPI_CHECK(MPI_Bcast(&h0, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD));
    CHECK(h == h0, "rank %d's order differs from rank 0's", rank);
    /* a second loader (fresh state) gives the same order */
    ld = open_or_die(path, "forget", &o);
    for (int64_t q = 0; q < N_MAIN && next_or_die(ld, &b) == 1; q += b->n)
        for (int i = 0; i < b->n; i++)
            if (b->index[i] != ref[q + i]) {
                CHECK(0, "a second loader differs at position %lld", (long long)(q + i));
                q = N_MAIN;
                break;
            }
    loader_close(ld);

    /* every dp dividing the rank count, prefetch on and off; then the candidate sets
     * through the collective path at dp = ranks */
    int64_t *all = malloc((size_t)size * (B_MAIN + 1) * sizeof *all);
    for (int run = 0; run < 9; run++) {
        int dp = run < 8 ? 1 << (run / 2) : size, pf = run < 8 ? run % 2 : 0, cand = run == 8;
        if (size % dp) continue;
        loader_opts od = o;
        od.dp = dp;
        od.dp_rank = rank / (size / dp);
        od.prefetch = pf;
        od.candidates = cand;
        od.max_epochs = 1;
        ld = open_or_die(path, "forget", &od);
        const char *why;
        int th = loader_prefetch_status(ld, &why);
        CHECK(th == pf, "dp %d prefetch %d: read-ahead thread %d (%s)", dp, pf, th, why);
        int64_t pos = 0, mism = 0;
        int cap = B_MAIN / dp;
        while (next_or_die(ld, &b) == 1) {
            check_rows(b, cand);
            int64_t mine[B_MAIN + 1];
            mine[0] = (int64_t)batch_hash(b);
            for (int i = 0; i < cap; i++) mine[1 + i] = i < b->n ? b->index[i] : -1;
            MPI_CHECK(MPI_Allgather(mine, cap + 1, MPI_INT64_T, all, cap + 1, MPI_INT64_T,
                                    MPI_COMM_WORLD));
            int per = size / dp;
            for (int q = 0; q < size; q++) {
                int rep = q / per, lead = rep * per;
                if (memcmp(all + q * (cap + 1), all + lead * (cap + 1), (size_t)(cap + 1) * 8))
                    mism++;
                for (int i = 0; i < cap; i++)
                    if (all[q * (cap + 1) + 1 + i] != ref[pos + rep * cap + i]) mism++;
            }
            pos += B_MAIN;
        }
        CHECK(pos == N_MAIN, "dp %d prefetch %d: %lld rows in an epoch", dp, pf, (long long)pos);
        CHECK(mism == 0,
              "dp %d prefetch %d candidates %d: %lld rows differ from the dp=1 order "
              "or between ranks of one replica",
              dp, pf, cand, (long long)mism);
        loader_close(ld);
    }
    free(all);
    free(seen);
    free(ref);
}

/* drop_last off, one epoch: all rows once, the last batch split evenly. */
void test_partial(const char *path)
{
    int dp = size;
    loader_opts o;
    loader_opts_defaults(&o);
    o.world = MPI_COMM_WORLD;
    o.dp = dp;
    o.dp_rank = rank;
    o.global_batch = 56; /* 240 = 4 * 56 + 16 */
    o.seed = 7;
    o.drop_last = 0;
    o.max_epochs = 1;
    loader *ld = open_or_die(path, "forget", &o);
    CHECK(loader_batches_per_epoch(ld) == 5, "batches per epoch %lld, expected 5",
          (long long)loader_batches_per_epoch(ld));
    loader_batch *b;
    int64_t rows = 0, batches = 0, last_n = -1, last_g = -1;
    int64_t sum = 0;
    while (next_or_die(ld, &b) == 1) {
        batches++;
        rows += b->n;
        for (int i = 0; i < b->n; i++) sum += b->index[i];
        last_n = b->n;
        last_g = b->global_n;
        check_rows(b, 0);
    }
    int64_t tot[2] = {rows, sum}, g[2];
    MPI_CHECK(MPI_Allreduce(tot, g, 2, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD));
    CHECK(batches == 5 && g[0] == N_MAIN && g[1] == (int64_t)N_MAIN * (N_MAIN - 1) / 2,
          "drop_last off: %lld batches, %lld rows, row sum %lld", (long long)batches,
          (long long)g[0], (long long)g[1]);
    int64_t want = 16 / dp + (rank < 16 % dp ? 1 : 0);
    CHECK(last_g == 16 && last_n == want, "last batch: global %lld, mine %lld, expected 16, %lld",
          (long long)last_g, (long long)last_n, (long long)want);
    loader_batch *b2;
    CHECK(next_or_die(ld, &b2) == 0, "after max_epochs loader_next must return 0");
    loader_close(ld);
}

/* Cursor save/restore across an epoch boundary. */
void test_cursor(const char *path)
{
    for (int pf_a = 0; pf_a <= 1; pf_a++) {
        int pf_b = 1 - pf_a;
        loader_opts o;
        loader_opts_defaults(&o);
        o.world = MPI_COMM_WORLD;
        o.dp = size >= 2 ? 2 : 1;
        o.dp_rank = rank / (size / o.dp);
        o.global_batch = B_MAIN;
        o.seed = 5;
        o.prefetch = pf_a;
        loader *ld = open_or_die(path, "forget", &o);
        loader_batch *b;
        for (int i = 0; i < 3; i++) next_or_die(ld, &b);
        loader_cursor c = loader_cursor_get(ld);
        CHECK(c.epoch == 0 && c.position == 3 * B_MAIN, "cursor (%lld, %lld) after 3 batches",
              (long long)c.epoch, (long long)c.position);
        uint64_t h1[8];
        int64_t ep_end = 0;
        for (int i = 0; i < 8; i++) {
            next_or_die(ld, &b);
            h1[i] = batch_hash(b) ^ (uint64_t)b->epoch * 31 ^ (uint64_t)b->position;
            ep_end |= b->epoch == 1;
        }
        CHECK(ep_end, "the cursor test must cross an epoch boundary");
        loader_cursor after = loader_cursor_get(ld);
        loader_close(ld);

        o.prefetch = pf_b;
        ld = open_or_die(path, "forget", &o);
        next_or_die(ld, &b); /* move away first: seek must discard what was read ahead */
        char err[512];
        CHECK(loader_seek(ld, c, err, sizeof err) == 0, "seek: %s", err);
        int same = 0;
        for (int i = 0; i < 8; i++) {
            next_or_die(ld, &b);
            same += (batch_hash(b) ^ (uint64_t)b->epoch * 31 ^ (uint64_t)b->position) == h1[i];
        }
        CHECK(same == 8, "resume (prefetch %d -> %d): %d of 8 batches identical", pf_a, pf_b, same);
        loader_cursor c2 = loader_cursor_get(ld);
        CHECK(c2.epoch == after.epoch && c2.position == after.position,
              "cursor after resume (%lld, %lld) vs (%lld, %lld)", (long long)c2.epoch,
              (long long)c2.position, (long long)after.epoch, (long long)after.position);
        loader_cursor badc = {0, N_MAIN + 1};
        CHECK(loader_seek(ld, badc, err, sizeof err) != 0 && strstr(err, "outside the split"),
              "a cursor past the split must be refused: '%s'", err);
        loader_close(ld);
    }
}
