# Cloudflare Access in front of every preview: one self-hosted application
# for *.<zone>, GitHub as the only identity provider, and an allow policy
# for the organisation (or some of its teams). The workers add per-repo
# bypass paths and service tokens at run time (issue 11); this is the part
# set up once.

resource "cloudflare_zero_trust_access_identity_provider" "github" {
  account_id = var.account_id
  name       = "GitHub (${var.instance})"
  type       = "github"
  config {
    client_id     = var.github_oauth_client_id
    client_secret = var.github_oauth_client_secret
  }
}

resource "cloudflare_zero_trust_access_application" "previews" {
  account_id                = var.account_id
  name                      = "Ephemera previews (${var.instance})"
  domain                    = "*.${local.zone}"
  type                      = "self_hosted"
  session_duration          = var.session_duration
  allowed_idps              = [cloudflare_zero_trust_access_identity_provider.github.id]
  auto_redirect_to_identity = true
  app_launcher_visible      = false
}

resource "cloudflare_zero_trust_access_policy" "previews_allow" {
  account_id     = var.account_id
  application_id = cloudflare_zero_trust_access_application.previews.id
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

# `make test-e2e` and CI fetch previews with this token's headers
# (CF-Access-Client-Id / CF-Access-Client-Secret).
resource "cloudflare_zero_trust_access_service_token" "e2e" {
  count      = var.create_e2e_service_token ? 1 : 0
  account_id = var.account_id
  name       = "${var.instance}-e2e"
  duration   = "8760h"
}

resource "cloudflare_zero_trust_access_policy" "previews_e2e" {
  count          = var.create_e2e_service_token ? 1 : 0
  account_id     = var.account_id
  application_id = cloudflare_zero_trust_access_application.previews.id
  name           = "e2e service token"
  precedence     = 2
  decision       = "non_identity"
  include {
    service_token = [cloudflare_zero_trust_access_service_token.e2e[0].id]
  }
}
