/* checkout--1.0--1.1.sql: from 1.0 to 1.1 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION checkout UPDATE TO '1.1'" to load this file. \quit

/*
 * Record the opening stock of products inserted directly, as shops do.
 * Not while a dump is being loaded (pg_restore, or psql running pg_dump's
 * output, both of which turn check_function_bodies off before anything
 * else, as the PostgreSQL documentation says pg_dump does): the dump brings
 * the product's whole ledger with it, opening movement included, and the
 * products' rows it loads hold their stock of now, not their opening stock.
 */
CREATE OR REPLACE FUNCTION @extschema@.shop_record_opening_stock()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT pg_catalog.current_setting('check_function_bodies')::boolean THEN
		RETURN NULL;
	END IF;
	INSERT INTO @extschema@.stock_movements
		(product_id, kind, quantity, stock_after, reason)
	SELECT n.id, 'opening', n.stock, n.stock, 'opening stock'
	  FROM new_products AS n;
	RETURN NULL;
END
$$;


/* ------------------------------------------- orders: status and payment */

ALTER TABLE @extschema@.orders
	ADD COLUMN status text NOT NULL DEFAULT 'placed'
		CHECK (status IN ('placed', 'paid', 'cancelled')),
	ADD COLUMN expires_at timestamptz,
	ADD COLUMN paid_at timestamptz,
	ADD COLUMN payment_ref text,
	ADD COLUMN cancelled_at timestamptz,
	ADD COLUMN cancel_reason text;

-- What shop_expire_orders() looks for: placed orders with a payment window
CREATE INDEX orders_expires_at_idx ON @extschema@.orders (expires_at)
	WHERE status = 'placed' AND expires_at IS NOT NULL;

ALTER TABLE @extschema@.order_items
	ADD COLUMN cancelled_quantity integer NOT NULL DEFAULT 0
		CHECK (cancelled_quantity >= 0 AND cancelled_quantity <= quantity);

-- The ledger records stock given back by cancellations and expiries
ALTER TABLE @extschema@.stock_movements
	DROP CONSTRAINT stock_movements_kind_check;
ALTER TABLE @extschema@.stock_movements
	ADD CONSTRAINT stock_movements_kind_check
		CHECK (kind IN ('opening', 'restock', 'adjustment', 'cancellation', 'expiry')),
	ADD COLUMN order_id bigint REFERENCES @extschema@.orders,
	ADD CONSTRAINT stock_movements_order_kind_check
		CHECK ((order_id IS NOT NULL) = (kind IN ('cancellation', 'expiry')));
CREATE INDEX stock_movements_order_id_idx
	ON @extschema@.stock_movements (order_id) WHERE order_id IS NOT NULL;

/*
 * Idempotency keys: the first checkout of a customer with a key that
 * commits an order records it here; a later call with the same key returns
 * that order (shop_checkout(customer_id, idempotency_key)).  The row is
 * inserted before the checkout, with the order id it will have, so that a
 * duplicate in flight waits on the primary key for the first call's end.
 */
CREATE TABLE @extschema@.idempotency_keys (
	customer_id bigint NOT NULL REFERENCES @extschema@.customers ON DELETE CASCADE,
	idempotency_key text NOT NULL
				CHECK (pg_catalog.length(idempotency_key) BETWEEN 1 AND 255),
	order_id	bigint NOT NULL REFERENCES @extschema@.orders ON DELETE CASCADE
				DEFERRABLE INITIALLY DEFERRED,
	created_at	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (customer_id, idempotency_key)
);

COMMENT ON TABLE @extschema@.idempotency_keys IS
'The order each idempotency key of a customer made; see shop_checkout(bigint, text)';

-- Per-customer purchase limits ("2 per customer"), set by shop_set_purchase_limit()
CREATE TABLE @extschema@.purchase_limits (
	product_id	bigint PRIMARY KEY REFERENCES @extschema@.products ON DELETE CASCADE,
	max_per_customer integer NOT NULL CHECK (max_per_customer > 0)
);

COMMENT ON TABLE @extschema@.purchase_limits IS
'How many units of a product one customer may buy, over its orders not cancelled';

SELECT pg_catalog.pg_extension_config_dump('@extschema@.idempotency_keys', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.purchase_limits', '');

/* ------------------------------------------------------------- checkout */

/*
 * shop_checkout(customer_id, idempotency_key): the same, safe to retry.  The
 * first call with a key that commits an order records it; any later call
 * of that customer with that key returns that order's id and changes
 * nothing; a call while the first is in flight waits for it.  A NULL key
 * behaves like no key; an empty key or one over 255 characters is 22023.
 */
CREATE FUNCTION @extschema@.shop_checkout(customer_id bigint, idempotency_key text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'shop_checkout'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION @extschema@.shop_checkout(bigint, text) IS
'Atomically turn the customer''s cart into an order, once per idempotency key; returns the order id';

/*
 * shop_purge_idempotency_keys(): delete the keys older than
 * checkout.idempotency_retention (default 24h); returns how many.
 */
CREATE FUNCTION @extschema@.shop_purge_idempotency_keys()
RETURNS bigint
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	WITH purged AS (
		DELETE FROM @extschema@.idempotency_keys AS k
		 WHERE k.created_at < pg_catalog.now() OPERATOR(pg_catalog.-)
			   coalesce(NULLIF(pg_catalog.current_setting(
								'checkout.idempotency_retention', true), ''),
						'1d')::interval
		RETURNING 1)
	SELECT pg_catalog.count(*) FROM purged
$$;

/* ----------------------------------------------------------- statistics */

-- Four more counters: the function's columns change, and the view with it
DROP VIEW @extschema@.shop_checkout_stats;
DROP FUNCTION @extschema@.shop_checkout_stats();

CREATE FUNCTION @extschema@.shop_checkout_stats(
	OUT dbid oid,
	OUT datname text,
	OUT attempts bigint,
	OUT successes bigint,
	OUT failures bigint,
	OUT insufficient_stock bigint,
	OUT empty_cart bigint,
	OUT unknown_customer bigint,
	OUT lock_timeouts bigint,
	OUT serialization_failures bigint,
	OUT other_failures bigint,
	OUT items_sold bigint,
	OUT total_time_ms double precision,
	OUT mean_time_ms double precision,
	OUT max_time_ms double precision,
	OUT lock_wait_ms double precision,
	OUT mean_lock_wait_ms double precision,
	OUT success_rate double precision,
	OUT stats_reset timestamptz,
	OUT idempotent_replays bigint,
	OUT purchase_limit_exceeded bigint,
	OUT orders_cancelled bigint,
	OUT orders_expired bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'shop_checkout_stats'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

COMMENT ON FUNCTION @extschema@.shop_checkout_stats() IS
'Checkout counters per database since the last reset (needs shared_preload_libraries = checkout)';

CREATE VIEW @extschema@.shop_checkout_stats AS
	SELECT * FROM @extschema@.shop_checkout_stats();

GRANT SELECT ON @extschema@.shop_checkout_stats TO PUBLIC;

/* --------------------------------------------------------------- orders */

/*
 * Give back `quantity` units of the line (order_id, product_id): return them
 * to the product's row (on sale again, slots or not), record the movement
 * of `kind` ('cancellation' or 'expiry') naming the order, and cancel the
 * order once nothing of it is left.  Returns the units of the order still
 * ordered.  The caller holds the order's row and the product's row locked
 * and has checked the quantity.
 */
CREATE FUNCTION @extschema@.shop_give_back(order_id bigint, product_id bigint,
										   quantity integer, kind text,
										   reason text)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	remaining	integer;
BEGIN
	UPDATE @extschema@.order_items AS oi
	   SET cancelled_quantity = oi.cancelled_quantity + shop_give_back.quantity
	 WHERE oi.order_id = shop_give_back.order_id
	   AND oi.product_id = shop_give_back.product_id;
	UPDATE @extschema@.products AS p
	   SET stock = p.stock + shop_give_back.quantity
	 WHERE p.id = shop_give_back.product_id;
	INSERT INTO @extschema@.stock_movements
		(product_id, kind, quantity, stock_after, reason, order_id)
	SELECT shop_give_back.product_id, shop_give_back.kind, shop_give_back.quantity,
		   ps.stock, shop_give_back.reason, shop_give_back.order_id
	  FROM @extschema@.product_stock AS ps
	 WHERE ps.product_id = shop_give_back.product_id;

	SELECT sum(oi.quantity - oi.cancelled_quantity) INTO remaining
	  FROM @extschema@.order_items AS oi
	 WHERE oi.order_id = shop_give_back.order_id;
	IF remaining = 0 THEN
		UPDATE @extschema@.orders AS o
		   SET status = 'cancelled', cancelled_at = now(),
			   cancel_reason = shop_give_back.reason
		 WHERE o.id = shop_give_back.order_id;
	END IF;
	RETURN remaining;
END
$$;

/*
 * Lock the rows of these products in the order checkouts lock them:
 * products without stock slots by ascending id, then those with slots.
 */
CREATE FUNCTION @extschema@.shop_lock_products(product_ids bigint[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM FROM @extschema@.products AS p
	 WHERE p.id = ANY (shop_lock_products.product_ids)
	 ORDER BY EXISTS (SELECT FROM @extschema@.stock_slots AS s
					   WHERE s.product_id = p.id), p.id
	   FOR NO KEY UPDATE OF p;
END
$$;

/*
 * Lock an order's row; raise SH006 when there is no such order.  Returns
 * its status.
 */
CREATE FUNCTION @extschema@.shop_lock_order(order_id bigint)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	order_status text;
BEGIN
	IF shop_lock_order.order_id IS NULL THEN
		RAISE EXCEPTION 'order id must not be NULL'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT o.status INTO order_status
	  FROM @extschema@.orders AS o
	 WHERE o.id = shop_lock_order.order_id
	   FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'order % does not exist', shop_lock_order.order_id
			USING ERRCODE = 'SH006',
				  DETAIL = format('There is no row with id %s in table orders.',
								  shop_lock_order.order_id);
	END IF;
	RETURN order_status;
END
$$;

/*
 * Raise 22023 unless reason says something: every stock movement has one.
 */
CREATE FUNCTION @extschema@.shop_require_reason(reason text, hint text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF shop_require_reason.reason IS NULL OR btrim(shop_require_reason.reason) = '' THEN
		RAISE EXCEPTION 'a reason is required for every stock movement'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = shop_require_reason.hint;
	END IF;
END
$$;

/*
 * shop_pay(order_id, payment_ref): mark a placed order paid; returns its
 * status, 'paid'.  Paying it again with the same reference changes nothing.
 * A cancelled order, one past its expires_at, or one paid with another
 * reference raises SH007 and changes nothing.
 */
CREATE FUNCTION @extschema@.shop_pay(order_id bigint, payment_ref text)
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	o			record;
BEGIN
	IF shop_pay.payment_ref IS NULL THEN
		RAISE EXCEPTION 'payment reference must not be NULL'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF btrim(shop_pay.payment_ref) = '' THEN
		RAISE EXCEPTION 'payment reference must not be empty'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass the payment provider''s id of the payment.';
	END IF;
	PERFORM @extschema@.shop_lock_order(shop_pay.order_id);
	SELECT * INTO o FROM @extschema@.orders AS x WHERE x.id = shop_pay.order_id;

	IF o.status = 'paid' AND o.payment_ref = shop_pay.payment_ref THEN
		RETURN 'paid';
	ELSIF o.status = 'paid' THEN
		RAISE EXCEPTION 'order % is already paid', o.id
			USING ERRCODE = 'SH007',
				  DETAIL = format('It was paid at %s with payment reference %s, not %s.',
								  o.paid_at, o.payment_ref, shop_pay.payment_ref),
				  HINT = 'Refund the second payment.';
	ELSIF o.status = 'cancelled' THEN
		RAISE EXCEPTION 'order % is cancelled and cannot be paid', o.id
			USING ERRCODE = 'SH007',
				  DETAIL = format('It was cancelled at %s: %s.', o.cancelled_at,
								  o.cancel_reason),
				  HINT = 'Refund the payment; the buyer must check out again.';
	ELSIF o.expires_at <= now() THEN
		RAISE EXCEPTION 'order % has expired and cannot be paid', o.id
			USING ERRCODE = 'SH007',
				  DETAIL = format('Its payment window ended at %s.', o.expires_at),
				  HINT = 'Refund the payment; the buyer must check out again.';
	END IF;

	UPDATE @extschema@.orders AS x
	   SET status = 'paid', paid_at = now(), payment_ref = shop_pay.payment_ref
	 WHERE x.id = shop_pay.order_id;
	RETURN 'paid';
END
$$;

/*
 * shop_cancel_order(order_id, reason): cancel what is left of an order,
 * putting its stock back through the ledger; returns its status,
 * 'cancelled'.  Cancelling a cancelled order changes nothing.
 */
CREATE FUNCTION @extschema@.shop_cancel_order(order_id bigint, reason text)
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	line		record;
BEGIN
	PERFORM @extschema@.shop_require_reason(shop_cancel_order.reason,
		'Say why the order is cancelled, e.g. "customer request".');
	IF @extschema@.shop_lock_order(shop_cancel_order.order_id) = 'cancelled' THEN
		RETURN 'cancelled';
	END IF;
	PERFORM @extschema@.shop_lock_products(ARRAY(
		SELECT oi.product_id FROM @extschema@.order_items AS oi
		 WHERE oi.order_id = shop_cancel_order.order_id));
	FOR line IN
		SELECT oi.product_id, oi.quantity - oi.cancelled_quantity AS left_over
		  FROM @extschema@.order_items AS oi
		 WHERE oi.order_id = shop_cancel_order.order_id
		   AND oi.quantity > oi.cancelled_quantity
		 ORDER BY oi.product_id
	LOOP
		PERFORM @extschema@.shop_give_back(shop_cancel_order.order_id, line.product_id,
										   line.left_over, 'cancellation',
										   shop_cancel_order.reason);
	END LOOP;
	-- an order whose lines were all cancelled already
	UPDATE @extschema@.orders AS o
	   SET status = 'cancelled', cancelled_at = now(),
		   cancel_reason = shop_cancel_order.reason
	 WHERE o.id = shop_cancel_order.order_id AND o.status <> 'cancelled';
	RETURN 'cancelled';
END
$$;

/*
 * shop_cancel_items(order_id, product_id, quantity, reason): cancel
 * `quantity` units of one line of an order, putting them back through the
 * ledger; returns the units of that line still ordered.  When nothing of
 * the order is left, it is cancelled.
 */
CREATE FUNCTION @extschema@.shop_cancel_items(order_id bigint, product_id bigint,
											  quantity integer, reason text)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	ordered		integer;
	cancelled	integer;
BEGIN
	IF shop_cancel_items.product_id IS NULL OR shop_cancel_items.quantity IS NULL THEN
		RAISE EXCEPTION 'product id and quantity must not be NULL'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF shop_cancel_items.quantity <= 0 THEN
		RAISE EXCEPTION 'quantity to cancel must be positive'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('Got %s for product %s of order %s.',
								  shop_cancel_items.quantity, shop_cancel_items.product_id,
								  shop_cancel_items.order_id);
	END IF;
	PERFORM @extschema@.shop_require_reason(shop_cancel_items.reason,
		'Say why the items are cancelled, e.g. "damaged in transit".');
	PERFORM @extschema@.shop_lock_order(shop_cancel_items.order_id);

	SELECT oi.quantity, oi.cancelled_quantity INTO ordered, cancelled
	  FROM @extschema@.order_items AS oi
	 WHERE oi.order_id = shop_cancel_items.order_id
	   AND oi.product_id = shop_cancel_items.product_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'order % has no line for product %', shop_cancel_items.order_id,
			shop_cancel_items.product_id
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF shop_cancel_items.quantity > ordered - cancelled THEN
		RAISE EXCEPTION 'cannot cancel more than was ordered'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('Product %s of order %s: %s ordered, %s cancelled already, %s more asked.',
								  shop_cancel_items.product_id, shop_cancel_items.order_id,
								  ordered, cancelled, shop_cancel_items.quantity);
	END IF;

	PERFORM @extschema@.shop_lock_products(ARRAY[shop_cancel_items.product_id]);
	PERFORM @extschema@.shop_give_back(shop_cancel_items.order_id,
									   shop_cancel_items.product_id,
									   shop_cancel_items.quantity, 'cancellation',
									   shop_cancel_items.reason);
	RETURN ordered - cancelled - shop_cancel_items.quantity;
END
$$;

/*
 * Expire these orders: lock the placed ones past their expires_at that are
 * free (SKIP LOCKED: one that shop_pay() or a cancel holds is left to
 * them), lock their products, and give every line back ('expiry').  With
 * wait_for_products false nothing waits: only the products free or held by
 * the caller are locked (SKIP LOCKED), and only the orders whose products
 * all are are expired.  Returns how many.
 */
CREATE FUNCTION @extschema@.shop_expire(candidates bigint[], max_orders integer,
										wait_for_products boolean)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	due			bigint[];
	locked		bigint[];
	line		record;
BEGIN
	due := ARRAY(
		SELECT o.id FROM @extschema@.orders AS o
		 WHERE o.id = ANY (shop_expire.candidates)
		   AND o.status = 'placed' AND o.expires_at <= now()
		 ORDER BY o.expires_at, o.id
		 LIMIT shop_expire.max_orders
		   FOR UPDATE SKIP LOCKED);
	IF cardinality(due) = 0 THEN
		RETURN 0;
	END IF;
	IF shop_expire.wait_for_products THEN
		PERFORM @extschema@.shop_lock_products(ARRAY(
			SELECT DISTINCT oi.product_id FROM @extschema@.order_items AS oi
			 WHERE oi.order_id = ANY (due)));
	ELSE
		locked := ARRAY(
			SELECT p.id FROM @extschema@.products AS p
			 WHERE p.id IN (SELECT oi.product_id FROM @extschema@.order_items AS oi
							 WHERE oi.order_id = ANY (due))
			   FOR NO KEY UPDATE SKIP LOCKED);
		due := ARRAY(
			SELECT d.id FROM unnest(due) AS d(id)
			 WHERE NOT EXISTS (SELECT FROM @extschema@.order_items AS oi
								WHERE oi.order_id = d.id
								  AND oi.quantity > oi.cancelled_quantity
								  AND NOT oi.product_id = ANY (locked)));
	END IF;
	FOR line IN
		SELECT oi.order_id, oi.product_id, oi.quantity - oi.cancelled_quantity AS left_over
		  FROM @extschema@.order_items AS oi
		 WHERE oi.order_id = ANY (due) AND oi.quantity > oi.cancelled_quantity
		 ORDER BY oi.order_id, oi.product_id
	LOOP
		PERFORM @extschema@.shop_give_back(line.order_id, line.product_id,
										   line.left_over, 'expiry',
										   'payment window expired');
	END LOOP;
	RETURN cardinality(due);
END
$$;

/*
 * shop_expire_orders(max_orders): cancel up to max_orders placed orders
 * past their expires_at, oldest first, giving their stock back through the
 * ledger; returns how many.  Safe to run concurrently with checkouts,
 * shop_pay() and itself; schedule it every minute (pg_cron, README.md).
 */
CREATE FUNCTION @extschema@.shop_expire_orders(max_orders integer DEFAULT 1000)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF shop_expire_orders.max_orders IS NULL OR shop_expire_orders.max_orders <= 0 THEN
		RAISE EXCEPTION 'max_orders must be positive'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('Got %s.', coalesce(shop_expire_orders.max_orders::text, 'NULL'));
	END IF;
	RETURN @extschema@.shop_expire(ARRAY(
		SELECT o.id FROM @extschema@.orders AS o
		 WHERE o.status = 'placed' AND o.expires_at IS NOT NULL
		   AND o.expires_at <= now()
		 ORDER BY o.expires_at
		 LIMIT shop_expire_orders.max_orders * 2),
		shop_expire_orders.max_orders, true);
END
$$;

/*
 * The checkout's last resort before SH001 (checkout.c): expire the placed
 * orders past their expires_at that hold units of the short products,
 * waiting for no lock (shop_expire without waiting).  Returns how many
 * orders were expired.  Runs as the extension's owner, so that a role that
 * may only check out gets expired stock back; not executable by PUBLIC
 * (checkout.c calls it directly).
 */
CREATE FUNCTION @extschema@.shop_reclaim_expired(short_ids bigint[])
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN @extschema@.shop_expire(ARRAY(
		SELECT o.id FROM @extschema@.orders AS o
		 WHERE o.status = 'placed' AND o.expires_at IS NOT NULL
		   AND o.expires_at <= now()
		   AND EXISTS (SELECT FROM @extschema@.order_items AS oi
						WHERE oi.order_id = o.id
						  AND oi.product_id = ANY (shop_reclaim_expired.short_ids)
						  AND oi.quantity > oi.cancelled_quantity)
		 ORDER BY o.expires_at
		 LIMIT 100), 100, false);
END
$$;

/*
 * shop_set_purchase_limit(product_id, max_per_customer): at most that many
 * units of the product per customer, over their orders not cancelled; NULL
 * removes the limit.  Returns the limit.
 */
CREATE FUNCTION @extschema@.shop_set_purchase_limit(product_id bigint,
													max_per_customer integer)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF shop_set_purchase_limit.product_id IS NULL THEN
		RAISE EXCEPTION 'product id must not be NULL'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF shop_set_purchase_limit.max_per_customer <= 0 THEN
		RAISE EXCEPTION 'a purchase limit must be positive'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('Got %s for product %s.', shop_set_purchase_limit.max_per_customer,
								  shop_set_purchase_limit.product_id),
				  HINT = 'To remove the limit, pass NULL.';
	END IF;
	IF NOT EXISTS (SELECT FROM @extschema@.products AS p
					WHERE p.id = shop_set_purchase_limit.product_id) THEN
		RAISE EXCEPTION 'product % does not exist', shop_set_purchase_limit.product_id
			USING ERRCODE = 'SH004';
	END IF;
	IF shop_set_purchase_limit.max_per_customer IS NULL THEN
		DELETE FROM @extschema@.purchase_limits AS l
		 WHERE l.product_id = shop_set_purchase_limit.product_id;
	ELSE
		INSERT INTO @extschema@.purchase_limits AS l (product_id, max_per_customer)
		VALUES (shop_set_purchase_limit.product_id, shop_set_purchase_limit.max_per_customer)
		ON CONFLICT ON CONSTRAINT purchase_limits_pkey
		DO UPDATE SET max_per_customer = excluded.max_per_customer;
	END IF;
	RETURN shop_set_purchase_limit.max_per_customer;
END
$$;

-- Count cancelled and expired orders in the statistics (stats.c)
CREATE FUNCTION @extschema@.shop_count_cancelled_order()
RETURNS trigger
AS 'MODULE_PATHNAME', 'shop_count_cancelled_order'
LANGUAGE C;

CREATE TRIGGER orders_count_cancelled
	AFTER UPDATE OF status ON @extschema@.orders
	FOR EACH ROW
	WHEN (OLD.status <> 'cancelled' AND NEW.status = 'cancelled')
	EXECUTE FUNCTION @extschema@.shop_count_cancelled_order();

/* ----------------------------------------------------- ledger, storefront */

-- A missing reason is checked in one place, shop_require_reason()
/*
 * shop_restock(product_id, quantity, reason): add quantity (> 0) to the
 * product's stock; returns the new stock.
 */
CREATE OR REPLACE FUNCTION @extschema@.shop_restock(product_id bigint, quantity integer,
										 reason text)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	new_stock	integer;
	locked		record;
BEGIN
	IF shop_restock.product_id IS NULL OR shop_restock.quantity IS NULL THEN
		RAISE EXCEPTION 'product id and quantity must not be NULL'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF shop_restock.quantity <= 0 THEN
		RAISE EXCEPTION 'restock quantity must be positive'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('Got %s for product %s.', shop_restock.quantity,
								  shop_restock.product_id),
				  HINT = 'To lower the stock, use shop_adjust_stock() with the stock counted.';
	END IF;
	PERFORM @extschema@.shop_require_reason(shop_restock.reason,
		'Say where the stock came from, e.g. a delivery note number.');

	-- Slots or not: lock, then put the new stock on sale (spread again)
	locked := @extschema@.shop_lock_stock(shop_restock.product_id);
	IF locked.stock::bigint + shop_restock.quantity > 2147483647 THEN
		RAISE EXCEPTION 'stock of product % would exceed the largest integer',
			shop_restock.product_id
			USING ERRCODE = 'numeric_value_out_of_range',
				  DETAIL = format('It is %s; adding %s would make %s.', locked.stock,
								  shop_restock.quantity,
								  locked.stock::bigint + shop_restock.quantity);
	END IF;
	new_stock := locked.stock + shop_restock.quantity;
	PERFORM @extschema@.shop_spread_stock(shop_restock.product_id, new_stock,
										  locked.slots);

	INSERT INTO @extschema@.stock_movements
		(product_id, kind, quantity, stock_after, reason)
	VALUES (shop_restock.product_id, 'restock', shop_restock.quantity, new_stock,
			shop_restock.reason);
	RETURN new_stock;
END
$$;

/*
 * shop_adjust_stock(product_id, new_stock, reason): set the stock to what was
 * counted (shrinkage, damage, a recount); returns the new stock.  The
 * movement recorded is the difference from what the books say (movements
 * minus sales), not from the stock column: so an adjustment also reconciles
 * a stock that was changed behind the ledger's back.
 */
CREATE OR REPLACE FUNCTION @extschema@.shop_adjust_stock(product_id bigint, new_stock integer,
											  reason text)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	booked_stock bigint;
	locked		record;
BEGIN
	IF shop_adjust_stock.product_id IS NULL OR shop_adjust_stock.new_stock IS NULL THEN
		RAISE EXCEPTION 'product id and new stock must not be NULL'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF shop_adjust_stock.new_stock < 0 THEN
		RAISE EXCEPTION 'stock cannot be negative'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('Got %s for product %s.', shop_adjust_stock.new_stock,
								  shop_adjust_stock.product_id);
	END IF;
	PERFORM @extschema@.shop_require_reason(shop_adjust_stock.reason,
		'Say why the stock changed, e.g. "recount after damage".');

	-- Lock the product first: no sale or movement can slip in between
	locked := @extschema@.shop_lock_stock(shop_adjust_stock.product_id);
	SELECT coalesce((SELECT sum(sm.quantity) FROM @extschema@.stock_movements AS sm
					  WHERE sm.product_id = shop_adjust_stock.product_id), 0)
		 - coalesce((SELECT sum(oi.quantity) FROM @extschema@.order_items AS oi
					  WHERE oi.product_id = shop_adjust_stock.product_id), 0)
	  INTO booked_stock;

	PERFORM @extschema@.shop_spread_stock(shop_adjust_stock.product_id,
										  shop_adjust_stock.new_stock, locked.slots);
	INSERT INTO @extschema@.stock_movements
		(product_id, kind, quantity, stock_after, reason)
	VALUES (shop_adjust_stock.product_id, 'adjustment',
			shop_adjust_stock.new_stock - booked_stock, shop_adjust_stock.new_stock,
			shop_adjust_stock.reason);
	RETURN shop_adjust_stock.new_stock;
END
$$;


/*
 * shop_check_integrity(): one row per problem, none when consistent:
 * a product whose stock is not its movements minus its sales, an order
 * without lines, an order whose total is not the sum of its lines, a line
 * whose cancelled units are not the stock its cancellations gave back, a
 * cancelled order with units not cancelled.
 */
CREATE OR REPLACE FUNCTION @extschema@.shop_check_integrity()
RETURNS TABLE (problem text, product_id bigint, order_id bigint, detail text)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT 'stock_mismatch', p.id, NULL::bigint,
		   format('stock is %s, but movements %s minus sales %s make %s',
				  ps.stock, coalesce(m.moved, 0), coalesce(s.sold, 0),
				  coalesce(m.moved, 0) - coalesce(s.sold, 0))
	  FROM @extschema@.products AS p
	  JOIN @extschema@.product_stock AS ps ON ps.product_id = p.id
	  LEFT JOIN (SELECT sm.product_id, sum(sm.quantity) AS moved
				   FROM @extschema@.stock_movements AS sm
				  GROUP BY sm.product_id) AS m ON m.product_id = p.id
	  LEFT JOIN (SELECT oi.product_id, sum(oi.quantity) AS sold
				   FROM @extschema@.order_items AS oi
				  GROUP BY oi.product_id) AS s ON s.product_id = p.id
	 WHERE ps.stock <> coalesce(m.moved, 0) - coalesce(s.sold, 0)
	UNION ALL
	SELECT 'order_without_lines', NULL, o.id,
		   format('order %s of customer %s has no lines', o.id, o.customer_id)
	  FROM @extschema@.orders AS o
	 WHERE NOT EXISTS (SELECT FROM @extschema@.order_items AS oi
						WHERE oi.order_id = o.id)
	UNION ALL
	SELECT 'order_total_mismatch', NULL, o.id,
		   format('total_cents is %s, but its lines add up to %s',
				  o.total_cents, l.lines_total)
	  FROM @extschema@.orders AS o
	  JOIN (SELECT oi.order_id, sum(oi.quantity * oi.unit_price_cents) AS lines_total
			  FROM @extschema@.order_items AS oi
			 GROUP BY oi.order_id) AS l ON l.order_id = o.id
	 WHERE o.total_cents <> l.lines_total
	UNION ALL
	SELECT 'cancellation_mismatch', oi.product_id, oi.order_id,
		   format('%s units cancelled, but its cancellations gave back %s',
				  oi.cancelled_quantity, coalesce(b.given_back, 0))
	  FROM @extschema@.order_items AS oi
	  LEFT JOIN (SELECT sm.order_id, sm.product_id, sum(sm.quantity) AS given_back
				   FROM @extschema@.stock_movements AS sm
				  WHERE sm.order_id IS NOT NULL
				  GROUP BY sm.order_id, sm.product_id) AS b
		ON b.order_id = oi.order_id AND b.product_id = oi.product_id
	 WHERE oi.cancelled_quantity <> coalesce(b.given_back, 0)
	UNION ALL
	SELECT 'cancelled_order_not_given_back', oi.product_id, o.id,
		   format('order %s is cancelled, but %s of %s units were given back',
				  o.id, oi.cancelled_quantity, oi.quantity)
	  FROM @extschema@.orders AS o
	  JOIN @extschema@.order_items AS oi ON oi.order_id = o.id
	 WHERE o.status = 'cancelled' AND oi.cancelled_quantity <> oi.quantity
	 ORDER BY 1, 2, 3
$$;

-- Two more columns: the purchase limit and what the customer has bought
DROP FUNCTION @extschema@.shop_cart_status(bigint);

/*
 * shop_cart_status(customer_id): the cart as the storefront shows it, one
 * row per line in product id order, with the stock available now, the
 * product's purchase limit (NULL: none) and how much of it the customer
 * has bought, and whether a checkout would succeed now (the same on every
 * row).  No rows: the cart is empty.  Takes no row locks and writes
 * nothing, so it runs in read-only transactions and on hot standbys.
 */
CREATE FUNCTION @extschema@.shop_cart_status(customer_id bigint)
RETURNS TABLE (product_id bigint, name text, requested integer,
			   available integer, can_fulfil boolean,
			   checkout_would_succeed boolean, purchase_limit integer,
			   already_bought bigint)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF shop_cart_status.customer_id IS NULL THEN
		RAISE EXCEPTION 'customer id must not be NULL'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF NOT EXISTS (SELECT FROM @extschema@.customers AS c
					WHERE c.id = shop_cart_status.customer_id) THEN
		RAISE EXCEPTION 'customer % does not exist', shop_cart_status.customer_id
			USING ERRCODE = 'SH003';
	END IF;

	RETURN QUERY
	SELECT l.product_id, l.name, l.requested, l.available, l.can_fulfil,
		   bool_and(l.can_fulfil) OVER (), l.purchase_limit, l.already_bought
	  FROM (SELECT ci.product_id, p.name, ci.quantity AS requested,
				   ps.stock AS available, lim.max_per_customer AS purchase_limit,
				   b.bought AS already_bought,
				   ps.stock >= ci.quantity
				   AND (lim.max_per_customer IS NULL
						OR b.bought + ci.quantity <= lim.max_per_customer) AS can_fulfil
			  FROM @extschema@.cart_items AS ci
			  JOIN @extschema@.products AS p ON p.id = ci.product_id
			  JOIN @extschema@.product_stock AS ps ON ps.product_id = p.id
			  LEFT JOIN @extschema@.purchase_limits AS lim ON lim.product_id = p.id
			  CROSS JOIN LATERAL (
					-- the customer's orders, each probing its line (OFFSET 0:
					-- never a scan of every sale of a hot product)
					SELECT coalesce(sum(x.left_over), 0) AS bought
					  FROM @extschema@.orders AS o
					 CROSS JOIN LATERAL (
							SELECT oi.quantity - oi.cancelled_quantity AS left_over
							  FROM @extschema@.order_items AS oi
							 WHERE oi.order_id = o.id AND oi.product_id = ci.product_id
							OFFSET 0) AS x
					 WHERE o.customer_id = shop_cart_status.customer_id
					   AND o.status <> 'cancelled') AS b
			 WHERE ci.customer_id = shop_cart_status.customer_id) AS l
	 ORDER BY l.product_id;
END
$$;

/* ---------------------------------------------------------------- roles */

/*
 * shop_grant_app(role): what a storefront's database role needs, and nothing
 * more: check out (both forms), pay and show the cart (functions that run
 * with the extension owner's rights, SECURITY DEFINER), read the products,
 * the stock on sale, the orders and their lines and the purchase limits,
 * and write cart_items.  No write on any other table, no stock or order
 * administration.  Run it as the extension's owner.
 */
CREATE FUNCTION @extschema@.shop_grant_app(role regrole)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	-- the extension's schema, quoted as needed (regnamespace's output)
	schema_name text := (SELECT e.extnamespace::regnamespace::text
						   FROM pg_extension AS e WHERE e.extname = 'checkout');
BEGIN
	IF shop_grant_app.role IS NULL THEN
		RAISE EXCEPTION 'role must not be NULL'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	EXECUTE format('GRANT USAGE ON SCHEMA %s TO %s', schema_name, shop_grant_app.role);
	EXECUTE format('GRANT EXECUTE ON FUNCTION %1$s.shop_checkout(bigint), %1$s.shop_checkout(bigint, text),'
				   ' %1$s.shop_pay(bigint, text), %1$s.shop_cart_status(bigint) TO %2$s',
				   schema_name, shop_grant_app.role);
	EXECUTE format('GRANT SELECT ON %1$s.products, %1$s.product_stock, %1$s.orders,'
				   ' %1$s.order_items, %1$s.purchase_limits TO %2$s',
				   schema_name, shop_grant_app.role);
	EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %1$s.cart_items TO %2$s',
				   schema_name, shop_grant_app.role);
END
$$;

/*
 * shop_grant_admin(role): the stock and order administration functions
 * (SECURITY DEFINER: the role needs no write on any table) and read access
 * to every table of the shop.  Run it as the extension's owner.
 */
CREATE FUNCTION @extschema@.shop_grant_admin(role regrole)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	-- the extension's schema, quoted as needed (regnamespace's output)
	schema_name text := (SELECT e.extnamespace::regnamespace::text
						   FROM pg_extension AS e WHERE e.extname = 'checkout');
BEGIN
	IF shop_grant_admin.role IS NULL THEN
		RAISE EXCEPTION 'role must not be NULL'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	EXECUTE format('GRANT USAGE ON SCHEMA %s TO %s', schema_name, shop_grant_admin.role);
	EXECUTE format('GRANT EXECUTE ON FUNCTION %1$s.shop_restock(bigint, integer, text),'
				   ' %1$s.shop_adjust_stock(bigint, integer, text),'
				   ' %1$s.shop_split_stock(bigint, integer), %1$s.shop_merge_stock(bigint),'
				   ' %1$s.shop_cancel_order(bigint, text),'
				   ' %1$s.shop_cancel_items(bigint, bigint, integer, text),'
				   ' %1$s.shop_expire_orders(integer), %1$s.shop_set_purchase_limit(bigint, integer),'
				   ' %1$s.shop_purge_idempotency_keys(), %1$s.shop_check_integrity(),'
				   ' %1$s.shop_cart_status(bigint), %1$s.shop_checkout_stats_reset() TO %2$s',
				   schema_name, shop_grant_admin.role);
	EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %s TO %s',
				   schema_name, shop_grant_admin.role);
END
$$;

/* ----------------------------------------------------------- privileges */

-- 1.0's functions that now run with the owner's rights
ALTER FUNCTION @extschema@.shop_checkout(bigint)
	SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION @extschema@.shop_split_stock(bigint, integer) SECURITY DEFINER;
ALTER FUNCTION @extschema@.shop_merge_stock(bigint) SECURITY DEFINER;


-- Internal helpers: for the functions that use them and for roles granted them
REVOKE ALL ON FUNCTION @extschema@.shop_lock_stock(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.shop_spread_stock(bigint, integer, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.shop_record_opening_stock() FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.shop_give_back(bigint, bigint, integer, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.shop_lock_products(bigint[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.shop_lock_order(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.shop_require_reason(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.shop_expire(bigint[], integer, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.shop_reclaim_expired(bigint[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.shop_count_cancelled_order() FROM PUBLIC;

-- The functions that run with the owner's rights: only for roles granted
-- them (shop_grant_app, shop_grant_admin)
REVOKE ALL ON FUNCTION @extschema@.shop_checkout(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.shop_checkout(bigint, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.shop_pay(bigint, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.shop_cart_status(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.shop_restock(bigint, integer, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.shop_adjust_stock(bigint, integer, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.shop_split_stock(bigint, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.shop_merge_stock(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.shop_cancel_order(bigint, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.shop_cancel_items(bigint, bigint, integer, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.shop_expire_orders(integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.shop_set_purchase_limit(bigint, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.shop_purge_idempotency_keys() FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.shop_check_integrity() FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.shop_grant_app(regrole) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.shop_grant_admin(regrole) FROM PUBLIC;
