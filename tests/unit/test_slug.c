/* test_slug.c - environment names: one DNS label, collision suffixes. */
#include "unit.h"

static bool
label_ok(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return false;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

static void
test_same_name_other_owner(void)
{
	char a[64], b[64], sa[64], sb[64];

	slug_make("alice/app", 42, a);
	slug_make("bob/app", 42, b);
	CHECK_STR(a, b); /* the collision the suffix exists for */
	CHECK_STR(a, "pr-42-app");
	slug_make_suffixed("alice/app", 42, 6, sa);
	slug_make_suffixed("bob/app", 42, 6, sb);
	CHECK(strcmp(sa, sb) != 0);
	CHECK(strncmp(sa, "pr-42-app-", 10) == 0 && strlen(sa) == 16);
	CHECK(label_ok(sa) && label_ok(sb));
	/* Stable, and case-insensitive like GitHub's names. */
	slug_make_suffixed("Alice/App", 42, 6, sb);
	CHECK_STR(sa, sb);
	/* sha256("alice/app") starts with these digits. */
	CHECK_STR(sa + 10, "929c20");
}

static void
test_long_and_hostile_names(void)
{
	static const char *const repos[] = {
	        "o/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	        "aaaaaaaaaaaaaaaaaaaaaaaa",
	        "o/-.-_-.-",
	        "o/$(rm -rf ~)",
	        "o/\xc3\xa9t\xc3\xa9",
	        "noslash",
	        "o/a--------------------------------------------------------b",
	};
	static const uint64_t prs[] = {1, 4294967295u, 18446744073709551615u};
	size_t i, j, h;
	char s[64];

	for (i = 0; i < NELEM(repos); i++)
		for (j = 0; j < NELEM(prs); j++) {
			slug_make(repos[i], prs[j], s);
			CHECK(label_ok(s));
			CHECK(slug_valid(s, strlen(s)));
			for (h = 1; h <= 40; h += 5) {
				slug_make_suffixed(repos[i], prs[j], h, s);
				if (!label_ok(s))
					fprintf(stderr, "  bad: %s\n", s);
				CHECK(label_ok(s));
				CHECK(slug_valid(s, strlen(s)));
			}
		}
}

/* Names read back from disk or Docker: only what slug_make makes. */
static void
test_valid(void)
{
	static const char *const bad[] = {
	        "",          "pr-",           "pr-x",           "PR-1-app",
	        "pr-1-app-", "pr-1/../x",     "pr-1-a.b",       "pr-1-a b",
	        "x-pr-1",    "pr-1-\xc3\xa9", "bench-baseline", "pr-1-app\n",
	};
	size_t i;
	char s[80];

	CHECK(slug_valid("pr-1", 4));
	CHECK(slug_valid("pr-42-my-app", 12));
	for (i = 0; i < NELEM(bad); i++)
		CHECK(!slug_valid(bad[i], strlen(bad[i])));
	memset(s, 'a', sizeof(s));
	memcpy(s, "pr-1-", 5);
	CHECK(slug_valid(s, 63));
	CHECK(!slug_valid(s, 64));
}

UNIT_MAIN(TEST(test_same_name_other_owner), TEST(test_long_and_hostile_names),
          TEST(test_valid))
