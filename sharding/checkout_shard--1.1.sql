/* checkout_shard--1.1.sql: what a shard of a sharded shop adds to checkout */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION checkout_shard" to load this file. \quit

/*
 * A shard of a sharded shop (docs/scale-out.md) runs the checkout extension
 * unchanged for its customers' carts and orders, and holds a quota of each
 * product's stock: products.stock (plus its slots) is what this shard may
 * sell.  This extension adds what the proxy (checkout_proxy) calls on the
 * shard: its number, products and customers made through the proxy, and
 * stock transfers between shards.
 *
 * A transfer of units of a product from shard A to shard B is three local
 * transactions, each on one side, never a distributed one:
 *   1. on A, send(): take up to the units asked for from A's
 *      quota, and record the transfer ('out', its id) and a movement in the
 *      stock ledger, in one transaction;
 *   2. on B, receive(): record the transfer ('in', the same id,
 *      under a primary key, so a second delivery of it does nothing) and
 *      add its units to B's quota with a movement, in one transaction;
 *   3. on A, mark_delivered(): note that B has it.
 * Between 1 and 3 the units are in transit: an 'out' row not yet marked
 * delivered.  Whoever finds one (a pull that sees units in transit settles)
 * runs 2 and 3 again; 2 applies it at most once, so every unit moves
 * exactly once whichever side or mover dies in between.
 *
 * Schema.  The functions live in this extension's own schema,
 * checkout_shard, which the proxy names.  They reach the checkout
 * extension's objects through their search_path, pinned at install time to
 * pg_catalog, the checkout extension's schema (wherever it was created)
 * and pg_temp: PostgreSQL 15 has no @extschema:checkout@ to name it here.
 * Every function is PL/pgSQL, SECURITY DEFINER, and not executable by
 * PUBLIC: shop_shard_grant_proxy() grants them to the role the proxy
 * connects as.
 */

-- The shard's number among the shop's shards: set once by shop_shard_init()
CREATE TABLE @extschema@.shard_identity (
	singleton	boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	shard		integer NOT NULL CHECK (shard >= 0 AND shard < 1024),
	initialised_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);

/*
 * The transfers this shard took part in: 'out' rows on the shard the units
 * left, 'in' rows on the shard they reached, under the same transfer id.
 */
CREATE TABLE @extschema@.stock_transfers (
	transfer_id uuid NOT NULL,
	direction	text NOT NULL CHECK (direction IN ('out', 'in')),
	product_id	bigint NOT NULL,
	quantity	integer NOT NULL CHECK (quantity > 0),
	from_shard	integer NOT NULL,
	to_shard	integer NOT NULL CHECK (to_shard <> from_shard),
	created_at	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	-- 'out' rows: when the receiving shard was known to have it
	delivered_at timestamptz CHECK (delivered_at IS NULL OR direction = 'out'),
	PRIMARY KEY (transfer_id, direction)
);

CREATE INDEX stock_transfers_product_id_idx
	ON @extschema@.stock_transfers (product_id);
-- Units in transit: what the proxy settles
CREATE INDEX stock_transfers_in_transit_idx
	ON @extschema@.stock_transfers (product_id)
	WHERE direction = 'out' AND delivered_at IS NULL;

SELECT pg_catalog.pg_extension_config_dump('@extschema@.shard_identity', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.stock_transfers', '');

/* ------------------------------------------------------------ the shard */

/*
 * shop_shard_init(shard): make this database shard number `shard` (0 to
 * 1023) of its shop; returns it.  Order ids from then on are
 * n * 1024 + shard, so the proxy routes shop_pay() and shop_cancel_order()
 * by the order id alone.  Only on a shard without orders; running it again
 * with the same number changes nothing.
 */
CREATE FUNCTION @extschema@.shop_shard_init(shard integer)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp  -- made pg_catalog, <checkout's schema>, pg_temp at install: the DO block at the end
AS $$
DECLARE
	current_shard integer;
BEGIN
	IF shop_shard_init.shard IS NULL OR shop_shard_init.shard NOT BETWEEN 0 AND 1023 THEN
		RAISE EXCEPTION 'a shard number is 0 to 1023'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('Got %s.', shop_shard_init.shard);
	END IF;
	SELECT s.shard INTO current_shard FROM @extschema@.shard_identity AS s;
	IF current_shard = shop_shard_init.shard THEN
		RETURN current_shard;
	ELSIF current_shard IS NOT NULL THEN
		RAISE EXCEPTION 'this database is shard % already', current_shard
			USING ERRCODE = 'object_in_use',
				  HINT = 'A shard keeps its number: its order ids carry it.';
	END IF;
	IF EXISTS (SELECT FROM orders) THEN
		RAISE EXCEPTION 'a shard must be made from a shop without orders'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = 'Its order ids would not carry the shard''s number.';
	END IF;
	INSERT INTO @extschema@.shard_identity (shard) VALUES (shop_shard_init.shard);
	EXECUTE format('ALTER TABLE %s ALTER COLUMN id SET INCREMENT BY 1024 RESTART WITH %s',
				   'orders'::regclass, 1024 + shop_shard_init.shard);
	RETURN shop_shard_init.shard;
END
$$;

-- This shard's number; raises when shop_shard_init() was not run
CREATE FUNCTION @extschema@.shop_shard_number()
RETURNS integer
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp  -- made pg_catalog, <checkout's schema>, pg_temp at install: the DO block at the end
AS $$
DECLARE
	n			integer;
BEGIN
	SELECT s.shard INTO n FROM @extschema@.shard_identity AS s;
	IF n IS NULL THEN
		RAISE EXCEPTION 'this database is not a shard yet'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Run checkout_shard.shop_shard_init(its number) first.';
	END IF;
	RETURN n;
END
$$;

/* ------------------------------------------- the proxy's calls, passed on */

/*
 * shop_checkout() of the checkout extension, on this shard.  Its error
 * comes back as data (SQLSTATE, message, detail, hint), not raised: a
 * remote error leaves PL/Proxy's connection half read, and PL/Proxy drops
 * and opens it again on the next call (a new backend on this shard for
 * every rejected buyer of a sale); the proxy raises it again as it was.
 */
CREATE TYPE @extschema@.checkout_result AS (
	order_id	bigint,			-- the order; NULL when the checkout failed
	sqlstate	text,			-- the error's, when it failed
	message		text,
	detail		text,
	hint		text
);

CREATE FUNCTION @extschema@.checkout(customer_id bigint, idempotency_key text)
RETURNS @extschema@.checkout_result
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp  -- made pg_catalog, <checkout's schema>, pg_temp at install: the DO block at the end
AS $$
DECLARE
	result		@extschema@.checkout_result;
BEGIN
	result.order_id := shop_checkout(checkout.customer_id, checkout.idempotency_key);
	RETURN result;
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS result.sqlstate = RETURNED_SQLSTATE,
							result.message = MESSAGE_TEXT,
							result.detail = PG_EXCEPTION_DETAIL,
							result.hint = PG_EXCEPTION_HINT;
	RETURN result;
END
$$;

CREATE FUNCTION @extschema@.pay(order_id bigint, payment_ref text)
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp  -- made pg_catalog, <checkout's schema>, pg_temp at install: the DO block at the end
AS $$
BEGIN
	RETURN shop_pay(pay.order_id, pay.payment_ref);
END
$$;

CREATE FUNCTION @extschema@.cancel_order(order_id bigint, reason text)
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp  -- made pg_catalog, <checkout's schema>, pg_temp at install: the DO block at the end
AS $$
BEGIN
	RETURN shop_cancel_order(cancel_order.order_id, cancel_order.reason);
END
$$;

CREATE FUNCTION @extschema@.cart_status(customer_id bigint)
RETURNS TABLE (product_id bigint, name text, requested integer,
			   available integer, can_fulfil boolean,
			   checkout_would_succeed boolean, purchase_limit integer,
			   already_bought bigint)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp  -- made pg_catalog, <checkout's schema>, pg_temp at install: the DO block at the end
AS $$
BEGIN
	RETURN QUERY SELECT * FROM shop_cart_status(cart_status.customer_id);
END
$$;

CREATE FUNCTION @extschema@.set_purchase_limit(product_id bigint, max_per_customer integer)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp  -- made pg_catalog, <checkout's schema>, pg_temp at install: the DO block at the end
AS $$
BEGIN
	RETURN shop_set_purchase_limit(set_purchase_limit.product_id,
								   set_purchase_limit.max_per_customer);
END
$$;

/*
 * The cart lines of a customer that this shard's quota cannot serve now:
 * how many units are short of each, with this shard's number
 */
CREATE FUNCTION @extschema@.short_lines(customer_id bigint)
RETURNS TABLE (shard integer, product_id bigint, available integer,
			   requested integer)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp  -- made pg_catalog, <checkout's schema>, pg_temp at install: the DO block at the end
AS $$
BEGIN
	RETURN QUERY
	SELECT @extschema@.shop_shard_number(), ci.product_id, ps.stock, ci.quantity
	  FROM cart_items AS ci
	  JOIN product_stock AS ps ON ps.product_id = ci.product_id
	 WHERE ci.customer_id = short_lines.customer_id AND ps.stock < ci.quantity
	 ORDER BY ci.product_id;
END
$$;

/*
 * The shard's own integrity: the checkout extension's checks, and, per
 * product, the transfers its ledger records against its stock_transfers
 */
CREATE FUNCTION @extschema@.check_integrity()
RETURNS TABLE (problem text, product_id bigint, order_id bigint, detail text,
			   shard integer)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp  -- made pg_catalog, <checkout's schema>, pg_temp at install: the DO block at the end
AS $$
DECLARE
	me			integer := @extschema@.shop_shard_number();
BEGIN
	RETURN QUERY SELECT i.problem, i.product_id, i.order_id, i.detail, me
				   FROM shop_check_integrity() AS i;
	RETURN QUERY
	SELECT 'transfer_ledger_mismatch', p.id, NULL::bigint,
		   format('the ledger moved %s units by transfers, the transfers %s',
				  coalesce(m.moved, 0), coalesce(t.moved, 0)), me
	  FROM products AS p
	  LEFT JOIN (SELECT sm.product_id, sum(sm.quantity) AS moved
				   FROM stock_movements AS sm
				  WHERE sm.reason LIKE 'stock transfer %'
				  GROUP BY sm.product_id) AS m ON m.product_id = p.id
	  LEFT JOIN (SELECT st.product_id,
						sum(CASE st.direction WHEN 'in' THEN st.quantity
							ELSE -st.quantity END) AS moved
				   FROM @extschema@.stock_transfers AS st
				  GROUP BY st.product_id) AS t ON t.product_id = p.id
	 WHERE coalesce(m.moved, 0) <> coalesce(t.moved, 0);
END
$$;

/* -------------------------------------------- products, customers, carts */

/*
 * Create product `id` (the same id on every shard) with this shard's quota
 * of its stock, recorded as its opening stock; returns true.  A product
 * that exists already is left as it is (false): the proxy may run it again.
 */
CREATE FUNCTION @extschema@.create_product(id bigint, name text, price_cents bigint,
										   quota integer)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp  -- made pg_catalog, <checkout's schema>, pg_temp at install: the DO block at the end
AS $$
BEGIN
	INSERT INTO products (id, name, price_cents, stock)
	VALUES (create_product.id, create_product.name, create_product.price_cents,
			create_product.quota)
	ON CONFLICT DO NOTHING;
	RETURN FOUND;
END
$$;

-- Set a product's name and price (NULL: unchanged); false if there is none
CREATE FUNCTION @extschema@.update_product(id bigint, name text, price_cents bigint)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp  -- made pg_catalog, <checkout's schema>, pg_temp at install: the DO block at the end
AS $$
BEGIN
	UPDATE products AS p
	   SET name = coalesce(update_product.name, p.name),
		   price_cents = coalesce(update_product.price_cents, p.price_cents)
	 WHERE p.id = update_product.id;
	RETURN FOUND;
END
$$;

-- Create customer `id` here (its shard); false if it exists already
CREATE FUNCTION @extschema@.create_customer(id bigint, name text)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp  -- made pg_catalog, <checkout's schema>, pg_temp at install: the DO block at the end
AS $$
BEGIN
	INSERT INTO customers (id, name) VALUES (create_customer.id, create_customer.name)
	ON CONFLICT DO NOTHING;
	RETURN FOUND;
END
$$;

/*
 * Set the quantity of a product in a customer's cart (0: remove the line);
 * returns the quantity.  SH003 for an unknown customer, SH004 for an
 * unknown product, as shop_checkout() names them.
 */
CREATE FUNCTION @extschema@.set_cart_item(customer_id bigint, product_id bigint,
										  quantity integer)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp  -- made pg_catalog, <checkout's schema>, pg_temp at install: the DO block at the end
AS $$
BEGIN
	IF set_cart_item.customer_id IS NULL OR set_cart_item.product_id IS NULL
	   OR set_cart_item.quantity IS NULL THEN
		RAISE EXCEPTION 'customer id, product id and quantity must not be NULL'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF set_cart_item.quantity < 0 THEN
		RAISE EXCEPTION 'a cart quantity cannot be negative'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('Got %s for product %s.', set_cart_item.quantity,
								  set_cart_item.product_id),
				  HINT = 'Pass 0 to remove the line.';
	END IF;
	IF NOT EXISTS (SELECT FROM customers AS c WHERE c.id = set_cart_item.customer_id) THEN
		RAISE EXCEPTION 'customer % does not exist', set_cart_item.customer_id
			USING ERRCODE = 'SH003';
	END IF;
	IF NOT EXISTS (SELECT FROM products AS p WHERE p.id = set_cart_item.product_id) THEN
		RAISE EXCEPTION 'product % does not exist', set_cart_item.product_id
			USING ERRCODE = 'SH004';
	END IF;
	IF set_cart_item.quantity = 0 THEN
		DELETE FROM cart_items AS ci
		 WHERE ci.customer_id = set_cart_item.customer_id
		   AND ci.product_id = set_cart_item.product_id;
	ELSE
		INSERT INTO cart_items (customer_id, product_id, quantity)
		VALUES (set_cart_item.customer_id, set_cart_item.product_id, set_cart_item.quantity)
		ON CONFLICT ON CONSTRAINT cart_items_pkey
		DO UPDATE SET quantity = excluded.quantity;
	END IF;
	RETURN set_cart_item.quantity;
END
$$;

/* ------------------------------------------------------ stock transfers */

/*
 * This shard's quota of a product, the transfers of it this shard has
 * recorded (a number that changes with every transfer in or out: the
 * proxy compares two readings of every shard), and its units in transit
 * from here.  NULL stock: no such product here.
 */
CREATE FUNCTION @extschema@.stock_state(product_id bigint,
										OUT shard integer, OUT stock integer,
										OUT transfers bigint, OUT in_transit bigint)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp  -- made pg_catalog, <checkout's schema>, pg_temp at install: the DO block at the end
AS $$
BEGIN
	shard := @extschema@.shop_shard_number();
	SELECT ps.stock INTO stock_state.stock
	  FROM product_stock AS ps WHERE ps.product_id = stock_state.product_id;
	SELECT count(*), coalesce(sum(st.quantity) FILTER (
			WHERE st.direction = 'out' AND st.delivered_at IS NULL), 0)
	  INTO stock_state.transfers, stock_state.in_transit
	  FROM @extschema@.stock_transfers AS st
	 WHERE st.product_id = stock_state.product_id;
END
$$;

/*
 * Step 1 of a transfer: take up to `quantity` units of a product from this
 * shard's quota for shard `to_shard`; returns how many were taken (0: none
 * here, and nothing is recorded).  Running it again with the same transfer
 * id returns what that transfer took and takes nothing more.
 */
CREATE FUNCTION @extschema@.send(transfer_id uuid, product_id bigint, quantity integer,
								 to_shard integer)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp  -- made pg_catalog, <checkout's schema>, pg_temp at install: the DO block at the end
AS $$
DECLARE
	me			integer := @extschema@.shop_shard_number();
	locked		record;
	taken		integer;
BEGIN
	IF send.quantity IS NULL OR send.quantity <= 0 THEN
		RAISE EXCEPTION 'a transfer moves a positive number of units'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('Got %s for product %s.', send.quantity, send.product_id);
	END IF;
	locked := shop_lock_stock(send.product_id);
	-- the same transfer again (after the proxy lost the answer)
	SELECT st.quantity INTO taken
	  FROM @extschema@.stock_transfers AS st
	 WHERE st.transfer_id = send.transfer_id AND st.direction = 'out';
	IF FOUND THEN
		RETURN taken;
	END IF;
	taken := least(locked.stock, send.quantity);
	IF taken = 0 THEN
		RETURN 0;
	END IF;
	PERFORM shop_spread_stock(send.product_id, locked.stock - taken, locked.slots);
	INSERT INTO stock_movements (product_id, kind, quantity, stock_after, reason)
	VALUES (send.product_id, 'adjustment', -taken, locked.stock - taken,
			format('stock transfer %s to shard %s', send.transfer_id, send.to_shard));
	INSERT INTO @extschema@.stock_transfers
		(transfer_id, direction, product_id, quantity, from_shard, to_shard)
	VALUES (send.transfer_id, 'out', send.product_id, taken, me, send.to_shard);
	RETURN taken;
END
$$;

/*
 * Step 2: add the units of transfer `transfer_id` to this shard's quota;
 * returns true, or false when it was received already (nothing changes).
 */
CREATE FUNCTION @extschema@.receive(transfer_id uuid, product_id bigint, quantity integer,
									from_shard integer)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp  -- made pg_catalog, <checkout's schema>, pg_temp at install: the DO block at the end
AS $$
DECLARE
	me			integer := @extschema@.shop_shard_number();
	locked		record;
BEGIN
	-- the product first, as every stock change locks it; then the claim
	locked := shop_lock_stock(receive.product_id);
	INSERT INTO @extschema@.stock_transfers
		(transfer_id, direction, product_id, quantity, from_shard, to_shard)
	VALUES (receive.transfer_id, 'in', receive.product_id, receive.quantity,
			receive.from_shard, me)
	ON CONFLICT DO NOTHING;
	IF NOT FOUND THEN
		RETURN false;
	END IF;
	PERFORM shop_spread_stock(receive.product_id, locked.stock + receive.quantity,
							  locked.slots);
	INSERT INTO stock_movements (product_id, kind, quantity, stock_after, reason)
	VALUES (receive.product_id, 'adjustment', receive.quantity,
			locked.stock + receive.quantity,
			format('stock transfer %s from shard %s', receive.transfer_id,
				   receive.from_shard));
	RETURN true;
END
$$;

-- Step 3: the receiving shard has transfer `transfer_id`; returns true
CREATE FUNCTION @extschema@.mark_delivered(transfer_id uuid)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp  -- made pg_catalog, <checkout's schema>, pg_temp at install: the DO block at the end
AS $$
BEGIN
	UPDATE @extschema@.stock_transfers AS st
	   SET delivered_at = now()
	 WHERE st.transfer_id = mark_delivered.transfer_id AND st.direction = 'out'
	   AND st.delivered_at IS NULL;
	RETURN true;
END
$$;

-- The transfers from here in transit (of one product, or of all: NULL)
CREATE FUNCTION @extschema@.in_transit(of_product bigint)
RETURNS TABLE (transfer_id uuid, product_id bigint, quantity integer,
			   from_shard integer, to_shard integer)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp  -- made pg_catalog, <checkout's schema>, pg_temp at install: the DO block at the end
AS $$
BEGIN
	RETURN QUERY
	SELECT st.transfer_id, st.product_id, st.quantity, st.from_shard, st.to_shard
	  FROM @extschema@.stock_transfers AS st
	 WHERE st.direction = 'out' AND st.delivered_at IS NULL
	   AND (in_transit.of_product IS NULL OR st.product_id = in_transit.of_product)
	 ORDER BY st.created_at, st.transfer_id;
END
$$;

-- Every transfer this shard recorded, for the proxy's global ledger check
CREATE FUNCTION @extschema@.transfers()
RETURNS TABLE (shard integer, transfer_id uuid, direction text, product_id bigint,
			   quantity integer, from_shard integer, to_shard integer,
			   delivered boolean)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp  -- made pg_catalog, <checkout's schema>, pg_temp at install: the DO block at the end
AS $$
BEGIN
	RETURN QUERY
	SELECT @extschema@.shop_shard_number(), st.transfer_id, st.direction, st.product_id,
		   st.quantity, st.from_shard, st.to_shard, st.delivered_at IS NOT NULL
	  FROM @extschema@.stock_transfers AS st;
END
$$;

-- This shard's stock on sale of the products listed (NULL: of all), for
-- the proxy's sums
CREATE FUNCTION @extschema@.stock(product_ids bigint[])
RETURNS TABLE (shard integer, product_id bigint, stock integer)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp  -- made pg_catalog, <checkout's schema>, pg_temp at install: the DO block at the end
AS $$
BEGIN
	RETURN QUERY
	SELECT @extschema@.shop_shard_number(), ps.product_id, ps.stock
	  FROM product_stock AS ps
	 WHERE stock.product_ids IS NULL OR ps.product_id = ANY (stock.product_ids);
END
$$;

/* ----------------------------------------------------------------- roles */

/*
 * shop_shard_grant_proxy(role): what the role the proxy connects as needs
 * on this shard: every function of this extension.  The checkout
 * extension's functions it reaches run through them (SECURITY DEFINER).
 */
CREATE FUNCTION @extschema@.shop_shard_grant_proxy(role regrole)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF shop_shard_grant_proxy.role IS NULL THEN
		RAISE EXCEPTION 'role must not be NULL'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	EXECUTE format('GRANT USAGE ON SCHEMA @extschema@ TO %s', shop_shard_grant_proxy.role);
	EXECUTE format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA @extschema@ TO %s',
				   shop_shard_grant_proxy.role);
	EXECUTE format('REVOKE EXECUTE ON FUNCTION @extschema@.shop_shard_grant_proxy(regrole) FROM %s',
				   shop_shard_grant_proxy.role);
END
$$;

/* ------------------------------------------------------------ privileges */

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA @extschema@ FROM PUBLIC;

-- Each function finds the checkout extension's objects through its pinned
-- search_path: pg_catalog, the checkout extension's schema, pg_temp
DO $$
DECLARE
	checkout_schema text := (SELECT e.extnamespace::regnamespace::text
							   FROM pg_catalog.pg_extension AS e
							  WHERE e.extname = 'checkout');
	f			regprocedure;
BEGIN
	IF checkout_schema IS NULL THEN
		RAISE EXCEPTION 'checkout_shard needs the checkout extension'
			USING ERRCODE = 'undefined_object';
	END IF;
	FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc AS p
			  WHERE p.pronamespace = '@extschema@'::regnamespace
				AND p.proname <> 'shop_shard_grant_proxy'
	LOOP
		EXECUTE pg_catalog.format('ALTER FUNCTION %s SET search_path = pg_catalog, %s, pg_temp',
								  f, checkout_schema);
	END LOOP;
END
$$;
