// SPDX-License-Identifier: GPL-2.0
/*
 * p2mtruth-load FILE.ko [PARAM=VALUE...]: one finit_module() call, nothing else.
 *
 * busybox's insmod retries with init_module() whenever finit_module() fails, and p2mtruth always
 * fails (-EAGAIN, so that it does not stay loaded): under busybox insmod it would run twice.
 * Built static, so it runs in the bare initramfs. Exits 0 when the module refused with EAGAIN as
 * it should, 1 otherwise.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char params[4096] = "";
	size_t used = 0;
	int fd, i;
	long rc;

	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE.ko [PARAM=VALUE...]\n", argv[0]);
		return 2;
	}
	for (i = 2; i < argc; i++) {
		size_t n = strlen(argv[i]);

		if (used + n + 2 > sizeof(params)) {
			fprintf(stderr, "%s: parameters too long\n", argv[0]);
			return 2;
		}
		if (used)
			params[used++] = ' ';
		memcpy(params + used, argv[i], n + 1);
		used += n;
	}
	fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		perror(argv[1]);
		return 2;
	}
	rc = syscall(SYS_finit_module, fd, params, 0);
	printf("P2M-LOAD finit_module rc=%ld errno=%d (%s)\n", rc, rc ? errno : 0,
	       rc ? strerror(errno) : "loaded");
	return (rc < 0 && errno == EAGAIN) ? 0 : 1;
}
