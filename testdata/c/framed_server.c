/*
 * The book's request/response server in C on the plain socket API:
 * netcore's interop peer for the framed protocol. Usage: framed_server PORT
 *
 * Listens on 127.0.0.1:PORT (0 picks a free port), prints
 * "listening on 127.0.0.1:<port>", serves one client: for each request (a
 * 4-byte little-endian length, at most 4096 bytes) prints
 * "client says: <msg>" and answers "world" in the same framing, until the
 * client closes; then exits. A request over 4096 bytes ends the connection
 * with exit status 1.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_MSG 4096

static void die(const char *what) {
	perror(what);
	exit(1);
}

/* read_full reads exactly n bytes: 0 on success, 1 at EOF before any byte,
 * -1 at EOF in the middle or on error. */
static int read_full(int fd, char *buf, size_t n) {
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, buf + got, n - got);
		if (r < 0)
			return -1;
		if (r == 0)
			return got == 0 ? 1 : -1;
		got += (size_t)r;
	}
	return 0;
}

static int write_all(int fd, const char *buf, size_t n) {
	while (n > 0) {
		ssize_t w = write(fd, buf, n);
		if (w <= 0)
			return -1;
		buf += w;
		n -= (size_t)w;
	}
	return 0;
}

int main(int argc, char **argv) {
	if (argc < 2) {
		fprintf(stderr, "usage: %s PORT\n", argv[0]);
		return 1;
	}
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
	socklen_t alen = sizeof addr;
	if (getsockname(fd, (struct sockaddr *)&addr, &alen) < 0)
		die("getsockname");
	printf("listening on 127.0.0.1:%u\n", ntohs(addr.sin_port));
	fflush(stdout);

	int conn = accept(fd, NULL, NULL);
	if (conn < 0)
		die("accept");
	for (;;) {
		unsigned char hdr[4];
		char body[MAX_MSG + 1];
		int r = read_full(conn, (char *)hdr, 4);
		if (r == 1)
			break; /* the client is done */
		if (r < 0) {
			fprintf(stderr, "truncated request\n");
			return 1;
		}
		uint32_t len = hdr[0] | hdr[1] << 8 | hdr[2] << 16 | (uint32_t)hdr[3] << 24;
		if (len > MAX_MSG) {
			fprintf(stderr, "request too long: %u bytes\n", len);
			return 1;
		}
		if (read_full(conn, body, len) != 0) {
			fprintf(stderr, "truncated request\n");
			return 1;
		}
		body[len] = '\0';
		printf("client says: %s\n", body);
		fflush(stdout);
		const char answer[] = "\x05\x00\x00\x00world";
		if (write_all(conn, answer, sizeof answer - 1) < 0)
			die("write");
	}
	close(conn);
	close(fd);
	return 0;
}
