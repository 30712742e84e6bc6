/* vdictl: the admin API's command-line client. Everything is in vdictl-cli.c. */
#include <stdio.h>

#include "vdictl-cli.h"

int main(int argc, char **argv)
{
    return vdictl_run(argc, argv, stdout, stderr);
}
