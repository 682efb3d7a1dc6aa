/* Placeholder until the s3 command lands; it says so instead of pretending to work. */
#include "commands.h"

#include <stdio.h>

int knn_cmd_s3(int argc, char **argv)
{
    fprintf(stderr, "knn-runner s3: not available in this build yet\n");
    return 2;
}
