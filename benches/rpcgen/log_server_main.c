/* The reference log server for `p2p-load log-compare`: rpcgen's server stubs for
 * p2p-proto/log.x (rpcgen -NM -m, libtirpc) and the procedures of log_proc.c with this main,
 * which serves TCP on 127.0.0.1:PORT without rpcbind. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "log.h"

void log_prog_1(struct svc_req *rqstp, SVCXPRT *transp);

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)atoi(argv[1]));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 4096) != 0) {
        perror("bind/listen");
        return 1;
    }
    SVCXPRT *tcp = svctcp_create(fd, 0, 0);
    if (tcp == NULL) {
        fprintf(stderr, "cannot create the tcp service\n");
        return 1;
    }
    /* Protocol 0: do not register with rpcbind; clients are given the port. */
    if (!svc_register(tcp, LOG_PROG, LOG_VERS, log_prog_1, 0)) {
        fprintf(stderr, "unable to register (LOG_PROG, LOG_VERS, tcp)\n");
        return 1;
    }
    svc_run();
    return 1;
}
