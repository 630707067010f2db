/* handoffd: parse options, then run the chosen server model. main is the
 * only place that decides the process exit status. */
#include <stdio.h>
#include <string.h>
#include <errno.h>

#include "config.h"
#include "log.h"
#include "master.h"
#include "model.h"

int main(int argc, char **argv)
{
    static struct config cfg; /* static: read by forked children for their life */
    char err[512];
    switch (config_parse(&cfg, argc, argv, err, sizeof(err))) {
    case CONFIG_OK:
        break;
    case CONFIG_EXIT_OK:
        return 0;
    case CONFIG_ERROR:
        fprintf(stderr, "handoffd: %s\n", err);
        return 2;
    }
    if (cfg.check_config) {
        printf("handoffd: configuration OK\n");
        return 0;
    }
    log_set_level((enum log_level)cfg.log_level);
    if (cfg.log_file[0] != '\0' && log_open(cfg.log_file) < 0) {
        fprintf(stderr, "handoffd: --log-file %s: %s\n", cfg.log_file, strerror(errno));
        return 2;
    }
    switch (cfg.model) {
    case MODEL_FORK:
        return model_fork_run(&cfg);
    case MODEL_ITERATIVE:
        return model_iterative_run(&cfg);
    case MODEL_PASS:
    case MODEL_ACCEPT:
    case MODEL_REUSEPORT:
        break;
    }
    /* Pre-forked workers under the master's supervision. */
    return master_run(&cfg);
}
