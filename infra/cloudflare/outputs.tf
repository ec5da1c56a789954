# As in infra/aws: output names cannot hold dots, so Ephemera's settings
# are one map keyed by the exact config keys. Secrets are separate,
# sensitive outputs that scripts/control-plane-secrets.sh moves into
# Parameter Store; they are never written to the config.

output "config" {
  description = "Ephemera configuration keys and their values."
  value = {
    "exposure.provider"         = "cloudflare"
    "cloudflare.account_id"     = var.account_id
    "cloudflare.zone_id"        = var.zone_id
    "cloudflare.zone"           = local.zone
    "cloudflare.access"         = true
    "cloudflare.wake_tunnel_id" = cloudflare_zero_trust_tunnel_cloudflared.control_plane.id
    "http.public_url"           = "https://${local.control_plane_hostname}"
  }
}

output "webhook_url" {
  description = "The GitHub App's webhook URL."
  value       = "https://${local.control_plane_hostname}/webhook"
}

output "workers_api_token" {
  description = "The workers' scoped token (cloudflare.api_token_file's contents)."
  value       = cloudflare_api_token.workers.value
  sensitive   = true
}

output "control_plane_tunnel_token" {
  description = "The control plane's cloudflared token (read with --token-file)."
  value       = cloudflare_zero_trust_tunnel_cloudflared.control_plane.tunnel_token
  sensitive   = true
}

output "e2e_service_token_id" {
  description = "CF-Access-Client-Id for make test-e2e (empty unless create_e2e_service_token)."
  value       = var.create_e2e_service_token ? cloudflare_zero_trust_access_service_token.e2e[0].client_id : ""
}

output "e2e_service_token_secret" {
  description = "CF-Access-Client-Secret for make test-e2e."
  value       = var.create_e2e_service_token ? cloudflare_zero_trust_access_service_token.e2e[0].client_secret : ""
  sensitive   = true
}
