/* checkout_proxy--1.1--1.2.sql: from 1.1 to 1.2 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION checkout_proxy UPDATE TO '1.2'" to load this file. \quit

/*
 * The proxy says what happened.  1.1 reported every error of PL/Proxy's own
 * (XX000: its internal errors as well as its connection failures) as SH008,
 * and its handlers for a shard that is down caught every error, so that a
 * bug or a broken shard looked like a shard that was down, or like nothing
 * (a stock reading left out, a transfer not settled).  From 1.2, SH008 and
 * those handlers mean exactly "the shard could not be reached"
 * (checkout_unreachable()); any other error surfaces as itself.
 */

/*
 * checkout_unreachable(sqlstate, message): whether an error caught from a
 * PL/Proxy call means the shard could not be reached: SQLSTATE class 08,
 * or PL/Proxy's XX000 for a failure of its libpq connection (its message
 * "PL/Proxy function f(n): [db] PQconnectPoll: ...", likewise for
 * PQconnectStart, PQconsumeInput, PQsendQueryParams, PQsendQuery and
 * PQflush) or for its connect timeout ("connect timeout to: ...").  A
 * shard's own error (PL/Proxy's "REMOTE ERROR") is never one.
 */
CREATE FUNCTION @extschema@.checkout_unreachable(sqlstate text, message text)
RETURNS boolean
LANGUAGE sql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
RETURN checkout_unreachable.sqlstate LIKE '08%'
	OR (checkout_unreachable.sqlstate = 'XX000'
		AND checkout_unreachable.message ~ ('^PL/Proxy function [^:]*: (\[[^]]*\] '
			'(PQconnectStart|PQconnectPoll|PQconsumeInput|PQsendQueryParams|PQsendQuery|PQflush): '
			'|connect timeout to: )'));

REVOKE ALL ON FUNCTION @extschema@.checkout_unreachable(text, text) FROM PUBLIC;

/*
 * Raise again, as the shard raised it, an error that PL/Proxy passed on
 * (SQLSTATE, message, detail, hint of the caught error).  A shard that
 * could not be reached (checkout_unreachable()) is SH008, naming the shard;
 * any other error of PL/Proxy's own is raised as it is.
 */
CREATE OR REPLACE FUNCTION @extschema@.checkout_reraise(sqlstate text, message text,
											 detail text, hint text, shard integer)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	prefix		constant text := '^[^(]+\(\d+\): \[[^]]*\] REMOTE [A-Z]+: ';
	code		text := checkout_reraise.sqlstate;
	msg			text := checkout_reraise.message;
	det			text := checkout_reraise.detail;
	hnt			text := checkout_reraise.hint;
BEGIN
	IF msg ~ prefix THEN
		msg := regexp_replace(msg, prefix, '');
		det := regexp_replace(det, '^Remote detail: ', '');
		hnt := regexp_replace(hnt, '^Remote hint: ', '');
	ELSIF @extschema@.checkout_unreachable(code, msg) THEN
		code := 'SH008';
		msg := format('shard %s is unavailable', coalesce(checkout_reraise.shard::text, '?'));
		det := regexp_replace(checkout_reraise.message, '^PL/Proxy function [^:]*: ', '');
		hnt := 'Nothing was done if the call could not reach the shard; a call cut off '
			   'mid-way may have been done: retry with the same idempotency key.  '
			   'Customers of the other shards are served.';
	END IF;
	-- RAISE takes no NULL option: an absent detail or hint stays absent
	IF nullif(det, '') IS NULL AND nullif(hnt, '') IS NULL THEN
		RAISE EXCEPTION USING ERRCODE = code, MESSAGE = msg;
	ELSIF nullif(hnt, '') IS NULL THEN
		RAISE EXCEPTION USING ERRCODE = code, MESSAGE = msg, DETAIL = det;
	ELSIF nullif(det, '') IS NULL THEN
		RAISE EXCEPTION USING ERRCODE = code, MESSAGE = msg, HINT = hnt;
	ELSE
		RAISE EXCEPTION USING ERRCODE = code, MESSAGE = msg, DETAIL = det, HINT = hnt;
	END IF;
END
$$;

/*
 * Every shard's reading of a product's stock, in shard order; a shard that
 * cannot be reached is left out (a pull or a rebalance goes on without it)
 */
CREATE OR REPLACE FUNCTION @extschema@.checkout_read_stock(product_id bigint)
RETURNS @extschema@.stock_reading[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	readings	@extschema@.stock_reading[] := '{}';
BEGIN
	FOR k IN 0 .. @extschema@.checkout_shard_count() - 1 LOOP
		BEGIN
			readings := readings || @extschema@.shard_stock_state(k, checkout_read_stock.product_id);
		EXCEPTION WHEN OTHERS THEN
			-- a shard down is left out; any other error surfaces
			IF NOT @extschema@.checkout_unreachable(SQLSTATE, SQLERRM) THEN
				RAISE;
			END IF;
		END;
	END LOOP;
	RETURN readings;
END
$$;

/*
 * shop_settle_transfers(product_id): finish the transfers in transit (of one
 * product, or of every product: NULL) that a mover left half done: deliver
 * each to its shard (at most once, whatever happened before) and mark it
 * delivered; returns how many were finished.  Shards that cannot be
 * reached are skipped (their transfers wait for the next run).
 */
CREATE OR REPLACE FUNCTION @extschema@.shop_settle_transfers(product_id bigint DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
AS $$
DECLARE
	n			integer := @extschema@.checkout_shard_count();
	pending		@extschema@.transfer[];
	t			@extschema@.transfer;
	settled		integer := 0;
BEGIN
	FOR k IN 0 .. n - 1 LOOP
		BEGIN
			-- read whole before calling other shards: PL/Proxy's cluster
			-- state is one per backend, no call may run inside another
			pending := ARRAY(SELECT x FROM @extschema@.shard_in_transit(k,
										shop_settle_transfers.product_id) AS x);
			FOREACH t IN ARRAY pending
			LOOP
				PERFORM @extschema@.shard_receive(t.to_shard, t.transfer_id, t.product_id,
												  t.quantity, t.from_shard);
				PERFORM @extschema@.shard_mark_delivered(t.from_shard, t.transfer_id);
				settled := settled + 1;
			END LOOP;
		EXCEPTION WHEN OTHERS THEN
			-- a shard down: its part waits for the next run; any other
			-- error surfaces
			IF NOT @extschema@.checkout_unreachable(SQLSTATE, SQLERRM) THEN
				RAISE;
			END IF;
		END;
	END LOOP;
	RETURN settled;
END
$$;

/*
 * Pull up to `wanted` units of a product into shard `target` from the other
 * shards, the fullest first, so that the target holds `enough`.  Returns:
 *   > 0  the units that reached the target, or 1 when the target holds
 *        `enough` already: check out again;
 *     0  proven that the shop has fewer than `enough` units of it: every
 *        shard that can be reached was read twice, the sum of the first
 *        readings (and nothing in transit) was below `enough`, and no
 *        transfer of the product happened anywhere in between.  A shard's
 *        stock only falls between transfers (no order is cancelled in a
 *        sale), so at an instant between the two readings the whole shop
 *        held fewer than `enough`;
 *    -1  nothing proven: other pulls kept moving it for five rounds, or a
 *        send failed (the caller tries again).
 * Pulling only when the shop shows `enough` keeps two buyers from passing
 * the last units back and forth, each short of its own quantity.
 */
CREATE OR REPLACE FUNCTION @extschema@.checkout_pull_stock(product_id bigint, target integer,
												wanted integer, enough integer)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	first		@extschema@.stock_reading[];
	second		@extschema@.stock_reading[];
	donor		record;
	transfer	uuid;
	got			integer;
	moved		integer := 0;
BEGIN
	FOR round IN 1 .. 5 LOOP
		first := @extschema@.checkout_read_stock(checkout_pull_stock.product_id);
		-- units in transit (a mover died): deliver them first, read again
		IF EXISTS (SELECT FROM unnest(first) AS f WHERE (f).in_transit > 0) THEN
			PERFORM @extschema@.shop_settle_transfers(checkout_pull_stock.product_id);
			CONTINUE;
		END IF;
		IF EXISTS (SELECT FROM unnest(first) AS f
					WHERE (f).shard = checkout_pull_stock.target
					  AND (f).stock >= checkout_pull_stock.enough) THEN
			RETURN 1;
		END IF;

		IF (SELECT coalesce(sum((f).stock), 0) FROM unnest(first) AS f)
		   < checkout_pull_stock.enough THEN
			-- not enough anywhere, if nothing moved meanwhile
			second := @extschema@.checkout_read_stock(checkout_pull_stock.product_id);
			IF (SELECT string_agg(format('%s:%s', (f).shard, (f).transfers), ',') FROM unnest(first) AS f)
			   IS NOT DISTINCT FROM
			   (SELECT string_agg(format('%s:%s', (x).shard, (x).transfers), ',') FROM unnest(second) AS x)
			   AND NOT EXISTS (SELECT FROM unnest(second) AS x WHERE (x).in_transit > 0) THEN
				-- gather what is left onto the target, so that its SH001
				-- names what the whole shop has
				FOR donor IN SELECT (d).* FROM unnest(second) AS d
							  WHERE (d).shard <> checkout_pull_stock.target AND (d).stock > 0
				LOOP
					BEGIN
						PERFORM @extschema@.shop_move_stock(checkout_pull_stock.product_id,
															donor.shard, checkout_pull_stock.target,
															donor.stock);
					EXCEPTION WHEN OTHERS THEN
						-- a shard down mid-move: in transit, settled later
						IF NOT @extschema@.checkout_unreachable(SQLSTATE, SQLERRM) THEN
							RAISE;
						END IF;
					END;
				END LOOP;
				RETURN 0;
			END IF;
			CONTINUE;
		END IF;

		FOR donor IN SELECT (d).* FROM unnest(first) AS d
					  WHERE (d).shard <> checkout_pull_stock.target AND (d).stock > 0
					  ORDER BY (d).stock DESC, (d).shard
		LOOP
			transfer := gen_random_uuid();
			BEGIN
				got := @extschema@.shard_send(donor.shard, transfer,
											  checkout_pull_stock.product_id,
											  checkout_pull_stock.wanted - moved,
											  checkout_pull_stock.target);
			EXCEPTION WHEN OTHERS THEN
				-- the donor went down, or its answer was lost: a transfer it
				-- made is settled later; any other error surfaces
				IF NOT @extschema@.checkout_unreachable(SQLSTATE, SQLERRM) THEN
					RAISE;
				END IF;
				got := 0;
			END;
			IF got > 0 THEN
				PERFORM @extschema@.shard_receive(checkout_pull_stock.target, transfer,
												  checkout_pull_stock.product_id, got,
												  donor.shard);
				BEGIN
					PERFORM @extschema@.shard_mark_delivered(donor.shard, transfer);
				EXCEPTION WHEN OTHERS THEN
					-- the donor down: the next settling marks it
					IF NOT @extschema@.checkout_unreachable(SQLSTATE, SQLERRM) THEN
						RAISE;
					END IF;
				END;
				moved := moved + got;
			END IF;
			EXIT WHEN moved >= checkout_pull_stock.wanted;
		END LOOP;
		IF moved > 0 THEN
			RETURN moved;
		END IF;
		-- the donors were bought empty meanwhile: read again
	END LOOP;
	RETURN -1;
END
$$;

/* ------------------------------------------------------------- vouchers */

/*
 * Vouchers on a sharded shop (checkout_shard 1.2 on every shard, after
 * checkout 1.2): the proxy creates each voucher on every shard with one id
 * of its own sequence, adds its codes on every shard, and checks out with
 * a code on the customer's shard.  A customer buys on one shard only, so a
 * limit per customer holds shop-wide; a usage limit over all customers, or
 * a single-use code, would need its uses counted across shards (moved
 * between them as stock is): refused at creation (0A000).
 */

-- Voucher ids, the same on every shard
CREATE SEQUENCE @extschema@.voucher_id_seq;
SELECT pg_catalog.pg_extension_config_dump('@extschema@.voucher_id_seq', '');

CREATE FUNCTION @extschema@.shard_checkout_voucher(route integer, customer_id bigint,
												   idempotency_key text, voucher_code text)
RETURNS @extschema@.checkout_result
LANGUAGE plproxy
AS $$
	CLUSTER 'checkout_shards';
	RUN ON route;
	SELECT * FROM checkout_shard.checkout(customer_id, idempotency_key, voucher_code);
$$;

CREATE FUNCTION @extschema@.shard_create_voucher(id bigint, name text, percent_off integer,
												 amount_off_cents bigint, per_customer_limit integer,
												 starts_at timestamptz, ends_at timestamptz,
												 min_total_cents bigint)
RETURNS SETOF bigint
LANGUAGE plproxy
AS $$
	CLUSTER 'checkout_shards';
	RUN ON ALL;
	SELECT checkout_shard.create_voucher(id, name, percent_off, amount_off_cents,
										 per_customer_limit, starts_at, ends_at,
										 min_total_cents) AS shard_create_voucher;
$$;

CREATE FUNCTION @extschema@.shard_add_voucher_code(voucher_id bigint, code text)
RETURNS SETOF text
LANGUAGE plproxy
AS $$
	CLUSTER 'checkout_shards';
	RUN ON ALL;
	SELECT checkout_shard.add_voucher_code(voucher_id, code) AS shard_add_voucher_code;
$$;

CREATE FUNCTION @extschema@.shard_end_voucher(voucher_id bigint)
RETURNS SETOF timestamptz
LANGUAGE plproxy
AS $$
	CLUSTER 'checkout_shards';
	RUN ON ALL;
	SELECT checkout_shard.end_voucher(voucher_id) AS shard_end_voucher;
$$;

/*
 * shop_create_voucher(...): the checkout extension's, on every shard, with
 * the same id; a usage limit is refused (0A000).  Returns the id.
 */
CREATE FUNCTION @extschema@.shop_create_voucher(name text,
												percent_off integer DEFAULT NULL,
												amount_off_cents bigint DEFAULT NULL,
												usage_limit integer DEFAULT NULL,
												per_customer_limit integer DEFAULT NULL,
												starts_at timestamptz DEFAULT NULL,
												ends_at timestamptz DEFAULT NULL,
												min_total_cents bigint DEFAULT 0)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
AS $$
DECLARE
	st			text; msg text; det text; hnt text;
	new_id		bigint;
BEGIN
	IF shop_create_voucher.usage_limit IS NOT NULL THEN
		RAISE EXCEPTION 'a voucher of a sharded shop cannot have a usage limit'
			USING ERRCODE = 'feature_not_supported',
				  DETAIL = 'Each shard counts the uses of its own customers; a limit over all of them would need uses moved between shards.',
				  HINT = 'Use per_customer_limit, which holds shop-wide, or check out on one unsharded shop.';
	END IF;
	new_id := nextval('@extschema@.voucher_id_seq');
	BEGIN
		PERFORM @extschema@.shard_create_voucher(new_id, shop_create_voucher.name,
			shop_create_voucher.percent_off, shop_create_voucher.amount_off_cents,
			shop_create_voucher.per_customer_limit, shop_create_voucher.starts_at,
			shop_create_voucher.ends_at, shop_create_voucher.min_total_cents);
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
								det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
		PERFORM @extschema@.checkout_reraise(st, msg, det, hnt, NULL);
	END;
	RETURN new_id;
END
$$;

/*
 * shop_add_voucher_code(voucher_id, code, single_use): the code on every
 * shard; a single-use code is refused (0A000).  Returns the code.
 */
CREATE FUNCTION @extschema@.shop_add_voucher_code(voucher_id bigint, code text,
												  single_use boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
AS $$
DECLARE
	st			text; msg text; det text; hnt text;
BEGIN
	IF shop_add_voucher_code.single_use THEN
		RAISE EXCEPTION 'a sharded shop cannot have single-use voucher codes'
			USING ERRCODE = 'feature_not_supported',
				  DETAIL = 'A code used on one shard is not seen as used on the others.',
				  HINT = 'Use a code with per_customer_limit.';
	END IF;
	PERFORM @extschema@.shard_add_voucher_code(shop_add_voucher_code.voucher_id,
											   shop_add_voucher_code.code);
	RETURN shop_add_voucher_code.code;
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
							det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
	PERFORM @extschema@.checkout_reraise(st, msg, det, hnt, NULL);
END
$$;

-- shop_end_voucher(voucher_id): ends it on every shard; returns when
CREATE FUNCTION @extschema@.shop_end_voucher(voucher_id bigint)
RETURNS timestamptz
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
AS $$
DECLARE
	st			text; msg text; det text; hnt text;
BEGIN
	RETURN (SELECT max(e) FROM @extschema@.shard_end_voucher(shop_end_voucher.voucher_id) AS e);
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
							det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
	PERFORM @extschema@.checkout_reraise(st, msg, det, hnt, NULL);
END
$$;

/*
 * The checkout's loop, 1.1's shop_checkout(customer_id, idempotency_key)
 * (its handler since 1.2 letting through what is no unreachable shard), now
 * with a code (NULL: none): the checkout extension's, on the customer's
 * shard; when that shard's quota is short, the missing units are pulled
 * from other shards and the checkout runs again
 */
CREATE FUNCTION @extschema@.checkout_run(customer_id bigint, idempotency_key text,
										  voucher_code text)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	st			text; msg text; det text; hnt text;
	result		@extschema@.checkout_result;
	short		@extschema@.short_line[];
	line		@extschema@.short_line;
	pulled		integer;
	proven		boolean := false;
	-- PL/Proxy's hash of the customer, computed here: RUN ON an argument
	-- spares PL/Proxy a query per call
	route		integer := @extschema@.checkout_customer_hash(checkout_run.customer_id);
BEGIN
	FOR attempt IN 1 .. 50 LOOP
		BEGIN
			IF checkout_run.voucher_code IS NULL THEN
				result := @extschema@.shard_checkout(route, checkout_run.customer_id,
													 checkout_run.idempotency_key);
			ELSE
				result := @extschema@.shard_checkout_voucher(route, checkout_run.customer_id,
															 checkout_run.idempotency_key,
															 checkout_run.voucher_code);
			END IF;
		EXCEPTION WHEN OTHERS THEN
			-- the shard could not be reached, or its answer was lost
			GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
									det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
			PERFORM @extschema@.checkout_reraise(st, msg, det, hnt,
				@extschema@.shop_shard_of(checkout_run.customer_id));
		END;
		IF result.sqlstate IS NULL THEN
			RETURN result.order_id;
		ELSIF result.sqlstate <> 'SH001' OR proven THEN
			PERFORM @extschema@.checkout_reraise(result.sqlstate, result.message,
												 result.detail, result.hint, NULL);
		END IF;
		-- short on this shard: pull every short line's missing units; the
		-- shard's SH001 stands when a line is proven short everywhere
		BEGIN
			short := ARRAY(SELECT x FROM @extschema@.shard_short_lines(route, checkout_run.customer_id) AS x);
			pulled := 1;	-- no line short any more: check out again
			FOREACH line IN ARRAY short
			LOOP
				pulled := @extschema@.checkout_pull_stock(line.product_id, line.shard,
														  line.requested - line.available,
														  line.requested);
				EXIT WHEN pulled = 0;
			END LOOP;
		EXCEPTION WHEN OTHERS THEN
			-- a shard went down: the SH001 stands; any other error surfaces
			IF NOT @extschema@.checkout_unreachable(SQLSTATE, SQLERRM) THEN
				RAISE;
			END IF;
			pulled := 0;
		END;
		-- a line short over the whole shop: what was left of it was gathered
		-- here; one more checkout gives the SH001 that says so
		proven := pulled = 0;
	END LOOP;
	-- other buyers took the units pulled for this one, 50 times over
	RAISE EXCEPTION 'could not get the stock for the checkout of customer %: other checkouts took it first',
		checkout_run.customer_id
		USING ERRCODE = 'serialization_failure',
			  DETAIL = 'Units were pulled from other shards 50 times and bought by other customers of its shard each time.',
			  HINT = 'Retry with the same idempotency key.';
END
$$;


-- The two forms of 1.1, and the form with a code
CREATE OR REPLACE FUNCTION @extschema@.shop_checkout(customer_id bigint, idempotency_key text)
RETURNS bigint
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
RETURN @extschema@.checkout_run(customer_id, idempotency_key, NULL::text);

CREATE FUNCTION @extschema@.shop_checkout(customer_id bigint, idempotency_key text,
										  voucher_code text)
RETURNS bigint
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
RETURN @extschema@.checkout_run(customer_id, idempotency_key, voucher_code);

-- The roles: the checkout with a code for the storefront, the vouchers for the office
CREATE OR REPLACE FUNCTION @extschema@.shop_grant_app(role regrole)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF shop_grant_app.role IS NULL THEN
		RAISE EXCEPTION 'role must not be NULL'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	EXECUTE format('GRANT USAGE ON SCHEMA @extschema@ TO %s', shop_grant_app.role);
	EXECUTE format('GRANT EXECUTE ON FUNCTION @extschema@.shop_checkout(bigint),'
				   ' @extschema@.shop_checkout(bigint, text),'
				   ' @extschema@.shop_checkout(bigint, text, text), @extschema@.shop_pay(bigint, text),'
				   ' @extschema@.shop_cart_status(bigint), @extschema@.shop_create_customer(bigint, text),'
				   ' @extschema@.shop_set_cart_item(bigint, bigint, integer),'
				   ' @extschema@.shop_shard_of(bigint) TO %s', shop_grant_app.role);
END
$$;

CREATE OR REPLACE FUNCTION @extschema@.shop_grant_admin(role regrole)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF shop_grant_admin.role IS NULL THEN
		RAISE EXCEPTION 'role must not be NULL'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	EXECUTE format('GRANT USAGE ON SCHEMA @extschema@ TO %s', shop_grant_admin.role);
	EXECUTE format('GRANT EXECUTE ON FUNCTION @extschema@.shop_create_product(text, bigint, integer),'
				   ' @extschema@.shop_update_product(bigint, text, bigint),'
				   ' @extschema@.shop_cancel_order(bigint, text), @extschema@.shop_cart_status(bigint),'
				   ' @extschema@.shop_move_stock(bigint, integer, integer, integer),'
				   ' @extschema@.shop_rebalance(bigint), @extschema@.shop_settle_transfers(bigint),'
				   ' @extschema@.shop_set_purchase_limit(bigint, integer),'
				   ' @extschema@.shop_product_stock(), @extschema@.shop_check_integrity(),'
				   ' @extschema@.shop_shard_of(bigint),'
				   ' @extschema@.shop_create_voucher(text, integer, bigint, integer, integer,'
				   '                                 timestamptz, timestamptz, bigint),'
				   ' @extschema@.shop_add_voucher_code(bigint, text, boolean),'
				   ' @extschema@.shop_end_voucher(bigint),'
				   ' @extschema@.shop_create_location(text, integer) TO %s', shop_grant_admin.role);
END
$$;

/* ------------------------------------------------------------ locations */

-- The ids of the shop's locations (2 on: 1 is every shard's default)
CREATE SEQUENCE @extschema@.location_id_seq START WITH 2;
SELECT pg_catalog.pg_extension_config_dump('@extschema@.location_id_seq', '');

CREATE FUNCTION @extschema@.shard_create_location(id bigint, name text, priority integer)
RETURNS SETOF bigint
LANGUAGE plproxy
AS $$
	CLUSTER 'checkout_shards';
	RUN ON ALL;
	SELECT checkout_shard.create_location(id, name, priority) AS shard_create_location;
$$;

/*
 * shop_create_location(name, priority): the checkout extension's, on every
 * shard, with the same id; every shard must be up.  Returns the id.  Each
 * shard allocates its customers' checkouts over its own stock in its
 * locations; a shard's quota is per product (transfers and pulls take from
 * and give to its default location).
 */
CREATE FUNCTION @extschema@.shop_create_location(name text, priority integer DEFAULT 0)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
AS $$
DECLARE
	st			text; msg text; det text; hnt text;
	new_id		bigint := nextval('@extschema@.location_id_seq');
BEGIN
	BEGIN
		PERFORM @extschema@.shard_create_location(new_id, shop_create_location.name,
												  shop_create_location.priority);
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
								det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
		PERFORM @extschema@.checkout_reraise(st, msg, det, hnt, NULL);
	END;
	RETURN new_id;
END
$$;

REVOKE ALL ON FUNCTION @extschema@.shard_create_location(bigint, text, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.shop_create_location(text, integer) FROM PUBLIC;

REVOKE ALL ON FUNCTION @extschema@.shard_checkout_voucher(integer, bigint, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.shard_create_voucher(bigint, text, integer, bigint, integer,
														timestamptz, timestamptz, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.shard_add_voucher_code(bigint, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.shard_end_voucher(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.checkout_run(bigint, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.shop_checkout(bigint, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.shop_create_voucher(text, integer, bigint, integer, integer,
														timestamptz, timestamptz, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.shop_add_voucher_code(bigint, text, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.shop_end_voucher(bigint) FROM PUBLIC;
