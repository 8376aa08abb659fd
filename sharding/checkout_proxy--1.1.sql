/* checkout_proxy--1.1.sql: the proxy of a shop sharded by customer */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION checkout_proxy" to load this file. \quit

/*
 * The proxy database of a sharded shop (docs/scale-out.md).  It holds no
 * shop data: it offers the checkout extension's functions under their own
 * names and routes each call, through PL/Proxy, to the shard that holds
 * the customer's cart and orders (hashint8(customer_id) modulo the number
 * of shards) or the order (its id modulo 1024 is its shard's number, see
 * checkout_shard.shop_shard_init()).  The shards are the partitions of the
 * PL/Proxy cluster 'checkout_shards', a SQL/MED server made by the shop:
 *
 *   CREATE SERVER checkout_shards FOREIGN DATA WRAPPER plproxy
 *     OPTIONS (modular_mapping '1', p0 'host=... dbname=shop', p1 '...');
 *   CREATE USER MAPPING FOR PUBLIC SERVER checkout_shards;
 *
 * Partition k must be the database made shard k (shop_shard_init(k)).
 *
 * Stock.  Each shard sells from its own quota of a product's stock.  When
 * a checkout is short of stock on its shard, shop_checkout() here pulls the
 * missing units from other shards (checkout_pull_stock()) and checks out
 * again; it raises the shard's SH001 only when the shop is proven short:
 * every shard read twice with no transfer in between, the first readings
 * adding up to less than the line needs, which makes them one instant's
 * truth.
 *
 * Errors.  PL/Proxy raises a shard's error with the shard's SQLSTATE, its
 * message prefixed with "public.shard_pay(3): [shop] REMOTE ERROR: ", and its
 * DETAIL and HINT prefixed with "Remote detail: " and "Remote hint: ".  The
 * functions here raise it again as the shard raised it (checkout_reraise());
 * a shard that cannot be reached is SH008.
 *
 * Every function names this extension's objects through @extschema@ and
 * is not executable by PUBLIC.  The storefront's and the back office's
 * (shop_*) are SECURITY DEFINER with search_path pinned to pg_catalog and
 * pg_temp (but shop_checkout(customer_id), a one-line SQL function left
 * inlinable), and shop_grant_app() and shop_grant_admin() grant them; the
 * others (shard_*: PL/Proxy's calls, checkout_*: helpers) serve them.  PL/Proxy connects to the shards as the functions' owner (the user
 * mapping for it); the shards grant that role checkout_shard's functions
 * (checkout_shard.shop_shard_grant_proxy()).  Nothing here writes locally
 * but the product id sequence; every call to a shard commits there on its
 * own (there are no cross-shard transactions): call these functions in
 * autocommit mode.
 */

-- Product ids, the same on every shard
CREATE SEQUENCE @extschema@.product_id_seq;

-- A transfer in transit (checkout_shard.in_transit())
CREATE TYPE @extschema@.transfer AS (
	transfer_id uuid,
	product_id	bigint,
	quantity	integer,
	from_shard	integer,
	to_shard	integer
);

-- A cart line its shard cannot serve (checkout_shard.short_lines())
CREATE TYPE @extschema@.short_line AS (
	shard		integer,
	product_id	bigint,
	available	integer,
	requested	integer
);

-- A line of shop_cart_status()
CREATE TYPE @extschema@.cart_line AS (
	product_id	bigint,
	name		text,
	requested	integer,
	available	integer,
	can_fulfil	boolean,
	checkout_would_succeed boolean,
	purchase_limit integer,
	already_bought bigint
);

-- One shard's reading of a product's stock (checkout_shard.stock_state())
CREATE TYPE @extschema@.stock_reading AS (
	shard		integer,		-- the shard's number
	stock		integer,		-- its quota on sale; NULL: no such product
	transfers	bigint,			-- transfers of it recorded there, in and out
	in_transit	bigint			-- units of it sent from there not yet delivered
);

/* ------------------------------------------------------ routing (PL/Proxy) */

/*
 * The hash that routes a customer: hashint8(customer_id), and 0 for a NULL
 * id, whose shard then raises the checkout's own error for it
 */
CREATE FUNCTION @extschema@.checkout_customer_hash(customer_id bigint)
RETURNS integer
LANGUAGE sql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
RETURN coalesce(hashint8(customer_id), 0);

-- The shard of an order: its id modulo 1024 (checkout_shard.shop_shard_init)
CREATE FUNCTION @extschema@.checkout_order_shard(order_id bigint)
RETURNS integer
LANGUAGE sql
IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
RETURN (order_id % 1024)::integer;

-- What checkout_shard.checkout() returns: the order, or the error
CREATE TYPE @extschema@.checkout_result AS (
	order_id	bigint,
	sqlstate	text,
	message		text,
	detail		text,
	hint		text
);

CREATE FUNCTION @extschema@.shard_checkout(route integer, customer_id bigint, idempotency_key text)
RETURNS @extschema@.checkout_result
LANGUAGE plproxy
AS $$
	CLUSTER 'checkout_shards';
	RUN ON route;
	SELECT * FROM checkout_shard.checkout(customer_id, idempotency_key);
$$;

CREATE FUNCTION @extschema@.shard_short_lines(route integer, customer_id bigint)
RETURNS SETOF @extschema@.short_line
LANGUAGE plproxy
AS $$
	CLUSTER 'checkout_shards';
	RUN ON route;
	SELECT * FROM checkout_shard.short_lines(customer_id);
$$;

CREATE FUNCTION @extschema@.shard_cart_status(route integer, customer_id bigint)
RETURNS SETOF @extschema@.cart_line
LANGUAGE plproxy
AS $$
	CLUSTER 'checkout_shards';
	RUN ON route;
	SELECT * FROM checkout_shard.cart_status(customer_id);
$$;

CREATE FUNCTION @extschema@.shard_create_customer(route integer, customer_id bigint, name text)
RETURNS boolean
LANGUAGE plproxy
AS $$
	CLUSTER 'checkout_shards';
	RUN ON route;
	SELECT checkout_shard.create_customer(customer_id, name) AS shard_create_customer;
$$;

CREATE FUNCTION @extschema@.shard_set_cart_item(route integer, customer_id bigint, product_id bigint,
												quantity integer)
RETURNS integer
LANGUAGE plproxy
AS $$
	CLUSTER 'checkout_shards';
	RUN ON route;
	SELECT checkout_shard.set_cart_item(customer_id, product_id, quantity)
		AS shard_set_cart_item;
$$;

CREATE FUNCTION @extschema@.shard_pay(route integer, order_id bigint, payment_ref text)
RETURNS text
LANGUAGE plproxy
AS $$
	CLUSTER 'checkout_shards';
	RUN ON route;
	SELECT checkout_shard.pay(order_id, payment_ref) AS shard_pay;
$$;

CREATE FUNCTION @extschema@.shard_cancel_order(route integer, order_id bigint, reason text)
RETURNS text
LANGUAGE plproxy
AS $$
	CLUSTER 'checkout_shards';
	RUN ON route;
	SELECT checkout_shard.cancel_order(order_id, reason) AS shard_cancel_order;
$$;

-- The next ones run on one shard by its number, or on every shard

CREATE FUNCTION @extschema@.shard_create_product(shard integer, id bigint, name text,
												 price_cents bigint, quota integer)
RETURNS boolean
LANGUAGE plproxy
AS $$
	CLUSTER 'checkout_shards';
	RUN ON shard;
	SELECT checkout_shard.create_product(id, name, price_cents, quota)
		AS shard_create_product;
$$;

CREATE FUNCTION @extschema@.shard_update_product(id bigint, name text, price_cents bigint)
RETURNS SETOF boolean
LANGUAGE plproxy
AS $$
	CLUSTER 'checkout_shards';
	RUN ON ALL;
	SELECT checkout_shard.update_product(id, name, price_cents) AS shard_update_product;
$$;

CREATE FUNCTION @extschema@.shard_set_purchase_limit(product_id bigint,
													 max_per_customer integer)
RETURNS SETOF integer
LANGUAGE plproxy
AS $$
	CLUSTER 'checkout_shards';
	RUN ON ALL;
	SELECT checkout_shard.set_purchase_limit(product_id, max_per_customer)
		AS shard_set_purchase_limit;
$$;

CREATE FUNCTION @extschema@.shard_number(shard integer)
RETURNS integer
LANGUAGE plproxy
AS $$
	CLUSTER 'checkout_shards';
	RUN ON shard;
	SELECT checkout_shard.shop_shard_number() AS shard_number;
$$;

CREATE FUNCTION @extschema@.shard_stock_state(on_shard integer, product_id bigint)
RETURNS @extschema@.stock_reading
LANGUAGE plproxy
AS $$
	CLUSTER 'checkout_shards';
	RUN ON on_shard;
	SELECT * FROM checkout_shard.stock_state(product_id);
$$;

CREATE FUNCTION @extschema@.shard_send(shard integer, transfer_id uuid, product_id bigint,
									   quantity integer, to_shard integer)
RETURNS integer
LANGUAGE plproxy
AS $$
	CLUSTER 'checkout_shards';
	RUN ON shard;
	SELECT checkout_shard.send(transfer_id, product_id, quantity, to_shard) AS shard_send;
$$;

CREATE FUNCTION @extschema@.shard_receive(shard integer, transfer_id uuid,
										  product_id bigint, quantity integer,
										  from_shard integer)
RETURNS boolean
LANGUAGE plproxy
AS $$
	CLUSTER 'checkout_shards';
	RUN ON shard;
	SELECT checkout_shard.receive(transfer_id, product_id, quantity, from_shard)
		AS shard_receive;
$$;

CREATE FUNCTION @extschema@.shard_mark_delivered(shard integer, transfer_id uuid)
RETURNS boolean
LANGUAGE plproxy
AS $$
	CLUSTER 'checkout_shards';
	RUN ON shard;
	SELECT checkout_shard.mark_delivered(transfer_id) AS shard_mark_delivered;
$$;

CREATE FUNCTION @extschema@.shard_in_transit(shard integer, product_id bigint)
RETURNS SETOF @extschema@.transfer
LANGUAGE plproxy
AS $$
	CLUSTER 'checkout_shards';
	RUN ON shard;
	SELECT * FROM checkout_shard.in_transit(product_id);
$$;

CREATE FUNCTION @extschema@.shard_check_integrity()
RETURNS TABLE (problem text, product_id bigint, order_id bigint, detail text,
			   shard integer)
LANGUAGE plproxy
AS $$
	CLUSTER 'checkout_shards';
	RUN ON ALL;
	SELECT * FROM checkout_shard.check_integrity();
$$;

CREATE FUNCTION @extschema@.shard_transfers()
RETURNS TABLE (shard integer, transfer_id uuid, direction text, product_id bigint,
			   quantity integer, from_shard integer, to_shard integer,
			   delivered boolean)
LANGUAGE plproxy
AS $$
	CLUSTER 'checkout_shards';
	RUN ON ALL;
	SELECT * FROM checkout_shard.transfers();
$$;

-- Every shard's stock of the products listed (NULL: of all)
CREATE FUNCTION @extschema@.shard_stock(product_ids bigint[] DEFAULT NULL)
RETURNS TABLE (shard integer, product_id bigint, stock integer)
LANGUAGE plproxy
AS $$
	CLUSTER 'checkout_shards';
	RUN ON ALL;
	SELECT * FROM checkout_shard.stock(product_ids);
$$;

/* ---------------------------------------------------------------- errors */

/*
 * Raise again, as the shard raised it, an error that PL/Proxy passed on
 * (SQLSTATE, message, detail, hint of the caught error).  An error of
 * PL/Proxy's own connection to the shard (class 08, or no SQLSTATE from the
 * server: XX000 with libpq's text) is SH008, naming the shard.
 */
CREATE FUNCTION @extschema@.checkout_reraise(sqlstate text, message text,
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
	ELSIF msg ~ '^PL/Proxy function ' AND (code LIKE '08%' OR code = 'XX000') THEN
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
 * The number of shards: the partitions of the cluster 'checkout_shards';
 * raises when there is no such cluster
 */
CREATE FUNCTION @extschema@.checkout_shard_count()
RETURNS integer
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n			integer;
BEGIN
	SELECT count(*) INTO n
	  FROM pg_catalog.pg_foreign_server AS s,
		   pg_catalog.pg_options_to_table(s.srvoptions) AS o
	 WHERE s.srvname = 'checkout_shards' AND o.option_name ~ '^p[0-9]+$';
	IF n = 0 THEN
		RAISE EXCEPTION 'the shop has no shards'
			USING ERRCODE = 'undefined_object',
				  DETAIL = 'There is no PL/Proxy cluster ''checkout_shards'' with partitions.',
				  HINT = 'CREATE SERVER checkout_shards FOREIGN DATA WRAPPER plproxy '
						 'OPTIONS (modular_mapping ''1'', p0 ''...'', ...); see docs/scale-out.md.';
	END IF;
	RETURN n;
END
$$;

/*
 * shop_shard_of(customer_id): the number of the shard holding a customer,
 * as PL/Proxy's modular mapping computes it
 */
CREATE FUNCTION @extschema@.shop_shard_of(customer_id bigint)
RETURNS integer
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
RETURN abs(@extschema@.checkout_customer_hash(customer_id) % @extschema@.checkout_shard_count());

/* ------------------------------------------------------ stock transfers */

/*
 * Every shard's reading of a product's stock, in shard order; a shard that
 * cannot be reached is left out (a pull or a rebalance goes on without it)
 */
CREATE FUNCTION @extschema@.checkout_read_stock(product_id bigint)
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
			NULL;
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
CREATE FUNCTION @extschema@.shop_settle_transfers(product_id bigint DEFAULT NULL)
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
			NULL;		-- a shard down: its part waits for the next run
		END;
	END LOOP;
	RETURN settled;
END
$$;

/*
 * shop_move_stock(product_id, from_shard, to_shard, quantity): move up to
 * `quantity` units of a product's stock from one shard's quota to
 * another's; returns how many moved (no more than the first shard had).
 * Exactly once: see checkout_shard--1.1.sql.
 */
CREATE FUNCTION @extschema@.shop_move_stock(product_id bigint, from_shard integer,
											to_shard integer, quantity integer)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
AS $$
DECLARE
	transfer	uuid := gen_random_uuid();
	moved		integer;
BEGIN
	IF shop_move_stock.product_id IS NULL OR shop_move_stock.from_shard IS NULL
	   OR shop_move_stock.to_shard IS NULL OR shop_move_stock.quantity IS NULL THEN
		RAISE EXCEPTION 'product id, shards and quantity must not be NULL'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF shop_move_stock.from_shard = shop_move_stock.to_shard
	   OR shop_move_stock.from_shard NOT BETWEEN 0 AND @extschema@.checkout_shard_count() - 1
	   OR shop_move_stock.to_shard NOT BETWEEN 0 AND @extschema@.checkout_shard_count() - 1 THEN
		RAISE EXCEPTION 'stock moves between two different shards'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('Got shard %s to shard %s; the shards are 0 to %s.',
								  shop_move_stock.from_shard, shop_move_stock.to_shard,
								  @extschema@.checkout_shard_count() - 1);
	END IF;
	moved := @extschema@.shard_send(shop_move_stock.from_shard, transfer,
									shop_move_stock.product_id, shop_move_stock.quantity,
									shop_move_stock.to_shard);
	IF moved > 0 THEN
		PERFORM @extschema@.shard_receive(shop_move_stock.to_shard, transfer,
										  shop_move_stock.product_id, moved,
										  shop_move_stock.from_shard);
		PERFORM @extschema@.shard_mark_delivered(shop_move_stock.from_shard, transfer);
	END IF;
	RETURN moved;
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
CREATE FUNCTION @extschema@.checkout_pull_stock(product_id bigint, target integer,
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
						NULL;	-- in transit: settled later
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
				got := 0;	-- the donor went down, or its answer was lost: a
							-- transfer it made is settled later
			END;
			IF got > 0 THEN
				PERFORM @extschema@.shard_receive(checkout_pull_stock.target, transfer,
												  checkout_pull_stock.product_id, got,
												  donor.shard);
				BEGIN
					PERFORM @extschema@.shard_mark_delivered(donor.shard, transfer);
				EXCEPTION WHEN OTHERS THEN
					NULL;	-- the next settling marks it
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
 * shop_rebalance(product_id): spread a product's stock evenly over the
 * shards that can be reached, ahead of a sale; returns the units moved
 */
CREATE FUNCTION @extschema@.shop_rebalance(product_id bigint)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
AS $$
DECLARE
	shards		integer[];
	surplus		integer[];		-- stock above its goal (negative: below)
	total		bigint;
	live		integer;
	step		integer;
	moved		integer := 0;
BEGIN
	PERFORM @extschema@.shop_settle_transfers(shop_rebalance.product_id);
	SELECT array_agg(s.shard ORDER BY s.shard), array_agg(s.stock ORDER BY s.shard),
		   sum(s.stock), count(*)
	  INTO shards, surplus, total, live
	  FROM unnest(@extschema@.checkout_read_stock(shop_rebalance.product_id)) AS s
	 WHERE s.stock IS NOT NULL;
	IF coalesce(live, 0) < 2 THEN
		RETURN 0;
	END IF;
	-- each shard's goal: total / live, the first (total % live) one more
	FOR i IN 1 .. live LOOP
		surplus[i] := surplus[i] - (total / live)::integer
					  - CASE WHEN i <= total % live THEN 1 ELSE 0 END;
	END LOOP;
	FOR poor IN 1 .. live LOOP
		FOR rich IN 1 .. live LOOP
			EXIT WHEN surplus[poor] >= 0;
			CONTINUE WHEN surplus[rich] <= 0;
			step := @extschema@.shop_move_stock(shop_rebalance.product_id, shards[rich],
												shards[poor], least(surplus[rich], -surplus[poor]));
			surplus[rich] := surplus[rich] - step;
			surplus[poor] := surplus[poor] + step;
			moved := moved + step;
		END LOOP;
	END LOOP;
	RETURN moved;
END
$$;

/* ---------------------------------------------------------- the storefront */

/*
 * shop_create_product(name, price_cents, stock): a product on every shard,
 * under one id, its stock split evenly into the shards' quotas (the first
 * shards one more unit when it does not divide); returns its id.  Every
 * shard must be up.
 */
CREATE FUNCTION @extschema@.shop_create_product(name text, price_cents bigint,
												stock integer)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
AS $$
DECLARE
	n			integer := @extschema@.checkout_shard_count();
	id			bigint := nextval('@extschema@.product_id_seq');
	st			text; msg text; det text; hnt text;
BEGIN
	IF shop_create_product.stock IS NULL OR shop_create_product.stock < 0 THEN
		RAISE EXCEPTION 'stock must be 0 or more'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('Got %s.', shop_create_product.stock);
	END IF;
	FOR k IN 0 .. n - 1 LOOP
		BEGIN
			PERFORM @extschema@.shard_create_product(k, id, shop_create_product.name,
				shop_create_product.price_cents,
				shop_create_product.stock / n + CASE WHEN k < shop_create_product.stock % n
													 THEN 1 ELSE 0 END);
		EXCEPTION WHEN OTHERS THEN
			GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
									det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
			PERFORM @extschema@.checkout_reraise(st, msg, det, hnt, k);
		END;
	END LOOP;
	RETURN id;
END
$$;

/*
 * shop_update_product(product_id, name, price_cents): change a product's
 * name and price (NULL: unchanged) on every shard, one after the other;
 * returns the shards that have it.
 */
CREATE FUNCTION @extschema@.shop_update_product(product_id bigint, name text,
												price_cents bigint)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
AS $$
DECLARE
	st			text; msg text; det text; hnt text;
BEGIN
	RETURN (SELECT count(*) FILTER (WHERE u)
			  FROM @extschema@.shard_update_product(shop_update_product.product_id,
													shop_update_product.name,
													shop_update_product.price_cents) AS u);
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
							det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
	PERFORM @extschema@.checkout_reraise(st, msg, det, hnt, NULL);
END
$$;

/*
 * shop_set_purchase_limit(product_id, max_per_customer): the checkout
 * extension's, on every shard (a customer buys on one shard only, so the
 * limit holds shop-wide); returns the limit
 */
CREATE FUNCTION @extschema@.shop_set_purchase_limit(product_id bigint,
													max_per_customer integer)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
AS $$
DECLARE
	st			text; msg text; det text; hnt text;
BEGIN
	PERFORM @extschema@.shard_set_purchase_limit(shop_set_purchase_limit.product_id,
												 shop_set_purchase_limit.max_per_customer);
	RETURN shop_set_purchase_limit.max_per_customer;
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
							det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
	PERFORM @extschema@.checkout_reraise(st, msg, det, hnt, NULL);
END
$$;

-- shop_create_customer(customer_id, name): a customer on its shard
CREATE FUNCTION @extschema@.shop_create_customer(customer_id bigint, name text)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
AS $$
DECLARE
	st			text; msg text; det text; hnt text;
BEGIN
	RETURN @extschema@.shard_create_customer(
		@extschema@.checkout_customer_hash(shop_create_customer.customer_id),
		shop_create_customer.customer_id,
											 shop_create_customer.name);
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
							det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
	PERFORM @extschema@.checkout_reraise(st, msg, det, hnt,
										 @extschema@.shop_shard_of(shop_create_customer.customer_id));
END
$$;

/*
 * shop_set_cart_item(customer_id, product_id, quantity): set a cart line
 * on the customer's shard (0: remove it); returns the quantity
 */
CREATE FUNCTION @extschema@.shop_set_cart_item(customer_id bigint, product_id bigint,
											   quantity integer)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
AS $$
DECLARE
	st			text; msg text; det text; hnt text;
BEGIN
	RETURN @extschema@.shard_set_cart_item(
		@extschema@.checkout_customer_hash(shop_set_cart_item.customer_id),
		shop_set_cart_item.customer_id,
										   shop_set_cart_item.product_id,
										   shop_set_cart_item.quantity);
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
							det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
	PERFORM @extschema@.checkout_reraise(st, msg, det, hnt,
										 @extschema@.shop_shard_of(shop_set_cart_item.customer_id));
END
$$;

/*
 * shop_checkout(customer_id, idempotency_key): the checkout extension's,
 * on the customer's shard; when that shard's quota is short, the missing
 * units are pulled from other shards and the checkout runs again.
 */
CREATE FUNCTION @extschema@.shop_checkout(customer_id bigint, idempotency_key text)
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
			pulled := 0;	-- a shard went down: the SH001 stands
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

CREATE FUNCTION @extschema@.shop_checkout(customer_id bigint)
RETURNS bigint
LANGUAGE sql
RETURN @extschema@.shop_checkout(customer_id, NULL::text);

/*
 * shop_cart_status(customer_id): the checkout extension's, from the
 * customer's shard; where its quota cannot serve a line, `available` is the
 * whole shop's stock on sale (what a checkout would pull), and can_fulfil
 * and checkout_would_succeed follow.  A shard down meanwhile: the shard's
 * own view.
 */
CREATE FUNCTION @extschema@.shop_cart_status(customer_id bigint)
RETURNS TABLE (product_id bigint, name text, requested integer,
			   available integer, can_fulfil boolean,
			   checkout_would_succeed boolean, purchase_limit integer,
			   already_bought bigint)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
AS $$
DECLARE
	st			text; msg text; det text; hnt text;
	lines		@extschema@.cart_line[];
	shop_stock	jsonb;
BEGIN
	BEGIN
		lines := ARRAY(SELECT x FROM @extschema@.shard_cart_status(
							@extschema@.checkout_customer_hash(shop_cart_status.customer_id),
							shop_cart_status.customer_id) AS x);
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
								det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
		PERFORM @extschema@.checkout_reraise(st, msg, det, hnt,
											 @extschema@.shop_shard_of(shop_cart_status.customer_id));
	END;
	IF EXISTS (SELECT FROM unnest(lines) AS l WHERE (l).available < (l).requested) THEN
		BEGIN
			SELECT jsonb_object_agg(s.product_id, s.stock) INTO shop_stock
			  FROM (SELECT x.product_id, sum(x.stock) AS stock
					  FROM @extschema@.shard_stock(ARRAY(SELECT (l).product_id
														   FROM unnest(lines) AS l)) AS x
					 GROUP BY x.product_id) AS s;
		EXCEPTION WHEN OTHERS THEN
			shop_stock := NULL;
		END;
	END IF;
	RETURN QUERY
	SELECT a.product_id, a.name, a.requested, a.available, a.fulfils,
		   bool_and(a.fulfils) OVER (), a.purchase_limit, a.already_bought
	  FROM (SELECT v.*, v.available >= v.requested
						AND (v.purchase_limit IS NULL
							 OR v.already_bought + v.requested <= v.purchase_limit) AS fulfils
			  FROM (SELECT (l).product_id, (l).name, (l).requested, (l).purchase_limit,
						   (l).already_bought,
						   CASE WHEN (l).available < (l).requested
								THEN coalesce((shop_stock ->> (l).product_id::text)::integer,
											  (l).available)
								ELSE (l).available END AS available
					  FROM unnest(lines) AS l) AS v) AS a
	 ORDER BY a.product_id;
END
$$;

CREATE FUNCTION @extschema@.shop_pay(order_id bigint, payment_ref text)
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
AS $$
DECLARE
	st			text; msg text; det text; hnt text;
BEGIN
	RETURN @extschema@.shard_pay(@extschema@.checkout_order_shard(shop_pay.order_id),
								 shop_pay.order_id, shop_pay.payment_ref);
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
							det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
	PERFORM @extschema@.checkout_reraise(st, msg, det, hnt,
										 @extschema@.checkout_order_shard(shop_pay.order_id));
END
$$;

CREATE FUNCTION @extschema@.shop_cancel_order(order_id bigint, reason text)
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
AS $$
DECLARE
	st			text; msg text; det text; hnt text;
BEGIN
	RETURN @extschema@.shard_cancel_order(@extschema@.checkout_order_shard(shop_cancel_order.order_id),
										  shop_cancel_order.order_id,
										  shop_cancel_order.reason);
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
							det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
	PERFORM @extschema@.checkout_reraise(st, msg, det, hnt,
										 @extschema@.checkout_order_shard(shop_cancel_order.order_id));
END
$$;

/*
 * shop_product_stock(): each product's stock on sale over the whole shop:
 * the sum of the shards' quotas and the units in transit
 */
CREATE FUNCTION @extschema@.shop_product_stock()
RETURNS TABLE (product_id bigint, stock bigint, in_transit bigint, shards integer)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
AS $$
DECLARE
	st			text; msg text; det text; hnt text;
BEGIN
	RETURN QUERY
	WITH q AS (SELECT * FROM @extschema@.shard_stock()),
		 t AS (SELECT * FROM @extschema@.shard_transfers()),
		 -- sent, not marked delivered, and not received either
		 transit AS (SELECT s.product_id, sum(s.quantity) AS units
					   FROM t AS s
					  WHERE s.direction = 'out' AND NOT s.delivered
						AND NOT EXISTS (SELECT FROM t AS r
										 WHERE r.transfer_id = s.transfer_id
										   AND r.direction = 'in')
					  GROUP BY s.product_id)
	SELECT q.product_id, sum(q.stock) + coalesce(min(x.units), 0),
		   coalesce(min(x.units), 0)::bigint, count(*)::integer
	  FROM q LEFT JOIN transit AS x ON x.product_id = q.product_id
	 GROUP BY q.product_id ORDER BY q.product_id;
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
							det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
	PERFORM @extschema@.checkout_reraise(st, msg, det, hnt, NULL);
END
$$;

/*
 * shop_check_integrity(): every shard's own problems (the checkout
 * extension's checks and its transfers against its ledger), with the
 * shard's number, then the shop's: a transfer received that no shard sent,
 * or with other units, product or shards than sent; a transfer received
 * twice; a partition of the cluster that is not the shard of its number
 * (orders would be routed to the wrong shard); a product not on every
 * shard.  No rows: consistent.
 */
CREATE FUNCTION @extschema@.shop_check_integrity()
RETURNS TABLE (problem text, product_id bigint, order_id bigint, detail text,
			   shard integer)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
AS $$
DECLARE
	n			integer := @extschema@.checkout_shard_count();
	st			text; msg text; det text; hnt text;
BEGIN
	RETURN QUERY SELECT * FROM @extschema@.shard_check_integrity() AS i
				  ORDER BY i.shard, i.problem, i.product_id, i.order_id;
	RETURN QUERY
	WITH t AS (SELECT * FROM @extschema@.shard_transfers())
	SELECT 'transfer_not_sent', r.product_id, NULL::bigint,
		   format('transfer %s of %s units from shard %s was received, but shard %s did not send it',
				  r.transfer_id, r.quantity, r.from_shard, r.from_shard), r.shard
	  FROM t AS r
	 WHERE r.direction = 'in'
	   AND NOT EXISTS (SELECT FROM t AS s WHERE s.transfer_id = r.transfer_id
						  AND s.direction = 'out' AND s.shard = r.from_shard
						  AND s.to_shard = r.shard AND s.product_id = r.product_id
						  AND s.quantity = r.quantity)
	UNION ALL
	SELECT 'transfer_received_twice', r.product_id, NULL::bigint,
		   format('transfer %s was received %s times', r.transfer_id, count(*)), NULL::integer
	  FROM t AS r WHERE r.direction = 'in'
	 GROUP BY r.transfer_id, r.product_id HAVING count(*) > 1
	UNION ALL
	SELECT 'transfer_delivered_not_received', s.product_id, NULL::bigint,
		   format('transfer %s is marked delivered, but shard %s has not received it',
				  s.transfer_id, s.to_shard), s.shard
	  FROM t AS s
	 WHERE s.direction = 'out' AND s.delivered
	   AND NOT EXISTS (SELECT FROM t AS r WHERE r.transfer_id = s.transfer_id
						  AND r.direction = 'in')
	UNION ALL
	SELECT 'shard_misnumbered', NULL::bigint, NULL::bigint,
		   format('partition p%s of the cluster checkout_shards is shard %s', k, m.shard), k
	  FROM generate_series(0, n - 1) AS k,
		   LATERAL (SELECT @extschema@.shard_number(k) AS shard) AS m
	 WHERE m.shard <> k
	UNION ALL
	SELECT 'product_not_on_every_shard', q.product_id, NULL::bigint,
		   format('product %s is on %s of %s shards', q.product_id, count(*), n), NULL::integer
	  FROM @extschema@.shard_stock() AS q
	 GROUP BY q.product_id HAVING count(*) <> n;
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
							det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
	PERFORM @extschema@.checkout_reraise(st, msg, det, hnt, NULL);
END
$$;

/* ----------------------------------------------------------------- roles */

-- shop_grant_app(role): what a storefront's role needs on the proxy
CREATE FUNCTION @extschema@.shop_grant_app(role regrole)
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
				   ' @extschema@.shop_checkout(bigint, text), @extschema@.shop_pay(bigint, text),'
				   ' @extschema@.shop_cart_status(bigint), @extschema@.shop_create_customer(bigint, text),'
				   ' @extschema@.shop_set_cart_item(bigint, bigint, integer),'
				   ' @extschema@.shop_shard_of(bigint) TO %s', shop_grant_app.role);
END
$$;

-- shop_grant_admin(role): the administration functions on the proxy
CREATE FUNCTION @extschema@.shop_grant_admin(role regrole)
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
				   ' @extschema@.shop_shard_of(bigint) TO %s', shop_grant_admin.role);
END
$$;

/* ------------------------------------------------------------ privileges */

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA @extschema@ FROM PUBLIC;
