/* Placeholder until the serve command lands; it says so instead of pretending to work. */
#include "commands.h"

#include <stdio.h>

int knn_cmd_serve(int argc, char **argv)
{
    fprintf(stderr, "knn-runner serve: not available in this build yet\n");
    return 2;
}
