/* The LOG_PROG v1 procedures of the reference C log server, for rpcgen's server stub of
 * p2p-proto/log.x (rpcgen -NM): one line per SENDLOG on stdout, flushed per call, as the classic
 * C log server prints it. Shared by benches/rpcgen/build.sh (with log_server_main.c) and the
 * rpcgen interop test (p2p-bins/tests/rpcgen_interop.rs, with rpcgen's own main). */
#include <stdio.h>
#include "log.h"

bool_t sendlog_1_svc(log_entry entry, int *result, struct svc_req *req) {
    (void)req;
    if (entry.file[0] != '\0')
        printf("%s %s %s %s\n", entry.user, entry.op, entry.file, entry.timestamp);
    else
        printf("%s %s %s\n", entry.user, entry.op, entry.timestamp);
    fflush(stdout);
    *result = 0;
    return TRUE;
}

int log_prog_1_freeresult(SVCXPRT *transp, xdrproc_t xdr_result, caddr_t result) {
    (void)transp;
    xdr_free(xdr_result, result);
    return 1;
}
