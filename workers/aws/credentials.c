/*
 * credentials.c - the AWS credentials chain.
 */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "aws.h"

static void
secret_free(char **s)
{
	if (*s) {
		OPENSSL_cleanse(*s, strlen(*s));
		free(*s);
		*s = NULL;
	}
}

void
aws_credentials_clear(struct aws_credentials *c)
{
	if (c == NULL)
		return;
	secret_free(&c->access_key_id);
	secret_free(&c->secret_access_key);
	secret_free(&c->session_token);
	c->expiration = 0;
}
