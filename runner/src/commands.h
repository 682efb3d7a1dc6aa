#ifndef KNN_RUNNER_COMMANDS_H
#define KNN_RUNNER_COMMANDS_H

/**
 * One function per `knn-runner <command>`; each gets argv starting at the command's own name and
 * returns the process exit status (0 success, 1 the job or operation failed, 2 usage error).
 * Each lives in its own cmd_<name>.c.
 */
int knn_cmd_query(int argc, char **argv);
int knn_cmd_recordio(int argc, char **argv);
int knn_cmd_s3(int argc, char **argv);
int knn_cmd_train(int argc, char **argv);
int knn_cmd_serve(int argc, char **argv);
int knn_cmd_transform(int argc, char **argv);

#endif
