/* test_core: the hand-off server end to end: whoami socket pairs from many
 * source addresses, echo round trips, worker respawn, graceful stop. */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "addr.h"
#include "harness.h"

Test(core, whoami_pairs_match_clients_and_spread_over_workers, .timeout = 60)
{
    struct server s;
    const char *args[] = { "--listen", "0", "--workers", "4", "--protocol", "whoami", NULL };
    cr_assert_eq(server_start(&s, args), 0, "server did not start");
    cr_assert(strstr(s.line, "{*:") != NULL, "start-up line: %s", s.line);
    cr_assert(strstr(s.line, "model=pass workers=4 protocol=whoami") != NULL, "%s", s.line);

    static const char *const srcs[] = { "127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4" };
    int seen[4] = { 0 };
    for (int i = 0; i < 200; i++) {
        const char *src = srcs[i % 4];
        int fd = tcp_connect(src, src, s.port);
        cr_assert(fd >= 0, "connect %s", src);
        char line[256], want[ADDR_PAIRLEN];
        cr_assert(read_line(fd, line, sizeof(line), 5000) > 0, "no whoami line");
        cr_assert(client_pair_as_server_sees(fd, want, sizeof(want)) > 0);
        cr_assert(strncmp(line, want, strlen(want)) == 0, "got '%s' want '%s'", line, want);
        int k = -1;
        const char *w = strstr(line, " worker=");
        cr_assert(w != NULL && sscanf(w, " worker=%d", &k) == 1 && k >= 0 && k < 4, "%s", line);
        seen[k]++;
        close(fd);
    }
    for (int k = 0; k < 4; k++)
        cr_expect(seen[k] > 0, "worker %d served nothing", k);
    int st;
    cr_assert_eq(server_stop(&s, SIGTERM, 15000, &st), 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}
