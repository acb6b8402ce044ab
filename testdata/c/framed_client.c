/*
 * The book's pipelined client in C on the plain socket API: netcore's
 * interop peer for the framed protocol. Usage: framed_client HOST PORT MSG...
 *
 * Each request is a 4-byte little-endian length, then the message (at most
 * 4096 bytes). All requests go out in one write; then one answer per request
 * is read, in order, and printed as "server says: <answer>".
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

/* read_full reads exactly n bytes; 0 on success, -1 at EOF or error. */
static int read_full(int fd, char *buf, size_t n) {
	while (n > 0) {
		ssize_t r = read(fd, buf, n);
		if (r <= 0)
			return -1;
		buf += r;
		n -= (size_t)r;
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
	if (argc < 4) {
		fprintf(stderr, "usage: %s HOST PORT MSG...\n", argv[0]);
		return 1;
	}
	struct sockaddr_in addr;
	memset(&addr, 0, sizeof addr);
	addr.sin_family = AF_INET;
	addr.sin_port = htons((unsigned short)atoi(argv[2]));
	if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) {
		fprintf(stderr, "bad address %s\n", argv[1]);
		return 1;
	}

	/* All requests in one buffer: the pipeline. */
	size_t total = 0;
	for (int i = 3; i < argc; i++)
		total += 4 + strlen(argv[i]);
	char *wbuf = malloc(total);
	if (!wbuf)
		die("malloc");
	size_t off = 0;
	for (int i = 3; i < argc; i++) {
		uint32_t len = (uint32_t)strlen(argv[i]);
		if (len > MAX_MSG) {
			fprintf(stderr, "request %d too long: %u bytes\n", i - 2, len);
			return 1;
		}
		unsigned char hdr[4] = {len & 0xff, (len >> 8) & 0xff, (len >> 16) & 0xff, len >> 24};
		memcpy(wbuf + off, hdr, 4);
		memcpy(wbuf + off + 4, argv[i], len);
		off += 4 + len;
	}

	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		die("socket");
	if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
		die("connect");
	if (write_all(fd, wbuf, total) < 0)
		die("write");
	free(wbuf);

	for (int i = 3; i < argc; i++) {
		unsigned char hdr[4];
		char body[MAX_MSG + 1];
		if (read_full(fd, (char *)hdr, 4) < 0) {
			fprintf(stderr, "answer %d: EOF or error\n", i - 2);
			return 1;
		}
		uint32_t len = hdr[0] | hdr[1] << 8 | hdr[2] << 16 | (uint32_t)hdr[3] << 24;
		if (len > MAX_MSG) {
			fprintf(stderr, "answer %d too long: %u bytes\n", i - 2, len);
			return 1;
		}
		if (read_full(fd, body, len) < 0) {
			fprintf(stderr, "answer %d: EOF or error\n", i - 2);
			return 1;
		}
		body[len] = '\0';
		printf("server says: %s\n", body);
	}
	close(fd);
	return 0;
}
