/* Placeholder until the recordio command lands; it says so instead of pretending to work. */
#include "commands.h"

#include <stdio.h>

int knn_cmd_recordio(int argc, char **argv)
{
    fprintf(stderr, "knn-runner recordio: not available in this build yet\n");
    return 2;
}
