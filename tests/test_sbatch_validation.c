/* tests/test_sbatch_validation.c — every invalid spec (golden case 2 with one field broken)
 * is refused by lethe_sbatch_validate and lethe_sbatch_render with exactly the expected
 * one-line message, a NULL spec is refused, and a short error buffer truncates the message
 * but keeps it terminated. */
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "test_sbatch.h"

/* ---- validation errors ---- */

static const unsigned long dep_zero[] = {7, 0};
static const lethe_sbatch_env env_bad_name[] = {{"1X", "v"}};
static const lethe_sbatch_env env_dash[] = {{"A-B", "v"}};
static const lethe_sbatch_env env_empty_name[] = {{"", "v"}};
static const lethe_sbatch_env env_null_value[] = {{"A", NULL}};
static const lethe_sbatch_env env_dup[] = {{"A", "1"}, {"B", "2"}, {"A", "3"}};
static const char *const args_null[] = {"train", NULL};

/* Applies bad case k to a valid spec; returns the expected message, NULL past the end. */
static const char *bad_case(int k, lethe_sbatch_spec *s)
{
    *s = spec2();
    switch (k) {
    case 0: s->job_name = NULL; return "sbatch spec: job_name is missing (required)";
    case 1: s->job_name = ""; return "sbatch spec: job_name is empty (expected a non-empty value)";
    case 2:
        s->job_name = "a\nb";
        return "sbatch spec: job_name 'a?b' contains a newline (not allowed in an #SBATCH line)";
    case 3:
        s->job_name = "a\rb";
        return "sbatch spec: job_name 'a?b' contains a newline (not allowed in an #SBATCH line)";
    case 4:
        s->partition = "cpu\tgpu";
        return "sbatch spec: partition 'cpu?gpu' contains control character 0x09";
    case 5:
        s->account = "x\n";
        return "sbatch spec: account 'x?' contains a newline (not allowed in an #SBATCH line)";
    case 6:
        s->output = "out\n%j";
        return "sbatch spec: output 'out?%j' contains a newline (not allowed in an #SBATCH line)";
    case 7: s->error = ""; return "sbatch spec: error is empty (expected a non-empty value)";
    case 8:
        s->time_limit = "1:2:3:4";
        return "sbatch spec: time_limit '1:2:3:4' is not a Slurm time (expected MM, MM:SS, "
               "HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS)";
    case 9:
        s->time_limit = "1-24:00";
        return "sbatch spec: time_limit '1-24:00' is not a Slurm time (expected MM, MM:SS, "
               "HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS)";
    case 10:
        s->time_limit = "0-00:00";
        return "sbatch spec: time_limit '0-00:00' is zero (expected > 0)";
    case 11:
        s->time_limit = "2 hours";
        return "sbatch spec: time_limit '2 hours' is not a Slurm time (expected MM, MM:SS, "
               "HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS)";
    case 12:
        s->time_limit = "1\n";
        return "sbatch spec: time_limit '1?' contains a newline (not allowed in an #SBATCH line)";
    case 13:
        s->lethe_bin = NULL;
        return "sbatch spec: lethe_bin is missing (expected the path of lethe)";
    case 14:
        s->lethe_bin = "";
        return "sbatch spec: lethe_bin is empty (expected the path of lethe)";
    case 15: s->nodes = 0; return "sbatch spec: nodes = 0 (expected >= 1)";
    case 16: s->nodes = -3; return "sbatch spec: nodes = -3 (expected >= 1)";
    case 17: s->ntasks = 0; return "sbatch spec: ntasks = 0 (expected >= 1)";
    case 18:
        s->nodes = 3;
        s->ntasks = 2;
        s->ntasks_per_node = 0;
        return "sbatch spec: ntasks = 2 is less than nodes = 3 (expected at least one task per "
               "node)";
    case 19:
        s->ntasks_per_node = -1;
        return "sbatch spec: ntasks_per_node = -1 (expected >= 1, or 0 for not given)";
    case 20:
        s->ntasks = 5;
        return "sbatch spec: ntasks = 5 exceeds nodes * ntasks_per_node = 2 * 2";
    case 21:
        s->cpus_per_task = -2;
        return "sbatch spec: cpus_per_task = -2 (expected >= 1, or 0 for not given)";
    case 22: s->afterok = NULL; return "sbatch spec: afterok is NULL but n_afterok = 2";
    case 23: s->afterok = dep_zero; return "sbatch spec: afterok[1] = 0 (expected a job id >= 1)";
    case 24:
        s->array = "5-3";
        return "sbatch spec: array '5-3' is not a Slurm index list (expected N, N-M or N-M:S "
               "items, comma-separated, N <= M, S >= 1)";
    case 25:
        s->array = "0-11:0";
        return "sbatch spec: array '0-11:0' is not a Slurm index list (expected N, N-M or N-M:S "
               "items, comma-separated, N <= M, S >= 1)";
    case 26:
        s->array = "1,,2";
        return "sbatch spec: array '1,,2' is not a Slurm index list (expected N, N-M or N-M:S "
               "items, comma-separated, N <= M, S >= 1)";
    case 27:
        s->array = "0-11%4";
        return "sbatch spec: array '0-11%4' is not a Slurm index list (expected N, N-M or N-M:S "
               "items, comma-separated, N <= M, S >= 1)";
    case 28: s->array = ""; return "sbatch spec: array is empty (expected a non-empty value)";
    case 29:
        s->array_throttle = -1;
        return "sbatch spec: array_throttle = -1 (expected >= 1, or 0 for no limit)";
    case 30: s->array = NULL; return "sbatch spec: array_throttle = 4 without an array";
    case 31:
        s->signal_name = "SIGUSR1";
        return "sbatch spec: signal_name 'SIGUSR1' is not one of USR1 USR2 TERM INT HUP QUIT ALRM "
               "CONT XCPU";
    case 32:
        s->signal_name = "KILL";
        return "sbatch spec: signal_name 'KILL' is not one of USR1 USR2 TERM INT HUP QUIT ALRM "
               "CONT XCPU";
    case 33: s->signal_seconds = 0; return "sbatch spec: signal_seconds = 0 (expected 1..65535)";
    case 34:
        s->signal_seconds = 65536;
        return "sbatch spec: signal_seconds = 65536 (expected 1..65535)";
    case 35:
        s->time_limit = "2";
        return "sbatch spec: signal_seconds = 120 is not less than time_limit '2' (120 s)";
    case 36:
        s->signal_name = NULL;
        return "sbatch spec: signal_seconds = 120 or signal_batch_only = 1 without a signal_name";
    case 37:
        s->launcher = (lethe_sbatch_launcher)7;
        return "sbatch spec: launcher = 7 (expected LETHE_LAUNCH_SRUN or LETHE_LAUNCH_MPIRUN)";
    case 38: s->env = NULL; return "sbatch spec: env is NULL but n_env = 1";
    case 39:
        s->env = env_bad_name;
        return "sbatch spec: env[0] name '1X' is not a shell variable name (expected "
               "[A-Za-z_][A-Za-z0-9_]*)";
    case 40:
        s->env = env_dash;
        return "sbatch spec: env[0] name 'A-B' is not a shell variable name (expected "
               "[A-Za-z_][A-Za-z0-9_]*)";
    case 41:
        s->env = env_empty_name;
        return "sbatch spec: env[0] name '' is not a shell variable name (expected "
               "[A-Za-z_][A-Za-z0-9_]*)";
    case 42: s->env = env_null_value; return "sbatch spec: env[0] A has no value";
    case 43:
        s->env = env_dup;
        s->n_env = 3;
        return "sbatch spec: env[2] A is already set by env[0]";
    case 44: s->args = NULL; return "sbatch spec: args is NULL but n_args = 8";
    case 45:
        s->args = args_null;
        s->n_args = 2;
        return "sbatch spec: args[1] is NULL";
    case 46:
        s->job_name = "a very long job name that goes on and on and on and on and on\nand on";
        return "sbatch spec: job_name 'a very long job name that goes on and on and on and on "
               "an...' contains a newline (not allowed in an #SBATCH line)";
    }
    return NULL;
}

void test_validation(void)
{
    char err[512];
    CHECK(lethe_sbatch_validate(NULL, err, sizeof err) == -1 &&
              strcmp(err, "sbatch spec: no spec given") == 0,
          "NULL spec: %s", err);
    int k = 0;
    lethe_sbatch_spec s;
    for (const char *want; (want = bad_case(k, &s)) != NULL; k++) {
        strcpy(err, "(untouched)");
        int rc = lethe_sbatch_validate(&s, err, sizeof err);
        CHECK(rc == -1, "case %d: validate returned %d, expected -1 (%s)", k, rc, want);
        CHECK(strcmp(err, want) == 0, "case %d: message\n  got      %s\n  expected %s", k, err,
              want);
        CHECK(!strchr(err, '\n'), "case %d: message spans lines", k);
        strcpy(err, "(untouched)");
        char *t = lethe_sbatch_render(&s, err, sizeof err);
        CHECK(t == NULL, "case %d: render produced a script", k);
        free(t);
        CHECK(strcmp(err, want) == 0, "case %d: render message\n  got      %s\n  expected %s", k,
              err, want);
    }
    CHECK(k == 47, "%d bad cases ran, expected 47", k);
    /* A short buffer truncates, still terminated. */
    char small[16];
    bad_case(15, &s);
    CHECK(lethe_sbatch_validate(&s, small, sizeof small) == -1 &&
              strcmp(small, "sbatch spec: no") == 0,
          "truncated message '%s'", small);
}
