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

/*
 * shop_checkout(customer_id, idempotency_key): the checkout extension's,
 * on the customer's shard; when that shard's quota is short, the missing
 * units are pulled from other shards and the checkout runs again.
 */
CREATE OR REPLACE FUNCTION @extschema@.shop_checkout(customer_id bigint, idempotency_key text)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
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
	route		integer := @extschema@.checkout_customer_hash(shop_checkout.customer_id);
BEGIN
	FOR attempt IN 1 .. 50 LOOP
		BEGIN
			result := @extschema@.shard_checkout(route, shop_checkout.customer_id,
												 shop_checkout.idempotency_key);
		EXCEPTION WHEN OTHERS THEN
			-- the shard could not be reached, or its answer was lost
			GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
									det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
			PERFORM @extschema@.checkout_reraise(st, msg, det, hnt,
				@extschema@.shop_shard_of(shop_checkout.customer_id));
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
			short := ARRAY(SELECT x FROM @extschema@.shard_short_lines(route, shop_checkout.customer_id) AS x);
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
		shop_checkout.customer_id
		USING ERRCODE = 'serialization_failure',
			  DETAIL = 'Units were pulled from other shards 50 times and bought by other customers of its shard each time.',
			  HINT = 'Retry with the same idempotency key.';
END
$$;
