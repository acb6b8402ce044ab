/*
 * floor measures what this machine's kernel allows, without Go: the cost of
 * a null system call and of a 64-byte TCP ping-pong over loopback between
 * two threads, once with blocking reads (what netcore's fast path does) and
 * once with both threads spinning on non-blocking reads. It is the yardstick
 * for the fast path's targets (see the README's benchmark section).
 *
 *   gcc -O2 -o /tmp/floor scripts/floor.c -lpthread && /tmp/floor
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum { N = 50000, MSG = 64 };

static int spin;

static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void die(const char *what) {
	perror(what);
	exit(1);
}

/* readfull reads exactly MSG bytes, spinning on MSG_DONTWAIT if asked. */
static int readfull(int fd, char *buf) {
	int got = 0;
	while (got < MSG) {
		ssize_t n = recv(fd, buf + got, MSG - got, spin ? MSG_DONTWAIT : 0);
		if (n == 0)
			return 0;
		if (n < 0) {
			if (spin)
				continue;
			die("recv");
		}
		got += n;
	}
	return 1;
}

static void *echo(void *arg) {
	int fd = *(int *)arg;
	char buf[MSG];
	while (readfull(fd, buf))
		if (write(fd, buf, MSG) != MSG)
			die("write");
	return NULL;
}

static double pingpong(void) {
	int l = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t alen = sizeof a;
	if (l < 0 || bind(l, (void *)&a, sizeof a) < 0 || listen(l, 1) < 0 || getsockname(l, (void *)&a, &alen) < 0)
		die("listen");
	int c = socket(AF_INET, SOCK_STREAM, 0);
	if (c < 0 || connect(c, (void *)&a, sizeof a) < 0)
		die("connect");
	int s = accept(l, NULL, NULL);
	if (s < 0)
		die("accept");
	int one = 1;
	setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	pthread_t t;
	pthread_create(&t, NULL, echo, &s);
	char buf[MSG] = {0};
	double t0 = now();
	for (int i = 0; i < N; i++) {
		if (write(c, buf, MSG) != MSG)
			die("write");
		readfull(c, buf);
	}
	double ns = (now() - t0) / N;
	close(c);
	pthread_join(t, NULL);
	close(s);
	close(l);
	return ns;
}

int main(void) {
	double t0 = now();
	for (int i = 0; i < 1000000; i++)
		syscall(SYS_getppid);
	printf("null system call:            %6.0f ns\n", (now() - t0) / 1e6);
	spin = 0;
	printf("ping-pong, blocking reads:   %6.0f ns per round trip\n", pingpong());
	spin = 1;
	printf("ping-pong, spinning reads:   %6.0f ns per round trip\n", pingpong());
	return 0;
}
