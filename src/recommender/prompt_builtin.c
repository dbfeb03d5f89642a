// Built-in copies of the template files in prompts/ (first line of each),
// so the binary needs no data files. tests/test_collm.c checks that they
// equal the files byte for byte.
#include "collm/prompt.h"

#include <string.h>

static const struct {
    const char *name;
    const char *line;
} builtin_templates[] = {
    {"collm_book",
     "#Question: A user has given high ratings to the following books: <ItemTitleList>. Additionally, we have information about the user's preferences encoded in the feature <UserID>. Using all available information, make a prediction about whether the user would enjoy the book titled <TargetItemTitle> with the feature <TargetItemID>? Answer with \"Yes\" or \"No\". \\n#Answer:"},
    {"collm_book_ids",
     "#Question: A user has given high ratings to the following books: <ItemTitleList>, whose features are <ItemIDList>. Additionally, we have information about the user's preferences encoded in the feature <UserID>. Using all available information, make a prediction about whether the user would enjoy the book titled <TargetItemTitle> with the feature <TargetItemID>? Answer with \"Yes\" or \"No\". \\n#Answer:"},
    {"collm_movie",
     "#Question: A user has given high ratings to the following movies: <ItemTitleList>. Additionally, we have information about the user's preferences encoded in the feature <UserID>. Using all available information, make a prediction about whether the user would enjoy the movie titled <TargetItemTitle> with the feature <TargetItemID>? Answer with \"Yes\" or \"No\". \\n#Answer:"},
    {"collm_movie_ids",
     "#Question: A user has given high ratings to the following movies: <ItemTitleList>, whose features are <ItemIDList>. Additionally, we have information about the user's preferences encoded in the feature <UserID>. Using all available information, make a prediction about whether the user would enjoy the movie titled <TargetItemTitle> with the feature <TargetItemID>? Answer with \"Yes\" or \"No\". \\n#Answer:"},
    {"tallrec_book",
     "#Question: A user has given high ratings to the following books: <ItemTitleList>. Leverage the information to predict whether the user would enjoy the book titled <TargetItemTitle>? Answer with \"Yes\" or \"No\". \\n#Answer:"},
    {"tallrec_movie",
     "#Question: A user has given high ratings to the following movies: <ItemTitleList>. Leverage the information to predict whether the user would enjoy the movie titled <TargetItemTitle>? Answer with \"Yes\" or \"No\". \\n#Answer:"},
};

const char *collm_prompt_builtin_line(const char *name) {
    for (size_t i = 0; i < sizeof builtin_templates / sizeof builtin_templates[0]; i++)
        if (strcmp(builtin_templates[i].name, name) == 0) return builtin_templates[i].line;
    return NULL;
}

const char *collm_prompt_builtin_name(int i) {
    if (i < 0 || (size_t)i >= sizeof builtin_templates / sizeof builtin_templates[0]) return NULL;
    return builtin_templates[i].name;
}
