/*
 * test_lazylib.c - the workers' stand-ins for libcurl and libxml2: neither
 * library is mapped until its first call, and each call reaches the real
 * one with its argument intact, whatever the option's type.
 */
#include <curl/curl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <unistd.h>

#include "unit.h"

/* Whether a library whose file name contains `name` is mapped here. */
static bool
mapped(const char *name)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[4096];
	bool found = false;

	if (f == NULL)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, name) != NULL;
	fclose(f);
	return found;
}

static size_t
body_take(char *data, size_t size, size_t n, void *arg)
{
	buf_append(arg, data, size * n);
	return size * n;
}

/* First: nothing before it may call either library. */
static void
test_not_loaded_until_called(void)
{
	CHECK(!mapped("libcurl.so"));
	CHECK(!mapped("libxml2.so"));
	CHECK(!mapped("libgnutls.so"));
	/* Freeing nothing loads nothing. */
	curl_slist_free_all(NULL);
	xmlFreeDoc(NULL);
	CHECK(!mapped("libcurl.so"));
	CHECK(!mapped("libxml2.so"));
}

static void
test_xml_forwarded(void)
{
	static const char xml[] = "<r><a>x &amp; <![CDATA[<y>]]></a></r>";
	xmlDoc *doc = xmlReadMemory(xml, (int)strlen(xml), "t.xml", NULL,
	                            XML_PARSE_NONET);
	xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;

	CHECK(mapped("libxml2.so"));
	CHECK(root != NULL && strcmp((const char *)root->name, "r") == 0);
	if (root && root->children && root->children->children) {
		const xmlNode *t = root->children->children;
		CHECK_STR((const char *)t->content, "x & ");
		CHECK(t->next && t->next->type == XML_CDATA_SECTION_NODE);
	} else {
		CHECK(!"tree");
	}
	xmlFreeDoc(doc);
}

static void
test_curl_forwarded(void)
{
	char *path = unit_write_tmp("hello world");
	struct buf url = BUF_INIT, body = BUF_INIT;
	struct curl_slist *h = NULL;
	curl_off_t size = -1;
	char *effective = NULL;
	CURL *c;

	CHECK(curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK);
	CHECK(mapped("libcurl.so"));
	c = curl_easy_init();
	CHECK(c != NULL);
	if (c == NULL)
		goto out;
	buf_printf(&url, "file://%s", path);
	h = curl_slist_append(h, "X-Unit: 1");
	CHECK(h != NULL && strcmp(h->data, "X-Unit: 1") == 0);
	/* One option of each type: string, function, pointer, long. */
	CHECK(curl_easy_setopt(c, CURLOPT_URL, buf_str(&url)) == CURLE_OK);
	CHECK(curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_take) ==
	      CURLE_OK);
	CHECK(curl_easy_setopt(c, CURLOPT_WRITEDATA, &body) == CURLE_OK);
	CHECK(curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L) == CURLE_OK);
	CHECK(curl_easy_perform(c) == CURLE_OK);
	CHECK_STR(buf_str(&body), "hello world");
	CHECK(curl_easy_getinfo(c, CURLINFO_EFFECTIVE_URL, &effective) ==
	      CURLE_OK);
	CHECK(effective && strcmp(effective, buf_str(&url)) == 0);
	/* A curl_off_t, and a long that changes what comes back. */
	buf_reset(&body);
	CHECK(curl_easy_setopt(c, CURLOPT_RESUME_FROM_LARGE, (curl_off_t)6) ==
	      CURLE_OK);
	CHECK(curl_easy_perform(c) == CURLE_OK);
	CHECK_STR(buf_str(&body), "world");
	CHECK(curl_easy_getinfo(c, CURLINFO_SIZE_DOWNLOAD_T, &size) ==
	      CURLE_OK);
	CHECK(size == 5);
	buf_reset(&body);
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, buf_str(&url));
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_take);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
	CHECK(curl_easy_setopt(c, CURLOPT_NOBODY, 1L) == CURLE_OK);
	CHECK(curl_easy_perform(c) == CURLE_OK);
	CHECK(strstr(buf_str(&body), "hello") == NULL);
	CHECK_STR(curl_easy_strerror(CURLE_OK), "No error");
	curl_easy_cleanup(c);
out:
	curl_slist_free_all(h);
	buf_free(&url);
	buf_free(&body);
	unlink(path);
	free(path);
}

UNIT_MAIN(TEST(test_not_loaded_until_called), TEST(test_xml_forwarded),
          TEST(test_curl_forwarded))
