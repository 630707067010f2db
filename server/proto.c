/* proto: the table of protocols --protocol can name. */
#include "proto.h"

#include <string.h>

static const struct proto *const proto_table[] = {
    &proto_echo,
    &proto_discard,
    &proto_whoami,
    &proto_unp,
    &proto_http,
};

const struct proto *proto_find(const char *name)
{
    for (size_t i = 0; i < sizeof(proto_table) / sizeof(proto_table[0]); i++)
        if (strcmp(proto_table[i]->name, name) == 0)
            return proto_table[i];
    return NULL;
}

const char *proto_names(void)
{
    static char names[256];
    if (names[0] == '\0') {
        for (size_t i = 0; i < sizeof(proto_table) / sizeof(proto_table[0]); i++) {
            if (i > 0)
                strcat(names, ", ");
            strcat(names, proto_table[i]->name);
        }
    }
    return names;
}

bool proto_park_always(struct conn *c)
{
    (void)c;
    return true;
}
