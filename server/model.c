/* model: see model.h. */
#include "model.h"

#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addr.h"
#include "proto.h"

void model_announce(const struct config *cfg, int listen_fd, int workers)
{
    char where[ADDR_PAIRLEN];
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(listen_fd, (struct sockaddr *)&ss, &sl) < 0 ||
        addr_format_listen((struct sockaddr *)&ss, where, sizeof(where)) < 0)
        snprintf(where, sizeof(where), "{?, *:*}");
    fprintf(stderr, "handoffd: listening %s model=%s workers=%d protocol=%s pid=%d\n", where,
            config_model_name(cfg->model), workers, cfg->proto->name, (int)getpid());
    fflush(stderr);
}
