# The workers' API token: exactly what the cloudflare exposure provider
# calls (issue 11), on this account and this zone only.
#   Cloudflare Tunnel Write           create/adopt, configure, clean and delete tunnels, read their token
#   DNS Write (zone_id only)          the proxied CNAME per preview
#   Access: Apps and Policies Write   per-repo bypass paths
#   Access: Service Tokens Write      per-repo CI service tokens
# Nothing user-level, nothing on other zones.

data "cloudflare_api_token_permission_groups" "all" {}

resource "cloudflare_api_token" "workers" {
  name = "ephemera-${var.instance}-workers"

  policy {
    permission_groups = [
      data.cloudflare_api_token_permission_groups.all.account["Cloudflare Tunnel Write"],
      data.cloudflare_api_token_permission_groups.all.account["Access: Apps and Policies Write"],
      data.cloudflare_api_token_permission_groups.all.account["Access: Service Tokens Write"],
    ]
    resources = {
      "com.cloudflare.api.account.${var.account_id}" = "*"
    }
  }

  policy {
    permission_groups = [
      data.cloudflare_api_token_permission_groups.all.zone["DNS Write"],
    ]
    resources = {
      "com.cloudflare.api.account.zone.${var.zone_id}" = "*"
    }
  }
}
