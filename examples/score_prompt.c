// The smallest program against the installed library: loads a GGUF model,
// tokenizes a prompt, runs it, and prints the logit and probability of one
// answer token at the last position (what collm's recommender reads).
//
//   cc score_prompt.c $(pkg-config --cflags --libs collm) -o score_prompt
//   ./score_prompt model.gguf "Once upon a time" " there"
//
// Uses public headers only. Every call that can fail returns NULL or an error
// code; collm_last_error() says why.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <collm/error.h>
#include <collm/model.h>
#include <collm/threadpool.h>
#include <collm/tokenizer.h>
#include <collm/version.h>

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL.gguf PROMPT ANSWER\n", argv[0]);
        return 2;
    }
    const char *model_path = argv[1], *prompt = argv[2], *answer = argv[3];
    int status = 1;
    collm_llm_model *model = collm_llm_model_load(model_path);
    collm_tok_vocab *vocab = model ? collm_tok_load_path(model_path) : NULL;
    collm_pool *pool = vocab ? collm_pool_create(1) : NULL;
    collm_llm_context *ctx = NULL;
    int32_t tokens[512], answer_ids[8];
    if (!pool) goto done;

    int T = collm_tok_encode(vocab, prompt, strlen(prompt), COLLM_TOK_ADD_BOS, tokens, 512);
    int n_answer = collm_tok_encode(vocab, answer, strlen(answer), 0, answer_ids, 8);
    if (T < 1 || n_answer < 1) {
        if (T >= 0 && n_answer >= 0) collm_error(COLLM_ERR_ARG, "empty prompt or answer");
        goto done;
    }
    // The answer's first token is the one whose logit is read at the last row.
    int32_t answer_id = answer_ids[0];
    ctx = collm_llm_context_create(model, T, T, pool);
    if (!ctx) goto done;
    int n_vocab = collm_llm_model_hparams(model)->n_vocab;
    float *logits = malloc((size_t)n_vocab * sizeof *logits);
    int32_t last = T - 1;
    if (!logits) { collm_error(COLLM_ERR_NOMEM, "out of memory"); goto done; }
    if (collm_llm_forward(ctx, tokens, T, NULL, &last, 1, NULL, 0, logits) == COLLM_OK) {
        double mx = logits[0], z = 0;
        for (int v = 1; v < n_vocab; v++) mx = logits[v] > mx ? logits[v] : mx;
        for (int v = 0; v < n_vocab; v++) z += exp(logits[v] - mx);
        printf("collm %s: %d prompt tokens; answer token %d (%s): logit %.4f, p %.4f\n", collm_version(), T,
               answer_id, collm_tok_token_text(vocab, answer_id), logits[answer_id], exp(logits[answer_id] - mx) / z);
        status = 0;
    }
    free(logits);
done:
    if (status) fprintf(stderr, "score_prompt: %s\n", collm_last_error());
    collm_llm_context_free(ctx);
    collm_pool_free(pool);
    collm_tok_free(vocab);
    collm_llm_model_free(model);
    return status;
}
