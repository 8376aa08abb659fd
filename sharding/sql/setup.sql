--
-- A sharded shop in one server, as PL/Proxy's own regression tests run it:
-- two shard databases (checkout and checkout_shard, shards 0 and 1) and
-- this database as the proxy (plproxy and checkout_proxy), its cluster
-- checkout_shards reaching the shards through this server's Unix socket.
--
SET client_min_messages = warning;
DROP DATABASE IF EXISTS checkout_regress_shard0 WITH (FORCE);
DROP DATABASE IF EXISTS checkout_regress_shard1 WITH (FORCE);
CREATE DATABASE checkout_regress_shard0;
CREATE DATABASE checkout_regress_shard1;
\c checkout_regress_shard0
SET client_min_messages = warning;
CREATE EXTENSION checkout;
CREATE EXTENSION checkout_shard;
SELECT checkout_shard.shop_shard_init(0);
\c checkout_regress_shard1
SET client_min_messages = warning;
CREATE EXTENSION checkout;
CREATE EXTENSION checkout_shard;
SELECT checkout_shard.shop_shard_init(1);
\c contrib_regression
SET client_min_messages = warning;
CREATE EXTENSION plproxy;
CREATE EXTENSION checkout_proxy;
SELECT format('host=%s port=%s dbname=checkout_regress_shard0',
			  split_part(current_setting('unix_socket_directories'), ',', 1),
			  current_setting('port')) AS p0,
	   format('host=%s port=%s dbname=checkout_regress_shard1',
			  split_part(current_setting('unix_socket_directories'), ',', 1),
			  current_setting('port')) AS p1 \gset
CREATE SERVER checkout_shards FOREIGN DATA WRAPPER plproxy
	OPTIONS (modular_mapping '1', p0 :'p0', p1 :'p1');
CREATE USER MAPPING FOR PUBLIC SERVER checkout_shards;
SELECT extname, extversion FROM pg_extension WHERE extname LIKE 'checkout%' ORDER BY extname;
