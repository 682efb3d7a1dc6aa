/* Placeholder until the train command lands; it says so instead of pretending to work. */
#include "commands.h"

#include <stdio.h>

int knn_cmd_train(int argc, char **argv)
{
    fprintf(stderr, "knn-runner train: not available in this build yet\n");
    return 2;
}
