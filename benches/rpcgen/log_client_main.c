/* The reference log client for `p2p-load log-compare --c-client`: rpcgen's client stub for
 * p2p-proto/log.x (rpcgen -NM -l, libtirpc) driving one server with sequential SENDLOG calls on
 * one TCP connection, as a classic C client does, for a fixed time.
 *
 * Usage: log_client HOST PORT SECONDS
 * Prints `calls N secs S` on stdout; exits 1 on any failed call or non-zero result. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "log.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s HOST PORT SECONDS\n", argv[0]);
        return 2;
    }
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) {
        fprintf(stderr, "not an IPv4 address: %s\n", argv[1]);
        return 2;
    }
    double seconds = atof(argv[3]);
    int sock = RPC_ANYSOCK;
    /* Port given: no rpcbind. */
    CLIENT *clnt = clnttcp_create(&addr, LOG_PROG, LOG_VERS, &sock, 0, 0);
    if (clnt == NULL) {
        clnt_pcreateerror("clnttcp_create");
        return 1;
    }
    log_entry entry;
    entry.user = "alice";
    entry.op = "PUBLISH";
    entry.timestamp = "24/11/2026 19:40:12";
    entry.file = "/home/alice/share/track-000001.ogg";
    long calls = 0;
    double start = now();
    double end = start + seconds;
    double t = start;
    while (t < end) {
        for (int i = 0; i < 64; i++) {
            int result = -1;
            enum clnt_stat stat = sendlog_1(entry, &result, clnt);
            if (stat != RPC_SUCCESS) {
                clnt_perror(clnt, "SENDLOG");
                return 1;
            }
            if (result != 0) {
                fprintf(stderr, "SENDLOG returned %d\n", result);
                return 1;
            }
            calls++;
        }
        t = now();
    }
    printf("calls %ld secs %.6f\n", calls, t - start);
    clnt_destroy(clnt);
    return 0;
}
