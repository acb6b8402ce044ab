/*
 * gen_vectors writes netcore's golden vectors: the bytes glibc puts in
 * struct sockaddr_in / sockaddr_in6 (through inet_pton and htons), and the
 * results of htons/htonl/htobe64 as the bytes they leave in memory.
 *
 *   gcc -O2 -Wall -o /tmp/gen_vectors testdata/gen_vectors.c
 *   /tmp/gen_vectors > testdata/vectors.txt
 *
 * Lines:
 *   sockaddr TEXT FLOWINFO HEX   TEXT is the address as netcore prints it
 *                                (from inet_ntop), HEX the struct's bytes
 *   htons VALUE HEX              VALUE in hex, HEX the result's bytes in memory
 *   htonl VALUE HEX
 *   htonll VALUE HEX             (htobe64: C has no htonll)
 *   sockaddr_un NAME HEX         NAME as Go's net spells it ("@" first for
 *                                the abstract namespace, "-" for an
 *                                unnamed socket), HEX the struct's bytes up
 *                                to the length getsockname(2) reports
 */
#include <arpa/inet.h>
#include <endian.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/un.h>

static void hex(const void *p, size_t n) {
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		printf("%02x", b[i]);
	printf("\n");
}

static void v4(const char *ip, unsigned port) {
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1) {
		fprintf(stderr, "inet_pton(%s) failed\n", ip);
		exit(1);
	}
	char text[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &sa.sin_addr, text, sizeof text);
	printf("sockaddr %s:%u 0 ", text, port);
	hex(&sa, sizeof sa);
}

static void v6(const char *ip, unsigned port, uint32_t scope, uint32_t flow) {
	struct sockaddr_in6 sa;
	memset(&sa, 0, sizeof sa);
	sa.sin6_family = AF_INET6;
	sa.sin6_port = htons((uint16_t)port);
	sa.sin6_flowinfo = htonl(flow);
	sa.sin6_scope_id = scope;
	if (inet_pton(AF_INET6, ip, &sa.sin6_addr) != 1) {
		fprintf(stderr, "inet_pton(%s) failed\n", ip);
		exit(1);
	}
	char text[INET6_ADDRSTRLEN];
	inet_ntop(AF_INET6, &sa.sin6_addr, text, sizeof text);
	if (scope != 0)
		printf("sockaddr [%s%%%" PRIu32 "]:%u %" PRIu32 " ", text, scope, port, flow);
	else
		printf("sockaddr [%s]:%u %" PRIu32 " ", text, port, flow);
	hex(&sa, sizeof sa);
}

/* un writes a struct sockaddr_un: a path (NUL-terminated, counted), an
 * abstract name (abstract != 0: a NUL, then the name, no NUL after it), or
 * with name NULL an unnamed socket (the family alone). */
static void un(const char *name, int abstract) {
	struct sockaddr_un sa;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	size_t len = offsetof(struct sockaddr_un, sun_path);
	if (name != NULL && abstract) {
		memcpy(sa.sun_path + 1, name, strlen(name));
		len += 1 + strlen(name);
	} else if (name != NULL) {
		strcpy(sa.sun_path, name);
		len += strlen(name) + 1;
	}
	if (name == NULL)
		printf("sockaddr_un - ");
	else
		printf("sockaddr_un %s%s ", abstract ? "@" : "", name);
	hex(&sa, len);
}

int main(void) {
	printf("# netcore golden vectors, written through glibc by testdata/gen_vectors.c (see its header)\n");
	v4("0.0.0.0", 0);
	v4("127.0.0.1", 1234);
	v4("255.255.255.255", 65535);
	v4("10.1.2.3", 80);
	v4("192.0.2.1", 256);
	v6("::", 0, 0, 0);
	v6("::1", 1234, 0, 0);
	v6("::ffff:1.2.3.4", 8080, 0, 0);
	v6("fe80::1", 80, 1, 0);
	v6("2001:db8::1", 443, 0, 0);
	v6("ff02::1", 65535, 2, 0);
	v6("2001:db8:85a3::8a2e:370:7334", 1, 0, 0x12345);
	v6("fe80::abcd:ef01", 5353, 4294967295u, 0x0fffffff);

	un("/tmp/app.sock", 0);
	un("/run/redis/redis-server.sock", 0);
	un("relative.sock", 0);
	un("/", 0);
	un("/tmp/0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789", 0); /* 105 bytes */
	un("netcore", 1);
	un("", 1);
	un("0000a", 1); /* what autobind picks */
	un(NULL, 0);

	uint16_t s[] = {0, 1, 0x80, 0x1234, 0xff00, 0xffff};
	for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
		uint16_t r = htons(s[i]);
		printf("htons %04x ", s[i]);
		hex(&r, sizeof r);
		r = ntohs(s[i]);
		printf("ntohs %04x ", s[i]);
		hex(&r, sizeof r);
	}
	uint32_t l[] = {0, 1, 0x80, 0x7f000001, 0x12345678, 0xdeadbeef, 0xffffffff};
	for (size_t i = 0; i < sizeof l / sizeof l[0]; i++) {
		uint32_t r = htonl(l[i]);
		printf("htonl %08" PRIx32 " ", l[i]);
		hex(&r, sizeof r);
		r = ntohl(l[i]);
		printf("ntohl %08" PRIx32 " ", l[i]);
		hex(&r, sizeof r);
	}
	uint64_t q[] = {0, 1, 0x0102030405060708ull, 0xffffffffffffffffull, 0x8000000000000000ull};
	for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
		uint64_t r = htobe64(q[i]);
		printf("htonll %016" PRIx64 " ", q[i]);
		hex(&r, sizeof r);
	}
	return 0;
}
