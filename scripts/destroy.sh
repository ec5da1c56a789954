#!/usr/bin/env bash
# destroy.sh - `make destroy`: removes this installation from AWS and
# Cloudflare. It acts only on what carries this installation's marks:
# preview instances tagged ephemera:instance=$INSTANCE with an
# ephemera:env tag, parameters under /$INSTANCE/, tunnels named
# "$INSTANCE-<slug>" with the DNS records that point at them, images
# tagged ephemera:image=environment and ephemera:installation=$INSTANCE; then
# both Terraform stacks. Asks for the instance name unless CONFIRM=$INSTANCE.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# shellcheck source=/dev/null
. infra/deploy.env
export AWS_PROFILE AWS_REGION
I=${INSTANCE:?INSTANCE is not set in infra/deploy.env}
say() { echo "destroy: $*"; }

if [ "${CONFIRM:-}" != "$I" ]; then
	read -r -p "destroy every resource of installation '$I'? type its name: " answer
	[ "$answer" = "$I" ] || { say "not confirmed"; exit 1; }
fi

# 1. Preview instances (made by the workers, not Terraform).
mapfile -t ids < <(aws ec2 describe-instances \
	--filters "Name=tag:ephemera:instance,Values=$I" "Name=tag-key,Values=ephemera:env" \
	"Name=instance-state-name,Values=pending,running,stopping,stopped" \
	--query 'Reservations[].Instances[].InstanceId' --output text | tr '\t' '\n' | grep . || true)
if [ ${#ids[@]} -gt 0 ]; then
	say "terminating ${ids[*]}"
	aws ec2 terminate-instances --instance-ids "${ids[@]}" >/dev/null
	aws ec2 wait instance-terminated --instance-ids "${ids[@]}"
fi

# 2. Environments' parameters, and what deploy.sh put in the control
# plane's tree (the rest of that tree is Terraform's).
mapfile -t params < <(aws ssm get-parameters-by-path --path "/$I/" --recursive \
	--query 'Parameters[].Name' --output text | tr '\t' '\n' | grep . || true)
for ((n = 0; n < ${#params[@]}; n += 10)); do
	aws ssm delete-parameters --names "${params[@]:n:10}" >/dev/null
done
[ ${#params[@]} -eq 0 ] || say "deleted ${#params[@]} parameters under /$I/"
own=()
for n in ephemera.conf github.conf repos.conf github-app.pem webhook-secret \
	cloudflare-token tunnel-token; do
	own+=("/ephemera-control/$I/$n")
done
aws ssm delete-parameters --names "${own[@]}" >/dev/null

# 3. Previews' tunnels and DNS records (the control plane's are Terraform's).
if [ -s infra/out/cloudflare.json ] && [ -n "${CLOUDFLARE_API_TOKEN:-}" ]; then
	acct=$(jq -r '.config.value["cloudflare.account_id"]' infra/out/cloudflare.json)
	zone=$(jq -r '.config.value["cloudflare.zone_id"]' infra/out/cloudflare.json)
	api=https://api.cloudflare.com/client/v4
	cf() { curl -sf -H "Authorization: Bearer $CLOUDFLARE_API_TOKEN" -H "Content-Type: application/json" "$@"; }
	mapfile -t tunnels < <(cf "$api/accounts/$acct/cfd_tunnel?is_deleted=false&per_page=1000" |
		jq -r --arg p "$I-" --arg cp "$I-control-plane" \
			'.result[] | select((.name | startswith($p)) and .name != $cp) | .id')
	for t in "${tunnels[@]}"; do
		cf "$api/zones/$zone/dns_records?type=CNAME&content=$t.cfargotunnel.com" |
			jq -r '.result[].id' | while read -r rec; do
			cf -X DELETE "$api/zones/$zone/dns_records/$rec" >/dev/null
		done
		cf -X DELETE "$api/accounts/$acct/cfd_tunnel/$t/connections" >/dev/null || true
		cf -X DELETE "$api/accounts/$acct/cfd_tunnel/$t" >/dev/null && say "deleted tunnel $t"
	done
else
	say "skipping previews' tunnels: no infra/out/cloudflare.json or CLOUDFLARE_API_TOKEN"
fi

# 4. The Terraform stacks.
scripts/tf.sh destroy

# 5. Environment images and their snapshots.
aws ec2 describe-images --owners self \
	--filters "Name=tag:ephemera:image,Values=environment" "Name=tag:ephemera:installation,Values=$I" \
	--query 'Images[].[ImageId, BlockDeviceMappings[0].Ebs.SnapshotId]' --output text |
	while read -r ami snap; do
		aws ec2 deregister-image --image-id "$ami"
		[ "$snap" = None ] || aws ec2 delete-snapshot --snapshot-id "$snap"
		say "deregistered $ami"
	done
say "done"
