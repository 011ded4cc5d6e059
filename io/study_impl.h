/* io/study_impl.h — what the two halves of the study module share (internal): study.c
 * reads a study file and checks its keys, study_expand.c turns the checked JSON into
 * the jobs. */
#ifndef LETHE_IO_STUDY_IMPL_H
#define LETHE_IO_STUDY_IMPL_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "study.h"

/* A printable, one-line copy of a hostile string for messages. */
const char *study_shown(const char *v, char *buf, size_t len);

/* Expands root (a study file whose top-level keys are known) into s, in dir, with the
 * --set overrides of the base config. 0, or -1 with one line in err (s is then freed). */
int study_expand(study *s, const cJSON *root, const char *path, const char *dir, char **overrides,
                 int noverrides, char *err, size_t errlen);

#endif
