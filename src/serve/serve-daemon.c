#include "serve-daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../basic/io.h"
#include "../basic/util.h"

static void wait_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
}

/* The parent of a backgrounded server: relay the child's readiness. */
static void __attribute__((noreturn)) parent(int fd, pid_t child)
{
	char buf[4096];
	size_t len = 0;
	while (len < sizeof(buf) - 1) {
		ssize_t k = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		len += (size_t)k;
		if (memchr(buf, '\n', len))
			break;
	}
	buf[len] = 0;
	char *nl = strchr(buf, '\n');
	if (nl && len >= 2 && buf[1] == ' ' && (buf[0] == 'R' || buf[0] == 'E')) {
		*nl = 0;
		if (buf[0] == 'R') {
			printf("%s\n", buf + 2);
			fflush(stdout);
			_exit(0);
		}
		if (buf[2])
			fprintf(stderr, "%s\n", buf + 2);
		_exit(1);
	}
	int status;
	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
	fprintf(stderr, "casfs: the server exited before it was ready\n");
	_exit(1);
}

int casfs_daemon_begin(struct casfs_daemon *d, bool background)
{
	d->background = background;
	d->ready_fd = -1;
	sigset_t set;
	wait_signals(&set);
	signal(SIGPIPE, SIG_IGN);
	if (!background) {
		pthread_sigmask(SIG_BLOCK, &set, NULL);
		return 0;
	}
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return casfs_neg_errno();
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0) {
		int r = casfs_neg_errno();
		close(p[0]);
		close(p[1]);
		return r;
	}
	if (pid > 0) {
		close(p[1]);
		parent(p[0], pid);
	}
	close(p[0]);
	d->ready_fd = p[1];
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	return 0;
}

static void send_line(struct casfs_daemon *d, char kind, const char *text)
{
	size_t n = strlen(text);
	char *msg = malloc(n + 4);
	if (!msg)
		return;
	msg[0] = kind, msg[1] = ' ';
	memcpy(msg + 2, text, n);
	for (size_t i = 2; i < n + 2; i++)
		if (msg[i] == '\n')
			msg[i] = ' ';
	msg[n + 2] = '\n';
	casfs_write_all(d->ready_fd, msg, n + 3);
	free(msg);
	close(d->ready_fd);
	d->ready_fd = -1;
}

void casfs_daemon_ready(struct casfs_daemon *d, const char *line)
{
	if (d->ready_fd < 0) {
		printf("%s\n", line);
		fflush(stdout);
		return;
	}
	setsid();
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		if (null > STDERR_FILENO)
			close(null);
	}
	send_line(d, 'R', line);
}

void casfs_daemon_failed(struct casfs_daemon *d, const char *message)
{
	if (!message)
		message = "";
	if (d->ready_fd < 0) {
		if (*message)
			fprintf(stderr, "%s\n", message);
		return;
	}
	send_line(d, 'E', message);
}

int casfs_daemon_wait(struct casfs_daemon *d)
{
	(void)d;
	sigset_t set;
	wait_signals(&set);
	for (;;) {
		int sig;
		if (sigwait(&set, &sig) == 0)
			return sig;
	}
}
