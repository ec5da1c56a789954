#!/usr/bin/env bash
# setup.sh - `make setup`: checks the tools and credentials a cloud
# deployment needs and says exactly what is missing; creates the local
# files to fill in (infra/deploy.env, infra/*/terraform.tfvars) when they
# do not exist. Changes nothing else. Exit 1 when something is missing.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
missing=0

ok() { printf '  ok       %s\n' "$*"; }
miss() {
	printf '  MISSING  %s\n' "$*"
	missing=$((missing + 1))
}

for f in infra/deploy.env infra/aws/terraform.tfvars infra/cloudflare/terraform.tfvars; do
	if [ ! -e "$f" ]; then
		cp "$f.example" "$f" 2>/dev/null || cp "${f%.env}.env.example" "$f"
		echo "setup: created $f from its example: fill it in"
	fi
done
# shellcheck source=/dev/null
. infra/deploy.env
(umask 077 && mkdir -p "${GITHUB_APP_DIR:-infra/out/github-app}")

echo "tools:"
tool() { # tool NAME WHY [VERSION_CMD]
	if command -v "$1" >/dev/null; then ok "$1 ($2)"; else miss "$1: $2"; fi
}
tool terraform "make tf-*: https://developer.hashicorp.com/terraform/install (>= 1.6)"
tool packer "make ami-build: https://developer.hashicorp.com/packer/install (>= 1.10)"
tool aws "make deploy/destroy: AWS CLI v2, https://aws.amazon.com/cli/"
tool jq "make deploy/destroy: apt-get install jq"
tool curl "make destroy, test-e2e: apt-get install curl"
tool python3 "make test-e2e"
if command -v terraform >/dev/null; then
	v=$(terraform version -json 2>/dev/null | jq -r .terraform_version 2>/dev/null)
	case "$v" in
	0.* | 1.[0-5].*) miss "terraform >= 1.6 (found $v)" ;;
	esac
fi

echo "credentials:"
export AWS_PROFILE AWS_REGION
if command -v aws >/dev/null && aws sts get-caller-identity >/dev/null 2>&1; then
	ok "AWS: $(aws sts get-caller-identity --query Arn --output text) in ${AWS_REGION:-?}"
else
	miss "AWS: no working credentials (AWS_PROFILE=${AWS_PROFILE:-} in infra/deploy.env, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY); Terraform needs an administrator for the first apply"
fi
if [ -n "${CLOUDFLARE_API_TOKEN:-}" ]; then
	if curl -sf -H "Authorization: Bearer $CLOUDFLARE_API_TOKEN" \
		https://api.cloudflare.com/client/v4/user/tokens/verify >/dev/null 2>&1; then
		ok "CLOUDFLARE_API_TOKEN (verified)"
	else
		miss "CLOUDFLARE_API_TOKEN: set but Cloudflare does not accept it"
	fi
else
	miss "CLOUDFLARE_API_TOKEN: a token for Terraform (docs/deploy.md step 3 lists its permissions)"
fi
if [ -n "${TF_VAR_github_oauth_client_secret:-}" ]; then
	ok "TF_VAR_github_oauth_client_secret"
else
	miss "TF_VAR_github_oauth_client_secret: the GitHub OAuth App's secret for Access (docs/deploy.md step 3)"
fi
if grep -q 'your-org\|0123456789abcdef0123456789abcdef' infra/*/terraform.tfvars 2>/dev/null; then
	miss "infra/aws/terraform.tfvars, infra/cloudflare/terraform.tfvars: still the example values"
else
	ok "terraform.tfvars filled in"
fi
if [ -s "${GITHUB_APP_DIR:-infra/out/github-app}/github-app.pem" ]; then
	ok "GitHub App files in ${GITHUB_APP_DIR:-infra/out/github-app}"
else
	miss "GitHub App: make all, then bin/ephemera github-app create --dir ${GITHUB_APP_DIR:-infra/out/github-app} --webhook-url https://<control plane>/webhook (docs/deploy.md step 5)"
fi

echo "make test-e2e (optional):"
[ -n "${E2E_GITHUB_REPO:-}" ] && ok "E2E_GITHUB_REPO=$E2E_GITHUB_REPO" ||
	echo "  -        E2E_GITHUB_REPO in infra/deploy.env: a throwaway repository"
[ -n "${EPHEMERA_E2E_GITHUB_TOKEN:-}" ] && ok "EPHEMERA_E2E_GITHUB_TOKEN" ||
	echo "  -        EPHEMERA_E2E_GITHUB_TOKEN: a token that may push and open PRs there"
[ -n "${CF_ACCESS_CLIENT_ID:-}" ] && [ -n "${CF_ACCESS_CLIENT_SECRET:-}" ] && ok "CF_ACCESS_CLIENT_ID/SECRET" ||
	echo "  -        CF_ACCESS_CLIENT_ID (deploy.env) and CF_ACCESS_CLIENT_SECRET (environment)"

if [ $missing -gt 0 ]; then
	echo "setup: $missing missing; see docs/deploy.md"
	exit 1
fi
echo "setup: everything needed is here"
