-- 019_subnets.sql - local.subnet_pool's reservations (lib/subnet.c,
-- workers/local/subnet_pool.c).
--
-- A local preview admitted while a pool is configured reserves
-- environments.max_networks subnets of it (idx: the subnet's place in the
-- pool; slot: which of its networks, in name order), so admission can
-- count networks and say "full" instead of a build failing on Docker's
-- "could not find an available, non-overlapping IPv4 address pool". A stop
-- keeps them (its networks stay); a destroy or a hold releases them.
CREATE TABLE IF NOT EXISTS env_subnets (
	idx INT UNSIGNED NOT NULL PRIMARY KEY,
	env_id BIGINT UNSIGNED NOT NULL,
	slot TINYINT UNSIGNED NOT NULL,
	UNIQUE KEY env_subnets_env (env_id, slot),
	CONSTRAINT env_subnets_env FOREIGN KEY (env_id)
		REFERENCES environments (id) ON DELETE CASCADE
) ENGINE=InnoDB;
