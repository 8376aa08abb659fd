--
-- Errors through the proxy: the shard's SQLSTATE, message, detail and hint,
-- unchanged.  SH008 means only that a shard could not be reached; an error
-- planted on a shard that is no connection failure surfaces as itself,
-- neither reported as SH008 nor swallowed.
--
SELECT min(g) FILTER (WHERE shop_shard_of(g) = 0) AS c0,
	   min(g) FILTER (WHERE shop_shard_of(g) = 1) AS c1
  FROM generate_series(1, 50) AS g \gset
\set SHOW_CONTEXT never
SELECT shop_checkout(:c1);					-- empty cart
\echo :LAST_ERROR_SQLSTATE
SELECT shop_checkout(999999999);			-- no such customer
\echo :LAST_ERROR_SQLSTATE
SELECT shop_checkout(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT shop_checkout(:c0, '');
\echo :LAST_ERROR_SQLSTATE
SELECT shop_pay(1, 'psp-x');				-- no such order
\echo :LAST_ERROR_SQLSTATE
SELECT shop_cart_status(NULL);
\echo :LAST_ERROR_SQLSTATE

-- What counts as a shard that cannot be reached: PL/Proxy's own messages
SELECT checkout_unreachable(st, msg) AS unreachable, st, msg
  FROM (VALUES
	('08006', 'PL/Proxy function public.shard_pay(1): [shop] PQconsumeInput: server closed the connection unexpectedly'),
	('XX000', 'PL/Proxy function public.shard_pay(1): [shop] PQconnectPoll: connection to server failed'),
	('XX000', 'PL/Proxy function public.shard_pay(1): [shop] PQconnectStart: could not connect'),
	('XX000', 'PL/Proxy function public.shard_pay(1): [shop] PQsendQueryParams: no connection to the server'),
	('XX000', 'PL/Proxy function public.shard_pay(1): [shop] PQflush: could not send data'),
	('XX000', 'PL/Proxy function public.shard_pay(1): connect timeout to: host=db1 dbname=shop'),
	('XX000', 'PL/Proxy function public.shard_pay(1): query timeout'),
	('XX000', 'PL/Proxy function public.shard_pay(1): Compile error at line 1: syntax error'),
	('XX000', 'Pl/Proxy: cluster not found: checkout_shards'),
	('XX000', 'public.shard_pay(1): [shop] REMOTE ERROR: PQconnectPoll: planted'),
	('42P01', 'public.shard_stock_state(1): [shop] REMOTE ERROR: relation "x" does not exist')
  ) AS e (st, msg);

-- A shard whose transfer ledger is gone (42P01 there): reading the shop's
-- stock, settling transfers and pulling stock fail with that error; none
-- of them leaves the shard out as if it were down
\c checkout_regress_shard1
ALTER TABLE checkout_shard.stock_transfers RENAME TO stock_transfers_planted;
\c contrib_regression
SET client_min_messages = warning;	-- PL/Proxy's notices of dropped connections
\set VERBOSITY terse
SELECT * FROM shop_product_stock();
\echo :LAST_ERROR_SQLSTATE
SELECT shard FROM unnest(checkout_read_stock(1));
\echo :LAST_ERROR_SQLSTATE
SELECT shop_settle_transfers();
\echo :LAST_ERROR_SQLSTATE
SELECT checkout_pull_stock(1, 0, 1, 1);
\echo :LAST_ERROR_SQLSTATE
\c checkout_regress_shard1
ALTER TABLE checkout_shard.stock_transfers_planted RENAME TO stock_transfers;
\c contrib_regression

-- A shard that cannot be reached: SH008 naming it for its customers; the
-- readings and settling go on without it
ALTER SERVER checkout_shards OPTIONS (SET p1 'host=/nonexistent port=1 dbname=none');
SET client_min_messages = warning;
\set SHOW_CONTEXT never
SELECT shop_set_cart_item(:c1, 1, 1);
\echo :LAST_ERROR_SQLSTATE
SELECT shard FROM unnest(checkout_read_stock(1));
SELECT shop_settle_transfers();
