-- The shard databases go (the proxy's connections to them with them)
SET client_min_messages = warning;
DROP DATABASE checkout_regress_shard0 WITH (FORCE);
DROP DATABASE checkout_regress_shard1 WITH (FORCE);
