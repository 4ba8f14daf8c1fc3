/* A minimal unit-test harness.  Each test is a function registered with
 * TEST(name); main() runs them all and prints one line per test:
 *   PASS <file>:<name>   or   FAIL <file>:<name>: <why>
 * tests/run.sh adds those lines up.  CHECK* record a failure and return
 * from the test function. */
#pragma once

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct test_case {
	const char *name;
	void (*fn)(void);
};

extern int test_failed_;
extern const char *test_file_;

#define TEST(name)                                                                   \
	static void test_##name(void);                                               \
	__attribute__((constructor)) static void register_##name(void)               \
	{                                                                            \
		test_register_(#name, test_##name);                                  \
	}                                                                            \
	static void test_##name(void)

void test_register_(const char *name, void (*fn)(void));

#define FAILF(...)                                                                   \
	do {                                                                         \
		fprintf(stdout, "  %s:%d: ", __FILE__, __LINE__);                    \
		fprintf(stdout, __VA_ARGS__);                                        \
		fputc('\n', stdout);                                                 \
		test_failed_ = 1;                                                    \
	} while (0)

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			FAILF("check failed: %s", #cond);                            \
			return;                                                      \
		}                                                                    \
	} while (0)

#define CHECK_EQ_INT(a, b)                                                           \
	do {                                                                         \
		long long a_ = (long long)(a), b_ = (long long)(b);                  \
		if (a_ != b_) {                                                      \
			FAILF("%s == %lld, expected %s == %lld", #a, a_, #b, b_);    \
			return;                                                      \
		}                                                                    \
	} while (0)

#define CHECK_EQ_STR(a, b)                                                           \
	do {                                                                         \
		const char *a_ = (a), *b_ = (b);                                     \
		if (!a_ || !b_ || strcmp(a_, b_) != 0) {                             \
			FAILF("%s == \"%s\", expected \"%s\"", #a, a_ ? a_ : "(null)", \
			      b_ ? b_ : "(null)");                                   \
			return;                                                      \
		}                                                                    \
	} while (0)

#define CHECK_EQ_MEM(a, b, n)                                                        \
	do {                                                                         \
		if (memcmp((a), (b), (n)) != 0) {                                    \
			FAILF("%s differs from %s", #a, #b);                         \
			return;                                                      \
		}                                                                    \
	} while (0)

/* The runner: every test binary is one .c file that includes this header
 * once, so main() lives here (a file that needs its own main defines
 * TEST_NO_MAIN). */
#ifndef TEST_NO_MAIN
int test_failed_;
const char *test_file_;
static struct test_case test_cases_[256];
static int n_test_cases_;

void test_register_(const char *name, void (*fn)(void))
{
	if (n_test_cases_ < 256)
		test_cases_[n_test_cases_++] = (struct test_case){ name, fn };
}

int main(int argc, char **argv)
{
	const char *file = strrchr(argv[0], '/');
	file = file ? file + 1 : argv[0];
	int failures = 0;
	for (int i = 0; i < n_test_cases_; i++) {
		if (argc > 1 && strcmp(argv[1], test_cases_[i].name) != 0)
			continue;
		test_failed_ = 0;
		test_cases_[i].fn();
		printf("%s %s:%s\n", test_failed_ ? "FAIL" : "PASS", file, test_cases_[i].name);
		fflush(stdout);
		failures += test_failed_;
	}
	return failures ? 1 : 0;
}
#endif
