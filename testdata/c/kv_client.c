/*
 * A client of the book's key-value protocol (examples/kv) in C on the plain
 * socket API: netcore's interop peer for it. Usage:
 *
 *	kv_client HOST PORT CMD ARG... [, CMD ARG...]...
 *
 * Each command (its strings up to a lone ",") becomes one request frame:
 *
 *	u32 LE  payload length
 *	u32 LE  number of strings
 *	per string: u32 LE length, then its bytes
 *
 * All request frames go out in one buffer (a pipeline); then one reply
 * frame is read per command, in order (u32 LE length, u32 LE status, data),
 * and printed whole, header included, as lowercase hex on a line of its
 * own, so that a test can compare the bytes exactly. It exits 0 once every
 * reply has arrived, 1 on any error (said on stderr).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_MSG (32u << 20) /* the server's default -max-msg */

static void die(const char *what) {
	perror(what);
	exit(1);
}

static void put_u32(unsigned char *p, uint32_t x) {
	p[0] = x & 0xff;
	p[1] = (x >> 8) & 0xff;
	p[2] = (x >> 16) & 0xff;
	p[3] = x >> 24;
}

static uint32_t get_u32(const unsigned char *p) {
	return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

/* read_full reads exactly n bytes; 0 on success, -1 at EOF or error. */
static int read_full(int fd, unsigned char *buf, size_t n) {
	while (n > 0) {
		ssize_t r = read(fd, buf, n);
		if (r <= 0)
			return -1;
		buf += r;
		n -= (size_t)r;
	}
	return 0;
}

static int write_all(int fd, const unsigned char *buf, size_t n) {
	while (n > 0) {
		ssize_t w = write(fd, buf, n);
		if (w <= 0)
			return -1;
		buf += w;
		n -= (size_t)w;
	}
	return 0;
}

static int is_sep(const char *s) { return strcmp(s, ",") == 0; }

int main(int argc, char **argv) {
	if (argc < 4) {
		fprintf(stderr, "usage: %s HOST PORT CMD ARG... [, CMD ARG...]...\n", argv[0]);
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

	/* The size of the pipeline: per command a frame header and a count,
	 * per string a length and the bytes. */
	size_t total = 0;
	int ncmds = 0;
	for (int i = 3; i < argc; i++) {
		if (is_sep(argv[i]))
			continue;
		if (i == 3 || is_sep(argv[i - 1])) {
			ncmds++;
			total += 8;
		}
		total += 4 + strlen(argv[i]);
	}
	unsigned char *wbuf = malloc(total ? total : 1);
	if (!wbuf)
		die("malloc");

	size_t off = 0;
	for (int i = 3; i < argc;) {
		if (is_sep(argv[i])) {
			i++;
			continue;
		}
		int end = i;
		size_t plen = 4;
		while (end < argc && !is_sep(argv[end]))
			plen += 4 + strlen(argv[end++]);
		if (plen > MAX_MSG) {
			fprintf(stderr, "command %s: request of %zu bytes over %u\n", argv[i], plen, MAX_MSG);
			return 1;
		}
		put_u32(wbuf + off, (uint32_t)plen);
		put_u32(wbuf + off + 4, (uint32_t)(end - i));
		off += 8;
		for (; i < end; i++) {
			size_t len = strlen(argv[i]);
			put_u32(wbuf + off, (uint32_t)len);
			memcpy(wbuf + off + 4, argv[i], len);
			off += 4 + len;
		}
	}

	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		die("socket");
	if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
		die("connect");
	if (write_all(fd, wbuf, total) < 0)
		die("write");
	free(wbuf);

	for (int n = 1; n <= ncmds; n++) {
		unsigned char hdr[4];
		if (read_full(fd, hdr, 4) < 0) {
			fprintf(stderr, "reply %d of %d: EOF or error\n", n, ncmds);
			return 1;
		}
		uint32_t len = get_u32(hdr);
		if (len < 4 || len > MAX_MSG) {
			fprintf(stderr, "reply %d of %d: length %u, want 4 to %u\n", n, ncmds, len, MAX_MSG);
			return 1;
		}
		unsigned char *body = malloc(len);
		if (!body)
			die("malloc");
		if (read_full(fd, body, len) < 0) {
			fprintf(stderr, "reply %d of %d: EOF or error after the header\n", n, ncmds);
			return 1;
		}
		for (int k = 0; k < 4; k++)
			printf("%02x", hdr[k]);
		for (uint32_t k = 0; k < len; k++)
			printf("%02x", body[k]);
		printf("\n");
		free(body);
	}
	close(fd);
	return 0;
}
