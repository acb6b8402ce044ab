/*
 * The tutorial's client in C on the plain socket API: netcore's interop
 * peer. Usage: client HOST PORT [MSG]
 *
 * Connects, writes MSG (default "hello"), reads until the server closes,
 * prints "server says: <answer>".
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
	if (argc < 3) {
		fprintf(stderr, "usage: %s HOST PORT [MSG]\n", argv[0]);
		return 1;
	}
	const char *msg = argc > 3 ? argv[3] : "hello";

	struct sockaddr_in addr;
	memset(&addr, 0, sizeof addr);
	addr.sin_family = AF_INET;
	addr.sin_port = htons((unsigned short)atoi(argv[2]));
	if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) {
		fprintf(stderr, "bad address %s\n", argv[1]);
		return 1;
	}

	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		die("socket");
	if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
		die("connect");
	if (write(fd, msg, strlen(msg)) < 0)
		die("write");

	char buf[4096];
	size_t got = 0;
	for (;;) {
		ssize_t n = read(fd, buf + got, sizeof buf - 1 - got);
		if (n < 0)
			die("read");
		if (n == 0 || got + (size_t)n == sizeof buf - 1) {
			got += (size_t)n;
			break;
		}
		got += (size_t)n;
	}
	buf[got] = '\0';
	printf("server says: %s\n", buf);
	close(fd);
	return 0;
}
