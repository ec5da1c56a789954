variable "account_id" {
  description = "cloudflare.account_id."
  type        = string
}

variable "zone_id" {
  description = "cloudflare.zone_id: the zone previews live in (a zone used only for previews is best)."
  type        = string
}

variable "zone" {
  description = "cloudflare.zone, e.g. example-previews.com. Previews are <slug>.<zone>: one level, which Universal SSL and Access wildcards cover."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9-]+(\\.[a-z0-9-]+)+$", var.zone))
    error_message = "zone is a DNS name such as example-previews.com."
  }
}

variable "instance" {
  description = "environments.instance (names the tunnel and token)."
  type        = string
  default     = "eph"
}

variable "control_plane_label" {
  description = "The control plane's hostname is <label>.<zone>: status page behind Access, /webhook open to GitHub."
  type        = string
  default     = "ephemera"
  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.control_plane_label))
    error_message = "control_plane_label is one DNS label."
  }
}

variable "control_plane_origin" {
  description = "Where the control plane's cloudflared sends requests: its nginx (http.port)."
  type        = string
  default     = "http://127.0.0.1:8080"
}

variable "github_oauth_client_id" {
  description = "Client id of a GitHub OAuth App whose callback is https://<team>.cloudflareaccess.com/cdn-cgi/access/callback."
  type        = string
}

variable "github_oauth_client_secret" {
  description = "Its client secret (TF_VAR_github_oauth_client_secret; kept out of files)."
  type        = string
  sensitive   = true
}

variable "github_org" {
  description = "GitHub organisation whose members may open previews."
  type        = string
}

variable "github_teams" {
  description = "Teams of github_org allowed in (empty: every member of the organisation)."
  type        = list(string)
  default     = []
}

variable "session_duration" {
  description = "How long an Access login lasts."
  type        = string
  default     = "24h"
}

variable "create_e2e_service_token" {
  description = "true: an Access service token for `make test-e2e` (and CI) to reach previews."
  type        = bool
  default     = false
}
