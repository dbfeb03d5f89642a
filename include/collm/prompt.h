// Prompt templates (method.md §2.5, §3.1, §3.2): a one-line template with
// placeholders, filled per (user history, target item) sample.
//
// Placeholders:
//   <ItemTitleList>   the last <=10 history titles, each in double quotes,
//                     joined by ", " ("unkow" when none is left, typo kept)
//   <TargetItemTitle> "\"" + target title with spaces stripped at both ends + "\""
//   <UserID>, <TargetItemID>  slot markers: "<unk>" (k copies joined by "."
//                     when proj_token_num k > 1)
//   <ItemIDList>      n copies of "<unk>" joined by ", " (n = history count of §2.5)
// The filled text is "<s>" + the template line. A literal backslash-n in the
// template stays two characters (it is not a newline). Placeholders are
// substituted in one left-to-right pass over the template, so text inside a
// title is never re-interpreted as a placeholder.
//
// History rule (CoLLM MoiveOOData, §2.5), for his as stored (ml-1m: a leading
// 0 sentinel, oldest first): n = len-1; if len > 10 keep the last 10 ids and
// n = 10; if len == 10 then n = 9. The titles are the last n of the kept ids
// (all of them when n == 0); empty titles (the sentinel, untitled items) are
// dropped. With his_has_sentinel = 0 (bookcrossing: no sentinel, id 0 is a
// real book) the rule is applied as if a 0 sentinel were prepended, i.e. the
// last min(len, 10) ids are used.
#ifndef COLLM_PROMPT_H
#define COLLM_PROMPT_H

#include "collm/version.h"

#include "collm/dataset.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define COLLM_PROMPT_MAX_HISTORY 10 // L of §2.5

typedef struct {
    char *line;            // the template line, without "<s>" and without the trailing newline
    int proj_token_num;    // k of §3.2 (default 1)
    int his_has_sentinel;  // 1 (default): his[0] is the 0 sentinel (ml-1m layout)
} collm_prompt_template;

// Reads the first line of a template file (the shipped files hold 4
// identical lines; evaluation uses line 0). NULL + error on failure.
COLLM_API collm_prompt_template *collm_prompt_template_load(const char *path);
// Copies `line` (up to its first newline, if any).
COLLM_API collm_prompt_template *collm_prompt_template_from_string(const char *line);
COLLM_API void collm_prompt_template_free(collm_prompt_template *tpl);
// The first line of a template shipped in prompts/ by its file stem
// ("collm_movie", "tallrec_book", "collm_movie_ids", ...), or NULL.
COLLM_API const char *collm_prompt_builtin_line(const char *name);
// The i-th built-in template's name (i = 0, 1, ...), NULL past the last one
// (for listing them: `collm help templates`).
COLLM_API const char *collm_prompt_builtin_name(int i);

// Checks a template line before any prompt is built from it: every <Word>
// must be one of the placeholders above (an unknown one, e.g. a typo such as
// <TargetTitle>, or a literal <unk>, which would read as a slot marker, is an
// error naming it and listing the known ones), and <TargetItemTitle> must be
// present (without it every item of a user gets the same prompt). source
// names the template in the message. COLLM_OK or COLLM_ERR_FORMAT.
COLLM_API int collm_prompt_template_check(const char *line, const char *source);

// The line with the item noun replaced: every whole word "movie" / "movies"
// (the built-in movie templates' noun) becomes singular / plural. malloc'd
// (caller frees); NULL + error when out of memory.
COLLM_API char *collm_prompt_with_noun(const char *line, const char *singular, const char *plural);

// Fills the template for one sample: his (n_his) history ids as stored,
// target the target item id. Writes at most cap bytes (NUL-terminated, like
// snprintf) into out (out may be NULL with cap 0) and returns the full text
// length, or a negative error code (item id outside the table).
COLLM_API int64_t collm_prompt_fill(const collm_prompt_template *tpl, const collm_rec_items *items, const int32_t *his, int64_t n_his,
                    int32_t target, char *out, size_t cap);
// Same, into a malloc'd string (caller frees); NULL on error.
COLLM_API char *collm_prompt_fill_alloc(const collm_prompt_template *tpl, const collm_rec_items *items, const int32_t *his, int64_t n_his,
                        int32_t target);

// The filled text split at the first target-dependent placeholder
// (<TargetItemTitle> or <TargetItemID>): *prefix is the part every candidate
// item of one user shares (for prefix-shared re-ranking), *rest the remainder;
// prefix + rest == collm_prompt_fill's text. Both malloc'd (caller frees).
// Returns COLLM_OK or an error code.
COLLM_API int collm_prompt_fill_parts(const collm_prompt_template *tpl, const collm_rec_items *items, const int32_t *his, int64_t n_his,
                      int32_t target, char **prefix, char **rest);

// One slot marker ("<unk>") of a filled prompt: where it starts in the text
// and what it stands for (an item id; -1 for the user).
typedef struct {
    size_t offset;
    int32_t item;
} collm_prompt_slot;

// The filled text (malloc'd, caller frees; NULL + error on failure) with its
// slot markers in text order, recorded while the template is filled, so a
// title that contains "<unk>" is text, not a slot. At most max_slots are
// stored (more is a COLLM_ERR_RANGE error); *n_slots receives the count.
COLLM_API char *collm_prompt_fill_slots(const collm_prompt_template *tpl, const collm_rec_items *items,
                                        const int32_t *his, int64_t n_his, int32_t target, collm_prompt_slot *slots,
                                        int max_slots, int *n_slots);

// The history part of §2.5 alone: how many ids the rule keeps (n) and where
// they start in his (his[first .. first + n)).
COLLM_API void collm_prompt_history_window(const collm_prompt_template *tpl, int64_t n_his, int64_t *first, int64_t *n);

#ifdef __cplusplus
}
#endif

#endif
