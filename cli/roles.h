/* Roles: which ranks are servers. Servers are spread over nodes round-robin
 * (one per node before any node gets a second), taking the highest rank of
 * each node first, so rank 0 stays a worker (the coordinator) whenever a
 * worker is left. Pure; every rank computes the same answer. */
#ifndef PS_ROLES_H
#define PS_ROLES_H

/* is_server[r] (size entries) = 1 for the nservers chosen ranks, else 0.
 * node_of_rank[r] in [0, nnodes). Returns 0, or PS_EINVAL when nservers is
 * not in [1, size). */
int ps_roles_assign(int size, int nservers, const int *node_of_rank, int nnodes, int *is_server);

#endif
