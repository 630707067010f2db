/* handoffd: parse options, then run the chosen server model. main is the
 * only place that decides the process exit status. */
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "master.h"
#include "model.h"

/* Write our pid to PATH (replacing it atomically). */
static int pidfile_write(const char *path)
{
    char tmp[4200], line[32];
    int n = snprintf(line, sizeof(line), "%d\n", (int)getpid());
    snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    if (write(fd, line, (size_t)n) != n || close(fd) < 0 || rename(tmp, path) < 0) {
        int e = errno;
        unlink(tmp);
        errno = e;
        return -1;
    }
    return 0;
}

/* Remove PATH if it still names us: after a binary upgrade it names the
 * new master, which must keep it. */
static void pidfile_remove(const char *path)
{
    char buf[32];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n > 0) {
        buf[n] = '\0';
        if (atoi(buf) == (int)getpid())
            unlink(path);
    }
}

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
    if (cfg.user[0] != '\0' && geteuid() != 0 && geteuid() != cfg.uid) {
        fprintf(stderr, "handoffd: --user %s: the master must start as root to switch users\n",
                cfg.user);
        return 2;
    }
    if (cfg.pid_file[0] != '\0' && pidfile_write(cfg.pid_file) < 0) {
        fprintf(stderr, "handoffd: --pid-file %s: %s\n", cfg.pid_file, strerror(errno));
        return 1;
    }
    int status = 1;
    switch (cfg.model) {
    case MODEL_FORK:
        status = model_fork_run(&cfg);
        break;
    case MODEL_ITERATIVE:
        status = model_iterative_run(&cfg);
        break;
    case MODEL_PASS:
    case MODEL_ACCEPT:
    case MODEL_REUSEPORT:
        /* Pre-forked workers under the master's supervision. */
        status = master_run(&cfg);
        break;
    }
    if (cfg.pid_file[0] != '\0')
        pidfile_remove(cfg.pid_file);
    return status;
}
