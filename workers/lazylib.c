/*
 * lazylib.c - libcurl and libxml2, loaded when a worker first calls them.
 *
 * Eight forked workers that merely map Debian's libcurl and libxml2 (and
 * what those pull in: GnuTLS, Kerberos, LDAP, libssh2, ICU, libstdc++...)
 * hold about 10 MB of relocated and touched pages between them before
 * doing anything (bench/footprint's floor), and a worker that only
 * claims jobs on the local compute, without the GitHub App, never calls
 * either. So the programs link neither (Makefile: LINK_PKGS), and this
 * file defines the functions the workers call, with the libraries' own
 * names and signatures: the adapters call the documented API unchanged,
 * and each function here loads its library on first use (RTLD_LOCAL, so
 * the library's own calls never come back here) and hands on to the real
 * one. A library that cannot be loaded is fatal in that worker, with its
 * reason: the supervisor respawns it, as for any crash.
 */
#define CURL_DISABLE_TYPECHECK /* the forwarders below are the real API */
#include <curl/curl.h>
#include <dlfcn.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdarg.h>
#include <string.h>

#include "workers.h"

struct lazylib {
	const char *soname;
	void *handle;
};

static struct lazylib curl_lib = {"libcurl.so.4", NULL};
static struct lazylib xml_lib = {"libxml2.so.2", NULL};

bool
lazylib_loaded(void)
{
	return curl_lib.handle != NULL || xml_lib.handle != NULL;
}

/* The address of `name` in `lib`, loading it the first time. */
static void *
lazylib_sym(struct lazylib *lib, const char *name)
{
	void *p;

	if (lib->handle == NULL) {
		lib->handle = dlopen(lib->soname, RTLD_NOW | RTLD_LOCAL);
		if (lib->handle == NULL)
			fatal("lib_load", "lib=%s reason=%s", lib->soname,
			      log_q(dlerror()));
		log_debug("lib_loaded", "lib=%s", lib->soname);
	}
	p = dlsym(lib->handle, name);
	if (p == NULL)
		fatal("lib_load", "lib=%s symbol=%s reason=%s", lib->soname,
		      name, log_q(dlerror()));
	return p;
}

/*
 * The real `fn` from `lib`, looked up once. POSIX's dlsym idiom: the
 * object pointer is copied into the function pointer's storage.
 */
#define REAL(lib, fn)                                                          \
	static __typeof__(fn) *real;                                           \
	if (real == NULL) {                                                    \
		void *sym_ = lazylib_sym(&(lib), #fn);                         \
		memcpy(&real, &sym_, sizeof(real));                            \
	}

CURLcode
curl_global_init(long flags)
{
	REAL(curl_lib, curl_global_init);
	return real(flags);
}

CURL *
curl_easy_init(void)
{
	REAL(curl_lib, curl_easy_init);
	return real();
}

/*
 * The option's number says the type of its one argument (curl.h's
 * CURLOPTTYPE_* ranges), which is how libcurl itself reads it.
 */
CURLcode
curl_easy_setopt(CURL *h, CURLoption opt, ...)
{
	typedef void (*any_fn)(void);
	va_list ap;
	CURLcode rc;

	REAL(curl_lib, curl_easy_setopt);
	va_start(ap, opt);
	if (opt < CURLOPTTYPE_OBJECTPOINT)
		rc = real(h, opt, va_arg(ap, long));
	else if (opt < CURLOPTTYPE_FUNCTIONPOINT)
		rc = real(h, opt, va_arg(ap, void *));
	else if (opt < CURLOPTTYPE_OFF_T)
		rc = real(h, opt, va_arg(ap, any_fn));
	else if (opt < CURLOPTTYPE_BLOB)
		rc = real(h, opt, va_arg(ap, curl_off_t));
	else
		rc = real(h, opt, va_arg(ap, void *));
	va_end(ap);
	return rc;
}

/* Every CURLINFO_* takes a pointer to where the answer goes. */
CURLcode
curl_easy_getinfo(CURL *h, CURLINFO info, ...)
{
	va_list ap;
	CURLcode rc;

	REAL(curl_lib, curl_easy_getinfo);
	va_start(ap, info);
	rc = real(h, info, va_arg(ap, void *));
	va_end(ap);
	return rc;
}

CURLcode
curl_easy_perform(CURL *h)
{
	REAL(curl_lib, curl_easy_perform);
	return real(h);
}

void
curl_easy_reset(CURL *h)
{
	REAL(curl_lib, curl_easy_reset);
	real(h);
}

void
curl_easy_cleanup(CURL *h)
{
	REAL(curl_lib, curl_easy_cleanup);
	real(h);
}

const char *
curl_easy_strerror(CURLcode code)
{
	REAL(curl_lib, curl_easy_strerror);
	return real(code);
}

struct curl_slist *
curl_slist_append(struct curl_slist *list, const char *s)
{
	REAL(curl_lib, curl_slist_append);
	return real(list, s);
}

void
curl_slist_free_all(struct curl_slist *list)
{
	/* Nothing to free is no reason to load the library. */
	if (list == NULL)
		return;
	REAL(curl_lib, curl_slist_free_all);
	real(list);
}

xmlDocPtr
xmlReadMemory(const char *buf, int size, const char *url, const char *enc,
              int options)
{
	REAL(xml_lib, xmlReadMemory);
	return real(buf, size, url, enc, options);
}

xmlNodePtr
xmlDocGetRootElement(const xmlDoc *doc)
{
	REAL(xml_lib, xmlDocGetRootElement);
	return real(doc);
}

void
xmlFreeDoc(xmlDocPtr doc)
{
	if (doc == NULL)
		return;
	REAL(xml_lib, xmlFreeDoc);
	real(doc);
}
