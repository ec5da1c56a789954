#!/usr/bin/env bash
# deploy.sh - `make deploy [REF=...]`: puts the control plane's
# configuration and secrets into Parameter Store (SecureString, under
# control_plane_secret_prefix) and has the host fetch REF and run
# scripts/control-plane.sh through SSM Run Command. Secrets travel as
# file:// values, never in argv; the host reads them with its own role.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# shellcheck source=/dev/null
. infra/deploy.env
export AWS_PROFILE AWS_REGION
REF=${REF:-$SOURCE_REF}
APP=${GITHUB_APP_DIR:-infra/out/github-app}

die() { echo "deploy: $*" >&2; exit 1; }
[[ $REF =~ ^[A-Za-z0-9._/-]+$ ]] || die "REF must be a branch, tag or commit"
for f in infra/out/aws.json infra/out/cloudflare.json infra/out/ephemera.conf; do
	[ -s "$f" ] || die "$f is missing: run make tf-apply first"
done
for f in github-app.pem webhook-secret github.conf; do
	[ -s "$APP/$f" ] || die "$APP/$f is missing: run ephemera github-app create (docs/deploy.md step 5)"
done
prefix=$(jq -r .control_plane_secret_prefix.value infra/out/aws.json)
host=$(jq -r .control_plane_instance_id.value infra/out/aws.json)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 700 "$tmp"
(
	umask 077
	jq -r .workers_api_token.value infra/out/cloudflare.json >"$tmp/cloudflare-token"
	jq -r .control_plane_tunnel_token.value infra/out/cloudflare.json >"$tmp/tunnel-token"
	# The App's github.conf names files on this machine; the host's names
	# them in /etc/ephemera.
	app_id=$(sed -n 's/^[[:space:]]*app_id = \([0-9]*\);/\1/p' "$APP/github.conf")
	[ -n "$app_id" ] || die "no app_id in $APP/github.conf"
	printf 'github: {\n\tenabled = true;\n\tapp_id = %s;\n\tprivate_key_file = "/etc/ephemera/github-app.pem";\n\twebhook_secret_file = "/etc/ephemera/webhook-secret";\n};\n' \
		"$app_id" >"$tmp/github.conf"
	if [ -f infra/repos.conf ]; then cp infra/repos.conf "$tmp/repos.conf"; else echo "repos = ( );" >"$tmp/repos.conf"; fi
)

put() { # put NAME FILE
	aws ssm put-parameter --name "$prefix$1" --type SecureString --overwrite \
		--tier Standard --value "file://$2" >/dev/null
	echo "deploy: $prefix$1"
}
put ephemera.conf infra/out/ephemera.conf
put github.conf "$tmp/github.conf"
put repos.conf "$tmp/repos.conf"
put github-app.pem "$APP/github-app.pem"
put webhook-secret "$APP/webhook-secret"
put cloudflare-token "$tmp/cloudflare-token"
put tunnel-token "$tmp/tunnel-token"

echo "deploy: $REF onto $host"
cmd="cd /opt/ephemera/src && git fetch -q origin && git checkout -q '$REF' && (git merge -q --ff-only '@{u}' 2>/dev/null || true) && scripts/control-plane.sh install"
id=$(aws ssm send-command --instance-ids "$host" --document-name AWS-RunShellScript \
	--comment "ephemera deploy" --timeout-seconds 600 \
	--parameters "$(jq -nc --arg c "$cmd" '{commands: [$c], executionTimeout: ["1800"]}')" \
	--query Command.CommandId --output text)
status=Pending
for _ in $(seq 360); do
	sleep 5
	status=$(aws ssm get-command-invocation --command-id "$id" --instance-id "$host" \
		--query Status --output text 2>/dev/null || echo Pending)
	case "$status" in Pending | InProgress | Delayed) continue ;; esac
	break
done
aws ssm get-command-invocation --command-id "$id" --instance-id "$host" \
	--query StandardOutputContent --output text | tail -20
[ "$status" = Success ] || die "the host's install ended $status (aws ssm get-command-invocation --command-id $id --instance-id $host)"
echo "deploy: done; $(jq -r '.config.value["http.public_url"]' infra/out/cloudflare.json)/ is the status page"
