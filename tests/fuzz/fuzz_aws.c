/*
 * fuzz_aws.c - libFuzzer over what AWS (or whatever answers at
 * aws.endpoint_url, or sits on the credentials path) can make the workers
 * read: EC2 XML answers and errors, SSM JSON answers and errors, the
 * shared credentials file, the IMDS document, and request parts through
 * the SigV4 signer. The first byte chooses the target; the rest is the
 * input.
 *
 * Invariants beyond "no crash, no leak, no UB": parsed instance fields
 * are NUL-terminated within their arrays; an error always has a kind and
 * a code; a signature is always 64 hex digits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../workers/aws/aws.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static void
must(bool ok)
{
	if (!ok)
		abort();
}

static void
fuzz_sign(const char *s)
{
	/* path \n query \n header-name \n header-value */
	char *parts[4] = {"", "", "Host", ""};
	char *copy = xstrdup(s), *p = copy;
	struct sigv4_header h[2];
	struct sigv4_request r = {0};
	struct aws_credentials cr = {0};
	struct sigv4_output o;
	const char *sig;
	int i;

	for (i = 0; i < 4 && p; i++) {
		char *nl = strchr(p, '\n');

		parts[i] = p;
		if (nl)
			*nl = '\0';
		p = nl ? nl + 1 : NULL;
	}
	h[0].name = "Host";
	h[0].value = "ec2.us-east-1.amazonaws.com";
	h[1].name = parts[2];
	h[1].value = parts[3];
	r.method = "POST";
	r.path = parts[0];
	r.query = parts[1];
	r.headers = h;
	r.nheaders = 2;
	r.keep_path = s[0] & 1;
	cr.access_key_id = "AKIDEXAMPLE";
	cr.secret_access_key = "secret";
	cr.session_token = s[0] & 2 ? "token" : NULL;
	sigv4_output_init(&o);
	if (sigv4_sign(&r, &cr, "us-east-1", "ec2", 1440938160, &o) == 0) {
		sig = strstr(buf_str(&o.authorization), "Signature=");
		must(sig != NULL && strlen(sig + 10) == 64);
	}
	sigv4_output_free(&o);
	free(copy);
}

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	char *s;
	struct aws_error e = {0};

	if (size < 1)
		return 0;
	s = xstrndup((const char *)data + 1, size - 1);
	switch (data[0] % 7) {
	case 0: {
		struct ec2_instances l = {0};
		struct buf next = BUF_INIT;
		size_t i;

		if (ec2_parse_instances(s, strlen(s), &l, &next) == 0)
			for (i = 0; i < l.n; i++)
				must(memchr(l.v[i].id, 0, sizeof(l.v[i].id)) &&
				     memchr(l.v[i].tag_env, 0,
				            sizeof(l.v[i].tag_env)));
		ec2_instances_free(&l);
		buf_free(&next);
		break;
	}
	case 1:
		ec2_parse_error(s, strlen(s), 400, &e);
		must(e.kind != AWS_OK && e.code[0] != '\0');
		break;
	case 2: {
		struct ssm_invocation v;

		ssm_invocation_init(&v);
		ssm_parse_invocation(s, &v);
		ssm_invocation_free(&v);
		break;
	}
	case 3:
		ssm_parse_error(s, 400, &e);
		must(e.kind != AWS_OK && e.code[0] != '\0');
		break;
	case 4: {
		struct aws_credentials c = {0};

		if (credentials_parse_ini(s, "default", &c) == 0)
			must(c.access_key_id && c.secret_access_key);
		aws_credentials_clear(&c);
		break;
	}
	case 5: {
		struct aws_credentials c = {0};

		if (credentials_parse_imds(s, &c) == 0)
			must(c.access_key_id && c.expiration != 0);
		aws_credentials_clear(&c);
		break;
	}
	default:
		fuzz_sign(s);
		break;
	}
	free(s);
	return 0;
}
