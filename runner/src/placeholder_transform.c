/* Placeholder until the transform command lands; it says so instead of pretending to work. */
#include "commands.h"

#include <stdio.h>

int knn_cmd_transform(int argc, char **argv)
{
    fprintf(stderr, "knn-runner transform: not available in this build yet\n");
    return 2;
}
