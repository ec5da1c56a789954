# The control plane's own hostname, <label>.<zone>, through its own
# remotely managed tunnel (no inbound port on the host). The status page
# and API sit behind the same GitHub login as the previews; /webhook alone
# bypasses Access, since GitHub cannot log in and every delivery is
# checked by its HMAC signature before anything else.

resource "random_id" "tunnel_secret" {
  byte_length = 32
}

resource "cloudflare_zero_trust_tunnel_cloudflared" "control_plane" {
  account_id = var.account_id
  name       = "${var.instance}-control-plane"
  secret     = random_id.tunnel_secret.b64_std
  config_src = "cloudflare"
}

resource "cloudflare_zero_trust_tunnel_cloudflared_config" "control_plane" {
  account_id = var.account_id
  tunnel_id  = cloudflare_zero_trust_tunnel_cloudflared.control_plane.id
  config {
    ingress_rule {
      hostname = local.control_plane_hostname
      service  = var.control_plane_origin
    }
    # Wake on visit: an idle preview's record points at this tunnel
    # (cloudflare.wake_tunnel_id), so its visits reach the control plane's
    # nginx, whose waking route for that one hostname starts it. A name
    # without such a route gets nginx's 404. Still behind the previews'
    # Access application (*.<zone>, access.tf).
    ingress_rule {
      hostname = "*.${local.zone}"
      service  = var.control_plane_origin
    }
    ingress_rule {
      service = "http_status:404"
    }
  }
}

resource "cloudflare_record" "control_plane" {
  zone_id = var.zone_id
  name    = var.control_plane_label
  type    = "CNAME"
  content = "${cloudflare_zero_trust_tunnel_cloudflared.control_plane.id}.cfargotunnel.com"
  proxied = true
  comment = "ephemera:${var.instance} control plane (terraform)"
}

resource "cloudflare_zero_trust_access_application" "control_plane" {
  account_id                = var.account_id
  name                      = "Ephemera control plane (${var.instance})"
  domain                    = local.control_plane_hostname
  type                      = "self_hosted"
  session_duration          = var.session_duration
  allowed_idps              = [cloudflare_zero_trust_access_identity_provider.github.id]
  auto_redirect_to_identity = true
}

resource "cloudflare_zero_trust_access_policy" "control_plane_allow" {
  account_id     = var.account_id
  application_id = cloudflare_zero_trust_access_application.control_plane.id
  name           = "GitHub ${var.github_org}"
  precedence     = 1
  decision       = "allow"
  include {
    github {
      name                 = var.github_org
      teams                = var.github_teams
      identity_provider_id = cloudflare_zero_trust_access_identity_provider.github.id
    }
  }
}

# The more specific application wins: <host>/webhook is open to everyone.
# nginx serves nothing else under that path (location = /webhook).
resource "cloudflare_zero_trust_access_application" "webhook" {
  account_id = var.account_id
  name       = "Ephemera webhook (${var.instance})"
  domain     = "${local.control_plane_hostname}/webhook"
  type       = "self_hosted"
}

resource "cloudflare_zero_trust_access_policy" "webhook_bypass" {
  account_id     = var.account_id
  application_id = cloudflare_zero_trust_access_application.webhook.id
  name           = "GitHub deliveries (HMAC-checked)"
  precedence     = 1
  decision       = "bypass"
  include {
    everyone = true
  }
}
