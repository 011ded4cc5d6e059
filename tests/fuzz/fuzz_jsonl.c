/* tests/fuzz/fuzz_jsonl.c — libFuzzer harness of the JSON-lines reader
 * (io/text/prepare.c, prepare_records.c): the bytes are one JSON-lines input of
 * `lethe prepare`, converted to a real HDF5 dataset with T = 16. The tokenizer follows
 * the input size (byte, word, or none with vocab 300) so every record format is
 * reached. A refused input gives one line. */
#include "fuzz_util.h"

#include <hdf5.h>

#include "io/text/prepare.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* refusals are reported by lethe, not HDF5 */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    static const char *toks[3] = {"byte", "word", "none"};
    prepare_input in = {"forget", fuzz_write("in.jsonl", d, n), NULL};
    prepare_opts o;
    prepare_opts_defaults(&o);
    o.output = fuzz_path("out.h5");
    o.inputs = &in;
    o.n_inputs = 1;
    o.tokenizer = toks[n % 3];
    o.vocab_size = 300;
    o.pad_id = 0;
    o.eos_id = 1;
    o.seq_len = 16;
    char err[1024];
    if (prepare_run(&o, err, sizeof err)) fuzz_one_line("prepare_run", err);
    return 0;
}
