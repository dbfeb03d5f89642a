// Every subcommand of `collm`; add a line here and in main.c's table.
#ifndef COLLM_COMMANDS_H
#define COLLM_COMMANDS_H

int cmd_version(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_prepare(int argc, char **argv);
int cmd_init_model(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_train_cf(int argc, char **argv);
int cmd_eval_cf(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_index(int argc, char **argv);
int cmd_recommend(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_eval_topk(int argc, char **argv);
int cmd_fit_fusion(int argc, char **argv);
int cmd_fit_score(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_encode(int argc, char **argv);
int cmd_export_lora(int argc, char **argv);
int cmd_plot(int argc, char **argv);

#endif
