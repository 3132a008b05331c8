/* pgtoken-rotator: subcommands and wiring only. */
#include <stdio.h>
#include <string.h>

#include "base/banned.h"

static int cmd_version(void)
{
    printf("pgtoken-rotator %s (%s)\n", PGTR_VERSION, PGTR_GIT_REV);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "version"))
        return cmd_version();
    fprintf(stderr, "usage: pgtoken-rotator version\n");
    return 2;
}
