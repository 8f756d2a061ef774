#include "cli/roles.h"

#include <string.h>

#include "common/err.h"

int ps_roles_assign(int size, int nservers, const int *node_of_rank, int nnodes, int *is_server)
{
    if (nservers < 1 || nservers >= size || nnodes < 1) {
        return PS_EINVAL;
    }
    memset(is_server, 0, sizeof(int) * (size_t)size);
    int chosen = 0;
    /* Each pass gives every node with a rank left one more server: the
     * highest unchosen rank on it. */
    while (chosen < nservers) {
        for (int node = 0; node < nnodes && chosen < nservers; node++) {
            for (int r = size - 1; r >= 0; r--) {
                if (node_of_rank[r] == node && !is_server[r]) {
                    is_server[r] = 1;
                    chosen++;
                    break;
                }
            }
        }
    }
    return 0;
}
