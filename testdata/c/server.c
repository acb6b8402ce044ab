/*
 * The tutorial's server in C on the plain socket API: netcore's interop
 * peer. Usage: server PORT [COUNT]
 *
 * Listens on 127.0.0.1:PORT (0 picks a free port), prints
 * "listening on 127.0.0.1:<port>", then serves COUNT clients (default 1):
 * one read, "client says: <msg>", answer "world", close.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void die(const char *what) {
	perror(what);
	exit(1);
}

int main(int argc, char **argv) {
	if (argc < 2) {
		fprintf(stderr, "usage: %s PORT [COUNT]\n", argv[0]);
		return 1;
	}
	int count = argc > 2 ? atoi(argv[2]) : 1;

	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		die("socket");
	int one = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
		die("setsockopt");

	struct sockaddr_in addr;
	memset(&addr, 0, sizeof addr);
	addr.sin_family = AF_INET;
	addr.sin_port = htons((unsigned short)atoi(argv[1]));
	if (inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr) != 1)
		die("inet_pton");
	if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
		die("bind");
	if (listen(fd, SOMAXCONN) < 0)
		die("listen");

	socklen_t len = sizeof addr;
	if (getsockname(fd, (struct sockaddr *)&addr, &len) < 0)
		die("getsockname");
	printf("listening on 127.0.0.1:%u\n", ntohs(addr.sin_port));
	fflush(stdout);

	for (int i = 0; i < count; i++) {
		int conn = accept(fd, NULL, NULL);
		if (conn < 0)
			die("accept");
		char buf[4096];
		ssize_t n = read(conn, buf, sizeof buf - 1);
		if (n < 0)
			die("read");
		buf[n] = '\0';
		printf("client says: %s\n", buf);
		fflush(stdout);
		const char *answer = "world";
		if (write(conn, answer, strlen(answer)) < 0)
			die("write");
		close(conn);
	}
	close(fd);
	return 0;
}
