--
-- Live statistics, with shared_preload_libraries = 'checkout': every
-- outcome counted under its reason, items sold, times, lock waits, reset.
-- A second session (dblink) holds locks and changes rows concurrently.
--
CREATE EXTENSION checkout;
CREATE EXTENSION dblink;
SHOW shared_preload_libraries;
\set SHOW_CONTEXT never
SELECT shop_checkout_stats_reset() IS NOT NULL AS reset;
SELECT attempts, successes, failures FROM shop_checkout_stats
 WHERE datname = current_database();

INSERT INTO products (name, price_cents, stock) VALUES
  ('Flash Sale Smartphone', 49900, 10), ('Phone Case', 1999, 0);
INSERT INTO customers (name) SELECT 'buyer ' || g FROM generate_series(1, 6) AS g;
INSERT INTO cart_items VALUES (1, 1, 2), (2, 2, 1), (4, 1, 1), (5, 1, 1), (6, 1, 3);

SELECT shop_checkout(1) IS NOT NULL AS ordered;	-- success, 2 items
SELECT shop_checkout(2);	-- SH001
SELECT shop_checkout(3);	-- SH002
SELECT shop_checkout(99);	-- SH003
SELECT shop_checkout(NULL);	-- other (22004)

-- A lock timeout: another session holds the product for longer than 100 ms
SELECT dblink_connect('holder', format('host=%s port=%s dbname=%s',
	split_part(current_setting('unix_socket_directories'), ',', 1),
	current_setting('port'), current_database()));
SELECT dblink_exec('holder', 'BEGIN');
SELECT * FROM dblink('holder',
	'SELECT id FROM products WHERE id = 1 FOR NO KEY UPDATE') AS t(id bigint);
SET checkout.lock_timeout = 100;
SELECT shop_checkout(4);
RESET checkout.lock_timeout;
SELECT dblink_exec('holder', 'COMMIT');

-- A serialization failure: the product changes after our snapshot
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT stock FROM products WHERE id = 1;
SELECT dblink_exec('holder', 'UPDATE products SET price_cents = 45900 WHERE id = 1');
SELECT shop_checkout(5);
ROLLBACK;

-- A success inside a transaction that rolls back is still counted: the
-- counter counts calls that returned an order, not commits
BEGIN;
SELECT shop_checkout(6) IS NOT NULL AS ordered;
ROLLBACK;

SELECT attempts, successes, failures, insufficient_stock, empty_cart,
	   unknown_customer, lock_timeouts, serialization_failures, other_failures,
	   items_sold, round(success_rate::numeric, 3) AS success_rate
  FROM shop_checkout_stats WHERE datname = current_database();
SELECT total_time_ms > 0 AS timed,
	   abs(mean_time_ms * attempts - total_time_ms) < 0.001 AS mean_is_total_over_attempts,
	   max_time_ms < total_time_ms AS max_below_total, max_time_ms >= 100 AS max_includes_timeout,
	   lock_wait_ms >= 100 AS lock_wait_includes_timeout,
	   lock_wait_ms <= total_time_ms AS lock_wait_within_time
  FROM shop_checkout_stats WHERE datname = current_database();

-- The function and the view agree
SELECT (SELECT attempts FROM shop_checkout_stats() WHERE dbid = d.oid) =
	   (SELECT attempts FROM shop_checkout_stats WHERE dbid = d.oid) AS same
  FROM pg_database d WHERE d.datname = current_database();

-- Reset zeroes the counters and moves stats_reset
SELECT stats_reset AS reset_before FROM shop_checkout_stats
 WHERE datname = current_database() \gset
SELECT pg_sleep(0.01);
SELECT shop_checkout_stats_reset() > :'reset_before' AS reset_later;
SELECT stats_reset > :'reset_before' AS stats_reset_moved FROM shop_checkout_stats
 WHERE datname = current_database();
SELECT attempts, successes, failures, items_sold, total_time_ms, max_time_ms, lock_wait_ms,
	   mean_time_ms, success_rate
  FROM shop_checkout_stats WHERE datname = current_database();

-- Anyone may read the counters; only the superuser may reset, unless granted
CREATE ROLE regress_stats_reader;
SET ROLE regress_stats_reader;
SELECT attempts FROM shop_checkout_stats WHERE datname = current_database();
SELECT shop_checkout_stats_reset();
RESET ROLE;
DROP ROLE regress_stats_reader;

SELECT dblink_disconnect('holder');

-- Version 1.1's counters: idempotent replays (also successes), purchase
-- limits (SH005), cancelled orders, and expired ones (cancelled after their
-- payment window ended)
SELECT shop_checkout_stats_reset() IS NOT NULL AS reset;
INSERT INTO customers (name) VALUES ('Kim');
SELECT id AS kim FROM customers WHERE name = 'Kim' \gset
SELECT shop_restock(1, 10, 'delivery') > 0 AS restocked;
INSERT INTO cart_items VALUES (:kim, 1, 1);
SET checkout.payment_window = '1h';
SELECT shop_checkout(:kim, 'key-1') AS first_order \gset
SELECT shop_checkout(:kim, 'key-1') = :first_order AS replayed;
RESET checkout.payment_window;
SELECT shop_set_purchase_limit(1, 1);
INSERT INTO cart_items VALUES (:kim, 1, 1);
SELECT shop_checkout(:kim);		-- SH005
SELECT shop_set_purchase_limit(1, NULL);
SELECT shop_checkout(:kim) AS second_order \gset
SELECT shop_cancel_order(:second_order, 'customer request');
UPDATE orders SET expires_at = now() - interval '1 minute' WHERE id = :first_order;
SELECT shop_expire_orders() AS expired;
SELECT attempts, successes, idempotent_replays, purchase_limit_exceeded,
	   orders_cancelled, orders_expired, items_sold
  FROM shop_checkout_stats WHERE datname = current_database();
SELECT count(*) AS problems FROM shop_check_integrity();

-- One row per database, claimed once: database A counts first (its entry
-- comes first), B second; A is dropped and a reset frees its entry; a new
-- backend of B must find B's own entry, not claim A's freed one.
CREATE DATABASE regress_stats_a;
CREATE DATABASE regress_stats_b;
CREATE FUNCTION pg_temp.checkout_in(db text) RETURNS text LANGUAGE sql AS $$
	SELECT dblink_exec(format('host=%s port=%s dbname=%s',
		split_part(current_setting('unix_socket_directories'), ',', 1),
		current_setting('port'), db),
		'CREATE EXTENSION IF NOT EXISTS checkout;
		 INSERT INTO customers (name) VALUES (''x'');
		 DO $do$ BEGIN PERFORM shop_checkout(1);
		 EXCEPTION WHEN SQLSTATE ''SH002'' THEN NULL; END $do$')
$$;
SELECT pg_temp.checkout_in('regress_stats_a'), pg_temp.checkout_in('regress_stats_b');
SELECT datname, attempts, empty_cart FROM shop_checkout_stats
 WHERE datname LIKE 'regress_stats_%' ORDER BY datname;
DROP DATABASE regress_stats_a;
SELECT shop_checkout_stats_reset() IS NOT NULL AS reset;
SELECT pg_temp.checkout_in('regress_stats_b');
SELECT datname, count(*) AS rows, sum(attempts) AS attempts FROM shop_checkout_stats
 WHERE datname IS NULL OR datname LIKE 'regress_stats_%' GROUP BY datname;
DROP DATABASE regress_stats_b;

-- A database whose extension is still at 1.0 reads the statistics through
-- 1.0's function (its first 19 columns) with this library
CREATE DATABASE regress_stats_10;
SELECT dblink_exec(format('host=%s port=%s dbname=regress_stats_10',
		split_part(current_setting('unix_socket_directories'), ',', 1),
		current_setting('port')), 'CREATE EXTENSION checkout VERSION ''1.0''');
SELECT * FROM dblink(format('host=%s port=%s dbname=regress_stats_10',
		split_part(current_setting('unix_socket_directories'), ',', 1),
		current_setting('port')),
	'SELECT count(*) FROM shop_checkout_stats WHERE attempts >= 0')
	AS t(rows_read_through_1_0 bigint);
SELECT * FROM dblink(format('host=%s port=%s dbname=regress_stats_10',
		split_part(current_setting('unix_socket_directories'), ',', 1),
		current_setting('port')),
	'SELECT count(*) FROM pg_attribute WHERE attrelid = ''shop_checkout_stats''::regclass AND attnum > 0')
	AS t(columns_in_1_0 bigint);
DROP DATABASE regress_stats_10;

SET checkout.allow_drop = on;
DROP EXTENSION checkout CASCADE;
DROP EXTENSION dblink;
