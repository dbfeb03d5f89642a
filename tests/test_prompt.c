// Prompt filling: the filled example of method.md §3.2 byte for byte (ML-1M
// test uid 4, iid 96, rebuilt from the train rows of user 4), the history
// length rule of §2.5 at 0/1/9/10/11 entries, the split into a shared prefix
// and the rest, and the shipped template files.
#include "collm/dataset.h"
#include "collm/error.h"
#include "collm/prompt.h"
#include "test.h"

static const char *EXAMPLE =
    "<s>#Question: A user has given high ratings to the following movies: \"When We Were Kings (1996)\", "
    "\"Celluloid Closet, The (1995)\", \"War Room, The (1993)\", \"U2: Rattle and Hum (1988)\", \"Madonna: Truth or "
    "Dare (1991)\", \"Breaking Away (1979)\", \"Tombstone (1993)\", \"High Noon (1952)\", \"Space Cowboys (2000)\", "
    "\"Better Than Chocolate (1999)\". Additionally, we have information about the user's preferences encoded in "
    "the feature <unk>. Using all available information, make a prediction about whether the user would enjoy the "
    "movie titled \"Deconstructing Harry (1997)\" with the feature <unk>? Answer with \"Yes\" or \"No\". "
    "\\n#Answer:";

static void test_example(void) {
    collm_rec_items *items = collm_rec_items_load(test_shared_path("data/ml-1m/items.tsv"));
    collm_rec_split *train = collm_rec_split_load(test_shared_path("data/ml-1m/train.tsv"), items);
    collm_rec_split *valid = collm_rec_split_load(test_shared_path("data/ml-1m/valid.tsv"), items);
    collm_prompt_template *tpl = collm_prompt_template_load("prompts/collm_movie.txt");
    CHECK_MSG(items && train && valid && tpl, "%s", collm_last_error());
    if (!items || !train || !valid || !tpl) return;
    // The test row's history = the history of user 4's last train/valid row
    // plus that row's item when it is positive (§2.2 step 5). Find the row by
    // largest timestamp (ties broken by file order).
    const collm_rec_split *sp[2] = {train, valid};
    const collm_rec_split *best = NULL;
    int64_t best_r = -1;
    for (int k = 0; k < 2; k++)
        for (int64_t r = 0; r < sp[k]->n; r++)
            if (sp[k]->user[r] == 4 && (!best || sp[k]->timestamp[r] >= best->timestamp[best_r])) best = sp[k], best_r = r;
    CHECK(best != NULL);
    if (!best) return;
    int64_t h0 = best->his_offset[best_r], nh = best->his_offset[best_r + 1] - h0;
    int32_t *his = malloc((size_t)(nh + 1) * sizeof *his);
    memcpy(his, best->his + h0, (size_t)nh * sizeof *his);
    if (best->label[best_r]) his[nh++] = best->item[best_r];
    CHECK(nh > 10 && his[0] == 0);
    char *text = collm_prompt_fill_alloc(tpl, items, his, nh, 96);
    CHECK_STR(text, EXAMPLE);
    // snprintf-style fill: exact length, truncation, NULL buffer.
    int64_t len = collm_prompt_fill(tpl, items, his, nh, 96, NULL, 0);
    CHECK(len == (int64_t)strlen(EXAMPLE));
    char small[16];
    CHECK(collm_prompt_fill(tpl, items, his, nh, 96, small, sizeof small) == len);
    CHECK_STR(small, "<s>#Question: A");
    // Prefix / rest split: the prefix ends right before the target title and
    // does not depend on the target.
    char *prefix, *rest, *prefix2, *rest2;
    CHECK(collm_prompt_fill_parts(tpl, items, his, nh, 96, &prefix, &rest) == COLLM_OK);
    const char *cut = strstr(EXAMPLE, "\"Deconstructing Harry");
    CHECK(strlen(prefix) == (size_t)(cut - EXAMPLE) && strncmp(prefix, EXAMPLE, strlen(prefix)) == 0);
    CHECK_STR(rest, cut);
    CHECK(collm_prompt_fill_parts(tpl, items, his, nh, 1, &prefix2, &rest2) == COLLM_OK);
    CHECK_STR(prefix2, prefix);
    CHECK(strncmp(rest2, "\"Shawshank Redemption, The (1994)\" with", 39) == 0);
    free(prefix), free(rest), free(prefix2), free(rest2);
    // Out-of-range ids are errors.
    CHECK(collm_prompt_fill(tpl, items, his, nh, items->n, NULL, 0) < 0 && strstr(collm_last_error(), "target item"));
    his[3] = -5;
    CHECK(collm_prompt_fill_alloc(tpl, items, his, nh, 96) == NULL && strstr(collm_last_error(), "history entry 3"));
    free(his);
    free(text);
    collm_prompt_template_free(tpl);
    collm_rec_split_free(train);
    collm_rec_split_free(valid);
    collm_rec_items_free(items);
}

// Items "T1".."T12" for ids 1..12, id 0 empty, id 13 "  Padded  ", id 14 "".
static collm_rec_items *toy_items(void) {
    static char names[15][16];
    static char *title[15];
    static collm_rec_items it;
    static char empty[1] = "";
    for (int i = 0; i < 15; i++) {
        snprintf(names[i], sizeof names[i], "T%d", i);
        title[i] = names[i];
    }
    title[0] = empty;
    snprintf(names[13], sizeof names[13], "  Padded  ");
    title[14] = empty;
    it.n = 15;
    it.title = title;
    it.author = NULL;
    it.storage = NULL;
    return &it;
}

static void test_history_rule(void) {
    collm_rec_items *it = toy_items();
    collm_prompt_template *t = collm_prompt_template_from_string("[<ItemTitleList>|<TargetItemTitle>|<ItemIDList>]\nignored");
    CHECK_STR(t->line, "[<ItemTitleList>|<TargetItemTitle>|<ItemIDList>]");
    int32_t his[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    char out[512];
    // len 0 (no sentinel at all) and len 1 (sentinel only): "unkow", n = 0.
    collm_prompt_fill(t, it, his, 0, 13, out, sizeof out);
    CHECK_STR(out, "<s>[unkow|\"Padded\"|]");
    collm_prompt_fill(t, it, his, 1, 13, out, sizeof out);
    CHECK_STR(out, "<s>[unkow|\"Padded\"|]");
    // len 2: one title.
    collm_prompt_fill(t, it, his, 2, 2, out, sizeof out);
    CHECK_STR(out, "<s>[\"T1\"|\"T2\"|<unk>]");
    // len 9 (sentinel + 8): all 8, n = 8.
    collm_prompt_fill(t, it, his, 9, 2, out, sizeof out);
    CHECK_STR(out, "<s>[\"T1\", \"T2\", \"T3\", \"T4\", \"T5\", \"T6\", \"T7\", \"T8\"|\"T2\"|"
                   "<unk>, <unk>, <unk>, <unk>, <unk>, <unk>, <unk>, <unk>]");
    // len 10: n = 9, the last 9 (all but the sentinel).
    collm_prompt_fill(t, it, his, 10, 2, out, sizeof out);
    CHECK_STR(out, "<s>[\"T1\", \"T2\", \"T3\", \"T4\", \"T5\", \"T6\", \"T7\", \"T8\", \"T9\"|\"T2\"|"
                   "<unk>, <unk>, <unk>, <unk>, <unk>, <unk>, <unk>, <unk>, <unk>]");
    // len 11: the last 10 ids, n = 10 (sentinel cut off).
    collm_prompt_fill(t, it, his, 11, 2, out, sizeof out);
    CHECK_STR(out, "<s>[\"T1\", \"T2\", \"T3\", \"T4\", \"T5\", \"T6\", \"T7\", \"T8\", \"T9\", \"T10\"|\"T2\"|"
                   "<unk>, <unk>, <unk>, <unk>, <unk>, <unk>, <unk>, <unk>, <unk>, <unk>]");
    // len 12: last 10 = T2..T11.
    collm_prompt_fill(t, it, his, 12, 2, out, sizeof out);
    CHECK(strncmp(out, "<s>[\"T2\", \"T3\"", 14) == 0 && strstr(out, "\"T11\"|"));
    // A 10-long list WITHOUT a real sentinel shows the quirk: the first id is lost.
    int32_t nos[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    collm_prompt_fill(t, it, nos, 10, 2, out, sizeof out);
    CHECK(strncmp(out, "<s>[\"T2\", ", 10) == 0);
    // No-sentinel mode (bookcrossing): all 10 kept; an untitled item dropped.
    t->his_has_sentinel = 0;
    collm_prompt_fill(t, it, nos, 10, 2, out, sizeof out);
    CHECK(strncmp(out, "<s>[\"T1\", \"T2\", ", 14) == 0 && strstr(out, "\"T10\"|"));
    int32_t untitled[3] = {14, 0, 5};
    collm_prompt_fill(t, it, untitled, 3, 5, out, sizeof out);
    CHECK_STR(out, "<s>[\"T5\"|\"T5\"|<unk>, <unk>, <unk>]");
    collm_prompt_fill(t, it, untitled, 0, 5, out, sizeof out);
    CHECK_STR(out, "<s>[unkow|\"T5\"|]");
    int64_t first, n;
    collm_prompt_history_window(t, 12, &first, &n);
    CHECK(first == 2 && n == 10);
    t->his_has_sentinel = 1;
    collm_prompt_history_window(t, 10, &first, &n);
    CHECK(first == 1 && n == 9);
    collm_prompt_template_free(t);
    // proj_token_num k = 3 and a literal '<' that is no placeholder.
    t = collm_prompt_template_from_string("<UserID> a<b <TargetItemID>");
    t->proj_token_num = 3;
    collm_prompt_fill(t, it, his, 1, 1, out, sizeof out);
    CHECK_STR(out, "<s><unk>.<unk>.<unk> a<b <unk>.<unk>.<unk>");
    char *pre, *rest;
    CHECK(collm_prompt_fill_parts(t, it, his, 1, 1, &pre, &rest) == COLLM_OK);
    CHECK_STR(pre, "<s><unk>.<unk>.<unk> a<b ");
    CHECK_STR(rest, "<unk>.<unk>.<unk>");
    free(pre), free(rest);
    collm_prompt_template_free(t);
}

// Slot markers recorded while filling (collm_prompt_fill_slots): offsets
// point at each "<unk>" written for a placeholder, in text order, with the
// entity; a title holding "<unk>" is not a slot (issue 8).
static void test_fill_slots(void) {
    collm_rec_items *it = toy_items();
    char evil[] = "A <unk> B";
    it->title[3] = evil;
    collm_prompt_template *t = collm_prompt_template_from_string("<ItemTitleList> u=<UserID> <TargetItemTitle> "
                                                                 "t=<TargetItemID> h=<ItemIDList>");
    int32_t his[4] = {0, 3, 2, 5}; // sentinel, then 3 ids
    collm_prompt_slot sl[16];
    int n = -1;
    char *text = collm_prompt_fill_slots(t, it, his, 4, 3, sl, 16, &n);
    CHECK_MSG(text != NULL, "%s", collm_last_error());
    if (text) {
        CHECK_STR(text, "<s>\"A <unk> B\", \"T2\", \"T5\" u=<unk> \"A <unk> B\" t=<unk> h=<unk>, <unk>, <unk>");
        CHECK(n == 5);
        const int32_t want_item[5] = {-1, 3, 3, 2, 5};
        int ok = n == 5;
        for (int i = 0; ok && i < 5; i++) ok &= sl[i].item == want_item[i] && strncmp(text + sl[i].offset, "<unk>", 5) == 0;
        CHECK(ok);
        CHECK(sl[0].offset == (size_t)(strstr(text, "u=<unk>") - text) + 2);
        CHECK(sl[1].offset == (size_t)(strstr(text, "t=<unk>") - text) + 2);
        free(text);
    }
    // more markers than room: an error, not a silent cut
    CHECK(collm_prompt_fill_slots(t, it, his, 4, 3, sl, 3, &n) == NULL && strstr(collm_last_error(), "more than 3"));
    collm_prompt_template_free(t);
    toy_items(); // back to the plain titles
}

static void test_files(void) {
    const char *names[4] = {"prompts/collm_movie.txt", "prompts/tallrec_movie.txt", "prompts/collm_book.txt",
                            "prompts/tallrec_book.txt"};
    collm_prompt_template *t[4];
    for (int i = 0; i < 4; i++) {
        t[i] = collm_prompt_template_load(names[i]);
        CHECK_MSG(t[i] != NULL, "%s", collm_last_error());
        if (!t[i]) return;
        // Literal backslash-n, no real newline, ends with "#Answer:".
        const char *bn = strstr(t[i]->line, " \\n#Answer:");
        CHECK(bn && strcmp(bn, " \\n#Answer:") == 0);
    }
    CHECK(strstr(t[0]->line, "<UserID>") && strstr(t[0]->line, "<TargetItemID>"));
    CHECK(!strstr(t[1]->line, "<UserID>") && !strstr(t[1]->line, "<TargetItemID>"));
    CHECK_STR(t[1]->line, "#Question: A user has given high ratings to the following movies: <ItemTitleList>. "
                          "Leverage the information to predict whether the user would enjoy the movie titled "
                          "<TargetItemTitle>? Answer with \"Yes\" or \"No\". \\n#Answer:");
    CHECK_STR(t[3]->line, "#Question: A user has given high ratings to the following books: <ItemTitleList>. "
                          "Leverage the information to predict whether the user would enjoy the book titled "
                          "<TargetItemTitle>? Answer with \"Yes\" or \"No\". \\n#Answer:");
    CHECK(strstr(t[2]->line, "enjoy the book titled <TargetItemTitle> with the feature <TargetItemID>?") != NULL);
    CHECK(!strstr(t[2]->line, "movie"));
    for (int i = 0; i < 4; i++) collm_prompt_template_free(t[i]);
    CHECK(collm_prompt_template_load("prompts/nonexistent.txt") == NULL &&
          strstr(collm_last_error(), "prompts/nonexistent.txt"));
}

// Custom templates are checked (issue 14): unknown placeholders and a
// missing target title are errors; every built-in passes.
static void test_check(void) {
    int n = 0;
    for (int i = 0; collm_prompt_builtin_name(i); i++, n++) {
        const char *name = collm_prompt_builtin_name(i);
        CHECK_MSG(collm_prompt_template_check(collm_prompt_builtin_line(name), name) == COLLM_OK, "%s: %s", name,
                  collm_last_error());
    }
    CHECK(n == 6 && collm_prompt_builtin_name(-1) == NULL && collm_prompt_builtin_name(6) == NULL);
    CHECK(collm_prompt_template_check("Would they like <TargetItemTitle>? a < b, <3 and x <= y", "t") == COLLM_OK);
    CHECK(collm_prompt_template_check("Liked <ItemTitleList>; <TargetTitle>?", "my.txt") == COLLM_ERR_FORMAT);
    const char *e = collm_last_error();
    CHECK_MSG(strstr(e, "my.txt: unknown placeholder <TargetTitle>") && strstr(e, "<TargetItemTitle>"), "%s", e);
    CHECK(collm_prompt_template_check("Liked <ItemTitleList>, <unk> <TargetItemTitle>", "t") == COLLM_ERR_FORMAT &&
          strstr(collm_last_error(), "<unk>"));
    CHECK(collm_prompt_template_check("Liked <ItemTitleList>. Would they enjoy it?", "t") == COLLM_ERR_FORMAT);
    CHECK_MSG(strstr(collm_last_error(), "t: no <TargetItemTitle>"), "%s", collm_last_error());
}

static void test_noun(void) {
    char *s = collm_prompt_with_noun("movies: a movie, moviegoer, \"movie\" <TargetItemTitle> (movies)", "song", "songs");
    CHECK_STR(s, "songs: a song, moviegoer, \"song\" <TargetItemTitle> (songs)");
    free(s);
    s = collm_prompt_with_noun(collm_prompt_builtin_line("tallrec_movie"), "person", "people");
    CHECK(s && strstr(s, "the following people: <ItemTitleList>") && strstr(s, "enjoy the person titled") &&
          !strstr(s, "movie"));
    free(s);
}

int main(void) {
    test_check();
    test_noun();
    test_example();
    test_history_rule();
    test_fill_slots();
    test_files();
    return test_report();
}
