#!/usr/bin/env bash
# tf.sh init|plan|apply|destroy - Terraform on both stacks, infra/aws then
# infra/cloudflare (destroy in reverse). After apply, renders the control
# plane's configuration from both stacks' outputs (scripts/tf_config.py)
# into infra/out/ephemera.conf for `make deploy`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
[ -f infra/deploy.env ] || { echo "tf: run make setup first" >&2; exit 1; }
# shellcheck source=/dev/null
. infra/deploy.env
export AWS_PROFILE AWS_REGION
command -v terraform >/dev/null || { echo "tf: terraform is not installed (make setup)" >&2; exit 1; }

stacks=(aws cloudflare)
tf() { terraform -chdir="infra/$1" "${@:2}"; }

case "${1:-}" in
init)
	for s in "${stacks[@]}"; do tf "$s" init -input=false; done
	;;
plan)
	for s in "${stacks[@]}"; do tf "$s" plan -input=false -out=tf.tfplan; done
	;;
apply)
	for s in "${stacks[@]}"; do
		if [ -f "infra/$s/tf.tfplan" ]; then
			tf "$s" apply -input=false tf.tfplan
			rm -f "infra/$s/tf.tfplan"
		else
			tf "$s" apply -input=false
		fi
	done
	# The outputs hold the workers' and tunnel's tokens: mode 0600, never
	# committed (infra/.gitignore); deploy.sh moves them to Parameter Store.
	(umask 077 && mkdir -p infra/out &&
		tf aws output -json >infra/out/aws.json &&
		tf cloudflare output -json >infra/out/cloudflare.json)
	python3 scripts/tf_config.py infra/out/aws.json infra/out/cloudflare.json \
		>infra/out/ephemera.conf
	echo "tf: wrote infra/out/ephemera.conf (the control plane's configuration)"
	;;
destroy)
	for ((i = ${#stacks[@]} - 1; i >= 0; i--)); do
		tf "${stacks[$i]}" destroy -input=false
	done
	;;
*)
	echo "usage: tf.sh init|plan|apply|destroy" >&2
	exit 2
	;;
esac
