/* checkout--1.2--1.3.sql: from 1.2 to 1.3 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION checkout UPDATE TO '1.3'" to load this file. \quit

/*
 * A reset cannot lose the default location.  Test frameworks reset a
 * database between tests by truncating every table (TRUNCATE ... RESTART
 * IDENTITY CASCADE, DatabaseCleaner, Django's flush) or deleting every row;
 * in 1.2 that removed location 1, and from then on every INSERT INTO
 * products failed on the opening-stock movement's foreign key.  Location 1
 * is every shop's (its stock is products.stock and the stock slots): after
 * any statement that truncates or deletes from locations, it is there
 * again, as a fresh install has it.  Other locations a reset removes stay
 * removed, as any row of the shop's.
 */
CREATE FUNCTION @extschema@.shop_keep_default_location()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	INSERT INTO @extschema@.locations (id, name)
	SELECT 1, 'default'
	 WHERE NOT EXISTS (SELECT FROM @extschema@.locations AS l WHERE l.id OPERATOR(pg_catalog.=) 1)
	ON CONFLICT DO NOTHING;
	IF NOT EXISTS (SELECT FROM @extschema@.locations AS l WHERE l.id OPERATOR(pg_catalog.=) 1) THEN
		RAISE EXCEPTION 'the default location cannot be recreated'
			USING ERRCODE = '55000',
				  DETAIL = 'Another location is named "default".',
				  HINT = 'Rename that location, then delete or truncate again.';
	END IF;
	RETURN NULL;
END
$$;

REVOKE ALL ON FUNCTION @extschema@.shop_keep_default_location() FROM PUBLIC;

CREATE TRIGGER locations_keep_default_after_truncate
	AFTER TRUNCATE ON @extschema@.locations
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.shop_keep_default_location();

CREATE TRIGGER locations_keep_default_after_delete
	AFTER DELETE ON @extschema@.locations
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.shop_keep_default_location();

/*
 * What a shop uses, cached per backend (features.c).  A checkout of a shop
 * that never had a purchase limit, a location other than the default, a
 * preorder, a voucher code or a stock slot runs no statement for it; since 1.3 each
 * backend remembers that instead of looking at the table on every call.
 * The first row of each of these tables must tell every backend: this
 * trigger invalidates the table's relcache entry when the inserting
 * transaction commits, and each backend then looks again.
 */
CREATE FUNCTION @extschema@.shop_feature_used()
RETURNS trigger
LANGUAGE C
AS 'MODULE_PATHNAME', 'shop_feature_used';

REVOKE ALL ON FUNCTION @extschema@.shop_feature_used() FROM PUBLIC;

CREATE TRIGGER purchase_limits_feature_used
	AFTER INSERT ON @extschema@.purchase_limits
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.shop_feature_used();

CREATE TRIGGER location_stock_feature_used
	AFTER INSERT ON @extschema@.location_stock
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.shop_feature_used();

CREATE TRIGGER preorders_feature_used
	AFTER INSERT ON @extschema@.preorders
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.shop_feature_used();

CREATE TRIGGER voucher_codes_feature_used
	AFTER INSERT ON @extschema@.voucher_codes
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.shop_feature_used();

/*
 * A shop that never split a product's stock into slots reads no slot: the
 * first slot must tell every backend too
 */
CREATE TRIGGER stock_slots_feature_used
	AFTER INSERT ON @extschema@.stock_slots
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.shop_feature_used();

/*
 * Stock slots of a location other than the default (1.3).  A hot product
 * whose preferred location is not the default had every buyer lock the
 * product's row and the location's row (1.2); now a location's stock of a
 * product can be split over several rows here, as the default's is over
 * stock_slots, and a buyer takes one free slot without waiting
 * (locations.c).  The location_stock row keeps what is not in a slot (0
 * after shop_split_location_stock()); the location's stock on sale is its
 * row plus its slots (shop_location_stock(), stock_by_location).
 */
CREATE TABLE @extschema@.location_stock_slots (
	product_id	bigint NOT NULL,
	location_id bigint NOT NULL,
	slot		integer NOT NULL CHECK (slot >= 0 AND slot < 64),
	stock		integer NOT NULL CHECK (stock >= 0),
	PRIMARY KEY (product_id, location_id, slot),
	FOREIGN KEY (product_id, location_id) REFERENCES @extschema@.location_stock
		ON DELETE CASCADE
);

SELECT pg_catalog.pg_extension_config_dump('@extschema@.location_stock_slots', '');

COMMENT ON TABLE @extschema@.location_stock_slots IS
'Stock of a hot product at a location other than the default, split over several rows; see shop_split_location_stock()';

CREATE TRIGGER location_stock_slots_feature_used
	AFTER INSERT OR DELETE ON @extschema@.location_stock_slots
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.shop_feature_used();

/*
 * A backend remembers the located hot products it served from a slot: the
 * location strictly preferred to every other, split into slots
 * (locations.c).  A split or merge (above), a product's first row in a
 * location (location_stock_feature_used) and a location changed (its
 * priority, its retirement) make every backend forget them at commit.
 */
CREATE TRIGGER locations_changed
	AFTER UPDATE ON @extschema@.locations
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.shop_feature_used();

/*
 * A backend remembers a voucher it saw used up, so that a crowd that keeps
 * trying it costs what a sold-out rejection does (voucher.c).  Whatever can
 * make it usable again invalidates the voucher tables, and every backend
 * forgets: a use given back (remaining grows), slots added or removed, the
 * voucher or its codes changed.  Taking a use (remaining falls) fires
 * nothing.
 */
CREATE TRIGGER vouchers_changed
	AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON @extschema@.vouchers
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.shop_feature_used();

CREATE TRIGGER voucher_codes_changed
	AFTER UPDATE OR DELETE OR TRUNCATE ON @extschema@.voucher_codes
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.shop_feature_used();

CREATE TRIGGER voucher_slots_changed
	AFTER INSERT OR DELETE OR TRUNCATE ON @extschema@.voucher_slots
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.shop_feature_used();

CREATE TRIGGER voucher_slots_use_back
	AFTER UPDATE ON @extschema@.voucher_slots
	FOR EACH ROW WHEN (NEW.remaining > OLD.remaining)
	EXECUTE FUNCTION @extschema@.shop_feature_used();

/* --------------------------------------------------------- order events */

/*
 * Order events (events.c): every change of an order is written, in the
 * order's own transaction, to the sink checkout.events names: off (the
 * default), pgq (the PgQ queue checkout.events_queue) or logical (a
 * transactional logical decoding message with the prefix
 * 'checkout.order_event').  Each event has an id from this sequence: a
 * consumer drops a repeat by it.  Its state is dumped with the shop's
 * data, so that a restored shop never gives an id twice.  Past orders get
 * no events: a consumer starts from the orders table (docs/reference.md).
 */
CREATE SEQUENCE @extschema@.order_event_ids;
SELECT pg_catalog.pg_extension_config_dump('@extschema@.order_event_ids', '');

/*
 * shop_order_event(kind, order_id, data): write an event of the change the
 * calling function made, with data's fields; returns its id, NULL when
 * checkout.events is off.  The functions below call it; shop_checkout()
 * writes its own placed event in C.
 */
CREATE FUNCTION @extschema@.shop_order_event(kind text, order_id bigint, data jsonb)
RETURNS bigint
LANGUAGE C
AS 'MODULE_PATHNAME', 'shop_order_event';

REVOKE ALL ON FUNCTION @extschema@.shop_order_event(text, bigint, jsonb) FROM PUBLIC;

/*
 * shop_events_create_queue(queue_name): create the PgQ queue of the order
 * events (checkout.events_queue when NULL or omitted), for a shop that sets
 * checkout.events = pgq; returns its name.  Creating it again changes
 * nothing.  Raises 55000 when the pgq extension is not installed.  The
 * extension creates nothing in pgq's schema unless this is called.
 */
CREATE FUNCTION @extschema@.shop_events_create_queue(queue_name text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	queue		text := coalesce(shop_events_create_queue.queue_name,
								 current_setting('checkout.events_queue', true),
								 'checkout_orders');
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_extension AS e WHERE e.extname = 'pgq') THEN
		RAISE EXCEPTION 'extension "pgq" is not installed in this database'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Install Debian''s postgresql-NN-pgq3 package, then CREATE EXTENSION pgq.';
	END IF;
	PERFORM pgq.create_queue(queue);
	RETURN queue;
END
$$;

REVOKE ALL ON FUNCTION @extschema@.shop_events_create_queue(text) FROM PUBLIC;

/*
 * The functions that change orders, as in 1.2, each writing its change's
 * event: paid, cancelled (whole, or the lines and quantities of a partial
 * cancel), expired, preorder_filled.
 */

/*
 * shop_pay(order_id, payment_ref): mark a placed order paid; returns its
 * status, 'paid'.  Paying it again with the same reference changes nothing.
 * A cancelled order, one past its expires_at, or one paid with another
 * reference raises SH007 and changes nothing.
 */
CREATE OR REPLACE FUNCTION @extschema@.shop_pay(order_id bigint, payment_ref text)
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
	IF pg_catalog.current_setting('checkout.events', true) IS DISTINCT FROM 'off' THEN
		PERFORM @extschema@.shop_order_event('paid', shop_pay.order_id,
			jsonb_build_object('status', 'paid', 'customer_id', o.customer_id,
							   'total_cents', o.total_cents,
							   'payment_ref', shop_pay.payment_ref, 'paid_at', now()));
	END IF;
	RETURN 'paid';
END
$$;

/*
 * shop_cancel_order(order_id, reason): cancel what is left of an order,
 * putting its stock back through the ledger; returns its status,
 * 'cancelled'.  Cancelling a cancelled order changes nothing.
 */
CREATE OR REPLACE FUNCTION @extschema@.shop_cancel_order(order_id bigint, reason text)
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	line		record;
	given		jsonb := '[]';
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
		given := given || jsonb_build_array(jsonb_build_object(
			'product_id', line.product_id, 'quantity', line.left_over));
	END LOOP;
	-- an order whose lines were all cancelled already
	UPDATE @extschema@.orders AS o
	   SET status = 'cancelled', cancelled_at = now(),
		   cancel_reason = shop_cancel_order.reason
	 WHERE o.id = shop_cancel_order.order_id AND o.status <> 'cancelled';
	IF pg_catalog.current_setting('checkout.events', true) IS DISTINCT FROM 'off' THEN
		PERFORM @extschema@.shop_order_event('cancelled', shop_cancel_order.order_id,
			jsonb_build_object('status', 'cancelled', 'whole', true,
							   'reason', shop_cancel_order.reason, 'lines', given));
	END IF;
	RETURN 'cancelled';
END
$$;

/*
 * shop_cancel_items(order_id, product_id, quantity, reason): cancel
 * `quantity` units of one line of an order, putting them back through the
 * ledger; returns the units of that line still ordered.  When nothing of
 * the order is left, it is cancelled.
 */
CREATE OR REPLACE FUNCTION @extschema@.shop_cancel_items(order_id bigint, product_id bigint,
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
	IF pg_catalog.current_setting('checkout.events', true) IS DISTINCT FROM 'off' THEN
		PERFORM @extschema@.shop_order_event('cancelled', shop_cancel_items.order_id,
			jsonb_build_object('status', (SELECT o.status FROM @extschema@.orders AS o
										   WHERE o.id = shop_cancel_items.order_id),
							   'whole', false, 'reason', shop_cancel_items.reason,
							   'lines', jsonb_build_array(jsonb_build_object(
								   'product_id', shop_cancel_items.product_id,
								   'quantity', shop_cancel_items.quantity))));
	END IF;
	RETURN ordered - cancelled - shop_cancel_items.quantity;
END
$$;

/*
 * Expire these orders: lock the placed ones past their expires_at that are
 * free (SKIP LOCKED: one that shop_pay() or a cancel holds is left to
 * them), lock their products (a bundle's parts too, 1.3), and give every
 * line back ('expiry').  With wait_for_products false nothing waits: only
 * the products free or held by the caller are locked (SKIP LOCKED), and
 * only the orders whose products all are are expired.  Returns how many.
 */
CREATE OR REPLACE FUNCTION @extschema@.shop_expire(candidates bigint[], max_orders integer,
										wait_for_products boolean)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	due			bigint[];
	locked		bigint[];
	line		record;
	expiring	jsonb[];
	expired		jsonb;
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
		-- the products of their lines, and the parts of their bundles (1.3)
		locked := ARRAY(
			SELECT p.id FROM @extschema@.products AS p
			 WHERE p.id IN (SELECT oi.product_id FROM @extschema@.order_items AS oi
							 WHERE oi.order_id = ANY (due)
							UNION ALL
							SELECT op.product_id FROM @extschema@.order_item_parts AS op
							 WHERE op.order_id = ANY (due))
			   FOR NO KEY UPDATE SKIP LOCKED);
		due := ARRAY(
			SELECT d.id FROM unnest(due) AS d(id)
			 WHERE NOT EXISTS (SELECT FROM @extschema@.order_items AS oi
								WHERE oi.order_id = d.id
								  AND oi.quantity > oi.cancelled_quantity
								  AND NOT oi.product_id = ANY (locked))
			   AND NOT EXISTS (SELECT FROM @extschema@.order_item_parts AS op
								 JOIN @extschema@.order_items AS bl
								   ON bl.order_id = op.order_id AND bl.product_id = op.bundle_id
								WHERE op.order_id = d.id
								  AND bl.quantity > bl.cancelled_quantity
								  AND NOT op.product_id = ANY (locked)));
	END IF;
	-- each order's event names the units it gives back
	IF pg_catalog.current_setting('checkout.events', true) IS DISTINCT FROM 'off' THEN
		expiring := ARRAY(
			SELECT jsonb_build_object('order_id', oi.order_id, 'lines',
					   jsonb_agg(jsonb_build_object('product_id', oi.product_id,
													'quantity', oi.quantity - oi.cancelled_quantity)
								 ORDER BY oi.product_id))
			  FROM @extschema@.order_items AS oi
			 WHERE oi.order_id = ANY (due) AND oi.quantity > oi.cancelled_quantity
			 GROUP BY oi.order_id
			 ORDER BY oi.order_id);
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
	FOREACH expired IN ARRAY coalesce(expiring, '{}') LOOP
		PERFORM @extschema@.shop_order_event('expired', (expired ->> 'order_id')::bigint,
			jsonb_build_object('status', 'cancelled', 'reason', 'payment window expired',
							   'lines', expired -> 'lines'));
	END LOOP;
	RETURN cardinality(due);
END
$$;

/*
 * Fill the product's open preorders, oldest order first, with up to
 * `available` units on sale at the location (its stock before the fills):
 * each line filled records where (preorder_fills) and a 'preorder_fill'
 * movement of its own (negative, naming the order).  Returns the units
 * filled; the caller puts the rest on sale.  The caller holds the
 * product's row (shop_lock_stock or shop_lock_products); the preorders row
 * is locked after it, as a checkout does.
 */
CREATE OR REPLACE FUNCTION @extschema@.shop_fill_preorders(product_id bigint, location_id bigint,
												available integer, reason text)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	open_units	integer;
	line		record;
	give		integer;
	filled		integer := 0;
BEGIN
	SELECT po.open_preorders INTO open_units FROM @extschema@.preorders AS po
	 WHERE po.product_id = shop_fill_preorders.product_id
	   FOR NO KEY UPDATE;
	IF coalesce(open_units, 0) = 0 OR shop_fill_preorders.available <= 0 THEN
		RETURN 0;
	END IF;
	FOR line IN
		SELECT oi.order_id,
			   oi.preordered_quantity - oi.preorder_filled_quantity
				 - oi.preorder_released_quantity AS open_units
		  FROM @extschema@.order_items AS oi
		 WHERE oi.product_id = shop_fill_preorders.product_id
		   AND oi.preordered_quantity > oi.preorder_filled_quantity + oi.preorder_released_quantity
		 ORDER BY oi.order_id
	LOOP
		EXIT WHEN filled = shop_fill_preorders.available;
		give := least(line.open_units, shop_fill_preorders.available - filled);
		UPDATE @extschema@.order_items AS oi
		   SET preorder_filled_quantity = oi.preorder_filled_quantity + give
		 WHERE oi.order_id = line.order_id AND oi.product_id = shop_fill_preorders.product_id;
		INSERT INTO @extschema@.preorder_fills AS f (order_id, product_id, location_id, quantity)
		VALUES (line.order_id, shop_fill_preorders.product_id, shop_fill_preorders.location_id, give)
		ON CONFLICT ON CONSTRAINT preorder_fills_pkey
		DO UPDATE SET quantity = f.quantity + excluded.quantity;
		filled := filled + give;
		IF pg_catalog.current_setting('checkout.events', true) IS DISTINCT FROM 'off' THEN
			PERFORM @extschema@.shop_order_event('preorder_filled', line.order_id,
				jsonb_build_object('product_id', shop_fill_preorders.product_id,
								   'location_id', shop_fill_preorders.location_id,
								   'quantity', give,
								   'preordered_open_quantity', line.open_units - give));
		END IF;
		INSERT INTO @extschema@.stock_movements
			(product_id, kind, quantity, stock_after, reason, order_id, location_id)
		VALUES (shop_fill_preorders.product_id, 'preorder_fill', -give,
				shop_fill_preorders.available - filled, shop_fill_preorders.reason,
				line.order_id, shop_fill_preorders.location_id);
	END LOOP;
	UPDATE @extschema@.preorders AS po SET open_preorders = po.open_preorders - filled
	 WHERE po.product_id = shop_fill_preorders.product_id;
	RETURN filled;
END
$$;

/* ------------------------------------------------- the web's checkout */

/*
 * What a key's first call asked for (1.3): its voucher code (ASCII letters
 * lower-cased, as codes match) and, for shop_place_order(), its lines
 * (sorted by product); NULL for a key recorded before 1.3, which any
 * request replays.  The same key with another request is SH015.
 */
ALTER TABLE @extschema@.idempotency_keys ADD COLUMN request jsonb;

/*
 * shop_place_order(customer_id, lines, idempotency_key, voucher_code): the
 * checkout of a web request in one call (placeorder.c).  It sets the
 * customer's cart to the lines ([{"product_id": 1, "quantity": 2,
 * "accept_preorder": false}, ...]) and checks it out, as shop_checkout()
 * does, in a subtransaction of its own; returns one row: the outcome
 * ('placed', 'replayed' or 'refused'), the order (id, status, total,
 * discount, payment deadline, lines with their unit prices) or the
 * refusal (its SQLSTATE, message and figures).  A refusal (SH001, SH005,
 * SH009, SH010, SH011) changes nothing, as the error would.
 */
CREATE FUNCTION @extschema@.shop_place_order(customer_id bigint, lines jsonb,
											 idempotency_key text DEFAULT NULL,
											 voucher_code text DEFAULT NULL,
											 OUT outcome text, OUT order_id bigint,
											 OUT status text, OUT total_cents bigint,
											 OUT discount_cents bigint,
											 OUT payment_deadline timestamptz,
											 OUT order_lines jsonb, OUT sqlstate text,
											 OUT message text, OUT refusal jsonb)
RETURNS record
AS 'MODULE_PATHNAME', 'shop_place_order'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off;

COMMENT ON FUNCTION @extschema@.shop_place_order(bigint, jsonb, text, text) IS
'Check out these lines for the customer in one call: the order placed or replayed, or the refusal as data';

REVOKE ALL ON FUNCTION @extschema@.shop_place_order(bigint, jsonb, text, text) FROM PUBLIC;

/*
 * shop_grant_app(role): 1.2's grants and shop_place_order()
 */
CREATE OR REPLACE FUNCTION @extschema@.shop_grant_app(role regrole)
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
				   ' %1$s.shop_checkout(bigint, text, text),'
				   ' %1$s.shop_place_order(bigint, jsonb, text, text),'
				   ' %1$s.shop_pay(bigint, text), %1$s.shop_cart_status(bigint),'
				   ' %1$s.shop_cart_status(bigint, text) TO %2$s',
				   schema_name, shop_grant_app.role);
	EXECUTE format('GRANT SELECT ON %1$s.products, %1$s.product_stock, %1$s.orders,'
				   ' %1$s.order_items, %1$s.purchase_limits, %1$s.vouchers,'
				   ' %1$s.locations, %1$s.stock_by_location, %1$s.order_item_allocations,'
				   ' %1$s.preorders, %1$s.bundle_parts, %1$s.order_item_parts TO %2$s',
				   schema_name, shop_grant_app.role);
	EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %1$s.cart_items TO %2$s',
				   schema_name, shop_grant_app.role);
END
$$;

/* ------------------------------------------------------- the row checks */

/*
 * The CHECK constraints of orders and order_items as one C function per
 * table (rowchecks.c): PostgreSQL rebuilds a table's CHECK expressions from
 * their text for every statement that writes it, and 1.2's six were a
 * sixth of a checkout's CPU.  The rules are the same, and a row that breaks
 * one is refused with 23514 naming the constraint it replaced.  NOT VALID:
 * every row of 1.2 met the same rules; nothing is scanned.
 */
CREATE FUNCTION @extschema@.shop_order_row_check(status text, discount_cents bigint,
												 voucher_id bigint, voucher_code_id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'shop_order_row_check'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION @extschema@.shop_order_item_row_check(quantity integer,
													  cancelled_quantity integer,
													  discount_cents bigint,
													  preordered_quantity integer,
													  preorder_filled_quantity integer,
													  preorder_released_quantity integer)
RETURNS boolean
AS 'MODULE_PATHNAME', 'shop_order_item_row_check'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

ALTER TABLE @extschema@.orders
	DROP CONSTRAINT orders_status_check,
	DROP CONSTRAINT orders_discount_cents_check,
	DROP CONSTRAINT orders_voucher_code_check,
	ADD CONSTRAINT orders_row_check
		CHECK (@extschema@.shop_order_row_check(status, discount_cents, voucher_id, voucher_code_id))
		NOT VALID;

ALTER TABLE @extschema@.order_items
	DROP CONSTRAINT order_items_check,
	DROP CONSTRAINT order_items_discount_cents_check,
	DROP CONSTRAINT order_items_preorder_check,
	ADD CONSTRAINT order_items_row_check
		CHECK (@extschema@.shop_order_item_row_check(quantity, cancelled_quantity, discount_cents,
													 preordered_quantity, preorder_filled_quantity,
													 preorder_released_quantity))
		NOT VALID;

/* -------------------------------------------------------------- bundles */

/*
 * Bundles (docs/reference.md, "Bundles"; bundles.c).  A bundle
 * is a product with parts: "Phone + case + charger" sold as one.  It has
 * no stock of its own (products.stock stays 0, no slots, no other
 * location): what it can sell is the least, over its parts, of
 * floor(part's stock / quantity per bundle).  A part is a plain product,
 * never a bundle.
 */
CREATE TABLE @extschema@.bundle_parts (
	bundle_id	bigint NOT NULL REFERENCES @extschema@.products ON DELETE CASCADE,
	product_id	bigint NOT NULL REFERENCES @extschema@.products,
	quantity	integer NOT NULL CHECK (quantity > 0),
	PRIMARY KEY (bundle_id, product_id),
	CHECK (bundle_id <> product_id)
);

-- the bundles a part is in (its stock decides theirs)
CREATE INDEX bundle_parts_product_id_idx ON @extschema@.bundle_parts (product_id);

SELECT pg_catalog.pg_extension_config_dump('@extschema@.bundle_parts', '');

COMMENT ON TABLE @extschema@.bundle_parts IS
'The parts of each bundle: a bundle (a product) sells quantity units of each part per unit';

/*
 * shop_create_bundle(name, price_cents, parts): a new product that sells
 * its parts together; parts is a JSON array of {"product_id", "quantity"}
 * (at least one, each product once, none a bundle).  Returns the bundle's
 * product id.  22004 for a NULL argument, 22023 for parts that are not such
 * an array or name a bundle, SH004 for a part that does not exist.
 */
CREATE FUNCTION @extschema@.shop_create_bundle(name text, price_cents bigint, parts jsonb)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	bundle		bigint;
	missing		bigint;
	nested		bigint;
BEGIN
	IF shop_create_bundle.name IS NULL OR shop_create_bundle.price_cents IS NULL
	   OR shop_create_bundle.parts IS NULL THEN
		RAISE EXCEPTION 'bundle name, price and parts must not be NULL'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF jsonb_typeof(shop_create_bundle.parts) IS DISTINCT FROM 'array'
	   OR jsonb_array_length(shop_create_bundle.parts) = 0
	   OR EXISTS (SELECT FROM jsonb_array_elements(shop_create_bundle.parts) AS e
				   WHERE jsonb_typeof(e) <> 'object'
					  OR jsonb_typeof(e -> 'product_id') IS DISTINCT FROM 'number'
					  OR jsonb_typeof(e -> 'quantity') IS DISTINCT FROM 'number'
					  OR (e ->> 'product_id') !~ '^[0-9]+$'
					  OR (e ->> 'quantity') !~ '^[0-9]+$'
					  OR (e ->> 'quantity')::numeric NOT BETWEEN 1 AND 2147483647
					  OR (e ->> 'product_id')::numeric > 9223372036854775807)
	   OR (SELECT count(DISTINCT e ->> 'product_id') <> count(*)
			 FROM jsonb_array_elements(shop_create_bundle.parts) AS e) THEN
		RAISE EXCEPTION 'parts must be a JSON array of 1 or more {"product_id", "quantity"} objects, each product once'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('Got %s.', left(shop_create_bundle.parts::text, 200)),
				  HINT = 'For example [{"product_id": 2, "quantity": 1}, {"product_id": 3, "quantity": 2}].';
	END IF;

	SELECT (e ->> 'product_id')::bigint INTO missing
	  FROM jsonb_array_elements(shop_create_bundle.parts) AS e
	 WHERE NOT EXISTS (SELECT FROM @extschema@.products AS p
						WHERE p.id = (e ->> 'product_id')::bigint)
	 ORDER BY 1 LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'product % does not exist', missing
			USING ERRCODE = 'SH004',
				  DETAIL = 'A bundle''s parts must be products of the shop.';
	END IF;
	SELECT bp.bundle_id INTO nested
	  FROM jsonb_array_elements(shop_create_bundle.parts) AS e
	  JOIN @extschema@.bundle_parts AS bp ON bp.bundle_id = (e ->> 'product_id')::bigint
	 ORDER BY 1 LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'product % is a bundle: a bundle cannot be a part', nested
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Name the bundle''s parts instead.';
	END IF;

	INSERT INTO @extschema@.products (name, price_cents, stock)
	VALUES (shop_create_bundle.name, shop_create_bundle.price_cents, 0)
	RETURNING id INTO bundle;
	INSERT INTO @extschema@.bundle_parts (bundle_id, product_id, quantity)
	SELECT bundle, (e ->> 'product_id')::bigint, (e ->> 'quantity')::integer
	  FROM jsonb_array_elements(shop_create_bundle.parts) AS e;
	RETURN bundle;
END
$$;

REVOKE ALL ON FUNCTION @extschema@.shop_create_bundle(text, bigint, jsonb) FROM PUBLIC;

/*
 * A bundle has no stock of its own: restocking, adjusting up, splitting it
 * or stocking it in a location is refused (SH016), saying to restock its
 * parts.  Checkouts only take stock (NEW.stock < OLD.stock): the trigger
 * never fires for them.
 */
CREATE FUNCTION @extschema@.shop_refuse_bundle_stock()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	-- the row's product: TG_ARGV[0] names its column (id or product_id)
	product		bigint := (to_jsonb(NEW) ->> TG_ARGV[0])::bigint;
	is_bundle	boolean;
BEGIN
	-- the table's schema, which follows the extension's when it is renamed
	EXECUTE format('SELECT EXISTS (SELECT FROM %I.bundle_parts AS bp WHERE bp.bundle_id = $1)',
				   TG_TABLE_SCHEMA)
	   INTO is_bundle USING product;
	IF is_bundle THEN
		RAISE EXCEPTION 'product % is a bundle: it has no stock of its own', product
			USING ERRCODE = 'SH016',
				  HINT = 'Restock or adjust its parts (bundle_parts).';
	END IF;
	RETURN NEW;
END
$$;

REVOKE ALL ON FUNCTION @extschema@.shop_refuse_bundle_stock() FROM PUBLIC;

-- AFTER, not BEFORE: a BEFORE row trigger makes every update of products
-- (each checkout's, per line) fetch and lock the old row again to test its
-- WHEN; an AFTER one tests it on the row the foreign keys' triggers fetch
-- anyway, and its error undoes the update just the same
CREATE TRIGGER products_bundle_stock
	AFTER UPDATE OF stock ON @extschema@.products
	FOR EACH ROW WHEN (NEW.stock > OLD.stock)
	EXECUTE FUNCTION @extschema@.shop_refuse_bundle_stock('id');

CREATE TRIGGER stock_slots_bundle_stock
	BEFORE INSERT ON @extschema@.stock_slots
	FOR EACH ROW EXECUTE FUNCTION @extschema@.shop_refuse_bundle_stock('product_id');

CREATE TRIGGER location_stock_bundle_stock
	BEFORE INSERT ON @extschema@.location_stock
	FOR EACH ROW EXECUTE FUNCTION @extschema@.shop_refuse_bundle_stock('product_id');

-- nor preorders: a bundle sells only while every part is there
CREATE TRIGGER preorders_bundle_stock
	BEFORE INSERT ON @extschema@.preorders
	FOR EACH ROW EXECUTE FUNCTION @extschema@.shop_refuse_bundle_stock('product_id');

/*
 * The stock on sale of each product over all its locations; a bundle's is
 * what its parts can make: the least over its parts of floor(part's stock /
 * quantity per bundle)
 */
CREATE OR REPLACE VIEW @extschema@.product_stock AS
	SELECT p.id AS product_id,
		   coalesce((SELECT min((pp.stock
								 + coalesce((SELECT sum(s.stock)
											   FROM @extschema@.stock_slots AS s
											  WHERE s.product_id = pp.id), 0)
								 + coalesce((SELECT sum(ls.stock)
											   FROM @extschema@.location_stock AS ls
											  WHERE ls.product_id = pp.id), 0)
								 + coalesce((SELECT sum(ss.stock)
											   FROM @extschema@.location_stock_slots AS ss
											  WHERE ss.product_id = pp.id), 0)) / bp.quantity)
					   FROM @extschema@.bundle_parts AS bp
					   JOIN @extschema@.products AS pp ON pp.id = bp.product_id
					  WHERE bp.bundle_id = p.id),
					(p.stock + coalesce((SELECT sum(s.stock)
										   FROM @extschema@.stock_slots AS s
										  WHERE s.product_id = p.id), 0)
							 + coalesce((SELECT sum(ls.stock)
										   FROM @extschema@.location_stock AS ls
										  WHERE ls.product_id = p.id), 0)
							 + coalesce((SELECT sum(ss.stock)
										   FROM @extschema@.location_stock_slots AS ss
										  WHERE ss.product_id = p.id), 0)))::integer AS stock,
		   (SELECT count(*) FROM @extschema@.stock_slots AS s
			 WHERE s.product_id = p.id)::integer AS slots
	  FROM @extschema@.products AS p;

/*
 * The parts each bundle line of an order took, per unit of the line (the
 * bundle's recipe when it was sold)
 */
CREATE TABLE @extschema@.order_item_parts (
	order_id	bigint NOT NULL,
	bundle_id	bigint NOT NULL,
	product_id	bigint NOT NULL REFERENCES @extschema@.products,
	quantity	integer NOT NULL CHECK (quantity > 0),
	PRIMARY KEY (order_id, bundle_id, product_id),
	FOREIGN KEY (order_id, bundle_id) REFERENCES @extschema@.order_items ON DELETE CASCADE
);

CREATE INDEX order_item_parts_product_id_idx ON @extschema@.order_item_parts (product_id);

SELECT pg_catalog.pg_extension_config_dump('@extschema@.order_item_parts', '');

/*
 * Where an order's units of a product came from (order_item_allocations)
 * now covers a bundle's parts too: its rows are the order's units of the
 * product from stock, its own line's and its bundles' together.  A part
 * needs no line of its own, so the rows point at their order (the
 * integrity check compares them with the lines and parts: allocation_mismatch)
 */
ALTER TABLE @extschema@.order_item_allocations
	DROP CONSTRAINT order_item_allocations_order_id_product_id_fkey,
	ADD CONSTRAINT order_item_allocations_order_id_fkey
		FOREIGN KEY (order_id) REFERENCES @extschema@.orders ON DELETE CASCADE;

COMMENT ON TABLE @extschema@.order_item_allocations IS
'Where an order''s units of a product came from, its line''s and its bundles'' parts together (none: all from the default location)';

/*
 * A bundle is never restocked or adjusted, even to what it has: its stock
 * is its parts' (SH016)
 */
CREATE TRIGGER stock_movements_bundle_stock
	BEFORE INSERT ON @extschema@.stock_movements
	FOR EACH ROW WHEN (NEW.kind IN ('restock', 'adjustment', 'transfer'))
	EXECUTE FUNCTION @extschema@.shop_refuse_bundle_stock('product_id');

-- the first bundle tells every backend that the shop has bundles (features.c)
CREATE TRIGGER bundle_parts_feature_used
	AFTER INSERT ON @extschema@.bundle_parts
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.shop_feature_used();

/*
 * Lock the rows of these products, and of the parts of those that are
 * bundles, in the order checkouts lock them, then their location rows,
 * then their locations' stock slots (1.3)
 */
CREATE OR REPLACE FUNCTION @extschema@.shop_lock_products(product_ids bigint[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	ids			bigint[] := shop_lock_products.product_ids
		|| ARRAY(SELECT bp.product_id FROM @extschema@.bundle_parts AS bp
				  WHERE bp.bundle_id = ANY (shop_lock_products.product_ids));
BEGIN
	PERFORM FROM @extschema@.products AS p
	 WHERE p.id = ANY (ids)
	 ORDER BY EXISTS (SELECT FROM @extschema@.stock_slots AS s
					   WHERE s.product_id = p.id), p.id
	   FOR NO KEY UPDATE OF p;
	PERFORM FROM @extschema@.location_stock AS ls
	 WHERE ls.product_id = ANY (ids)
	 ORDER BY ls.product_id, ls.location_id
	   FOR NO KEY UPDATE;
	PERFORM FROM @extschema@.location_stock_slots AS s
	 WHERE s.product_id = ANY (ids)
	 ORDER BY s.product_id, s.location_id, s.slot
	   FOR NO KEY UPDATE;
END
$$;

/*
 * Give back `quantity` units of the line (order_id, product_id): as 1.2
 * did, or, for a bundle's line, its parts (1.3)
 */
CREATE OR REPLACE FUNCTION @extschema@.shop_give_back(order_id bigint, product_id bigint,
													 quantity integer, kind text,
													 reason text)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	remaining	integer;
	left_to_give integer := shop_give_back.quantity;
	open_units	integer;
	part		record;
	held		record;
	give		integer;
BEGIN
	-- a bundle's line: its parts go back, each where it came from (the
	-- order's allocation rows of the part, else the default), the bundle
	-- having no stock
	IF EXISTS (SELECT FROM @extschema@.order_item_parts AS op
				WHERE op.order_id = shop_give_back.order_id
				  AND op.bundle_id = shop_give_back.product_id) THEN
		UPDATE @extschema@.order_items AS oi
		   SET cancelled_quantity = oi.cancelled_quantity + shop_give_back.quantity
		 WHERE oi.order_id = shop_give_back.order_id
		   AND oi.product_id = shop_give_back.product_id;
		FOR part IN
			SELECT op.product_id, op.quantity FROM @extschema@.order_item_parts AS op
			 WHERE op.order_id = shop_give_back.order_id
			   AND op.bundle_id = shop_give_back.product_id
			 ORDER BY op.product_id
		LOOP
			left_to_give := shop_give_back.quantity * part.quantity;
			FOR held IN
				SELECT a.location_id, a.quantity - a.cancelled_quantity AS units
				  FROM @extschema@.order_item_allocations AS a
				 WHERE a.order_id = shop_give_back.order_id
				   AND a.product_id = part.product_id
				   AND a.quantity > a.cancelled_quantity
				 ORDER BY a.location_id
			LOOP
				EXIT WHEN left_to_give = 0;
				give := least(held.units, left_to_give);
				UPDATE @extschema@.order_item_allocations AS a
				   SET cancelled_quantity = a.cancelled_quantity + give
				 WHERE a.order_id = shop_give_back.order_id
				   AND a.product_id = part.product_id
				   AND a.location_id = held.location_id;
				PERFORM @extschema@.shop_return_units(part.product_id, held.location_id, give,
													  shop_give_back.kind, shop_give_back.reason,
													  shop_give_back.order_id);
				left_to_give := left_to_give - give;
			END LOOP;
			IF left_to_give > 0 THEN
				PERFORM @extschema@.shop_return_units(part.product_id, 1, left_to_give,
													  shop_give_back.kind, shop_give_back.reason,
													  shop_give_back.order_id);
			END IF;
		END LOOP;
		left_to_give := 0;
	ELSE
		UPDATE @extschema@.order_items AS oi
		   SET cancelled_quantity = oi.cancelled_quantity + shop_give_back.quantity
		 WHERE oi.order_id = shop_give_back.order_id
		   AND oi.product_id = shop_give_back.product_id
		RETURNING oi.preordered_quantity - oi.preorder_filled_quantity - oi.preorder_released_quantity
		  INTO open_units;

		-- preordered units not filled yet first: they free the cap, no stock moves
		IF open_units > 0 THEN
			give := least(open_units, left_to_give);
			UPDATE @extschema@.order_items AS oi
			   SET preorder_released_quantity = oi.preorder_released_quantity + give
			 WHERE oi.order_id = shop_give_back.order_id
			   AND oi.product_id = shop_give_back.product_id;
			UPDATE @extschema@.preorders AS po SET open_preorders = po.open_preorders - give
			 WHERE po.product_id = shop_give_back.product_id;
			left_to_give := left_to_give - give;
		END IF;

		-- then filled preordered units, each back where it was filled, then
		-- units from stock, each back where it came from
		FOR part IN
			SELECT true AS filled, f.location_id, f.quantity - f.cancelled_quantity AS held
			  FROM @extschema@.preorder_fills AS f
			 WHERE f.order_id = shop_give_back.order_id
			   AND f.product_id = shop_give_back.product_id
			   AND f.quantity > f.cancelled_quantity
			UNION ALL
			SELECT false, a.location_id, a.quantity - a.cancelled_quantity
			  FROM @extschema@.order_item_allocations AS a
			 WHERE a.order_id = shop_give_back.order_id
			   AND a.product_id = shop_give_back.product_id
			   AND a.quantity > a.cancelled_quantity
			 ORDER BY 1 DESC, 2
		LOOP
			EXIT WHEN left_to_give = 0;
			give := least(part.held, left_to_give);
			IF part.filled THEN
				UPDATE @extschema@.preorder_fills AS f
				   SET cancelled_quantity = f.cancelled_quantity + give
				 WHERE f.order_id = shop_give_back.order_id
				   AND f.product_id = shop_give_back.product_id
				   AND f.location_id = part.location_id;
			ELSE
				UPDATE @extschema@.order_item_allocations AS a
				   SET cancelled_quantity = a.cancelled_quantity + give
				 WHERE a.order_id = shop_give_back.order_id
				   AND a.product_id = shop_give_back.product_id
				   AND a.location_id = part.location_id;
			END IF;
			PERFORM @extschema@.shop_return_units(shop_give_back.product_id, part.location_id, give,
												  shop_give_back.kind, shop_give_back.reason,
												  shop_give_back.order_id);
			left_to_give := left_to_give - give;
		END LOOP;
		-- a line without allocation rows: its units from stock all from the default
		IF left_to_give > 0 THEN
			PERFORM @extschema@.shop_return_units(shop_give_back.product_id, 1, left_to_give,
												  shop_give_back.kind, shop_give_back.reason,
												  shop_give_back.order_id);
		END IF;
	END IF;

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
 * The integrity check knows bundles (1.3): a bundle's line sells its parts,
 * not the bundle (which has no stock), and its cancellations give its parts
 * back
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
				  d.stock, coalesce(m.moved, 0), coalesce(s.sold, 0) - coalesce(e.elsewhere, 0),
				  coalesce(m.moved, 0) - coalesce(s.sold, 0) + coalesce(e.elsewhere, 0))
	  FROM @extschema@.products AS p
	  CROSS JOIN LATERAL (
		SELECT p.stock + coalesce((SELECT sum(sl.stock) FROM @extschema@.stock_slots AS sl
									WHERE sl.product_id = p.id), 0) AS stock) AS d
	  LEFT JOIN (SELECT sm.product_id, sum(sm.quantity) AS moved
				   FROM @extschema@.stock_movements AS sm
				  WHERE sm.location_id = 1
				  GROUP BY sm.product_id) AS m ON m.product_id = p.id
	  LEFT JOIN (SELECT x.product_id, sum(x.sold) AS sold
				   FROM (SELECT oi.product_id, oi.quantity - oi.preordered_quantity AS sold
						   FROM @extschema@.order_items AS oi
						  WHERE NOT EXISTS (SELECT FROM @extschema@.order_item_parts AS op
											 WHERE op.order_id = oi.order_id
											   AND op.bundle_id = oi.product_id)
						 UNION ALL
						 SELECT op.product_id, op.quantity * bl.quantity
						   FROM @extschema@.order_item_parts AS op
						   JOIN @extschema@.order_items AS bl
							 ON bl.order_id = op.order_id AND bl.product_id = op.bundle_id) AS x
				  GROUP BY x.product_id) AS s ON s.product_id = p.id
	  LEFT JOIN (SELECT a.product_id, sum(a.quantity) AS elsewhere
				   FROM @extschema@.order_item_allocations AS a
				  WHERE a.location_id <> 1
				  GROUP BY a.product_id) AS e ON e.product_id = p.id
	 WHERE d.stock <> coalesce(m.moved, 0) - coalesce(s.sold, 0) + coalesce(e.elsewhere, 0)
	UNION ALL
	SELECT 'location_stock_mismatch', ls.product_id, NULL::bigint,
		   format('stock at location %s is %s, but its movements %s minus its sales %s make %s',
				  ls.location_id, h.stock, coalesce(m.moved, 0), coalesce(a.sold, 0),
				  coalesce(m.moved, 0) - coalesce(a.sold, 0))
	  FROM @extschema@.location_stock AS ls
	  -- the location's stock on sale: its row and its slots (1.3)
	 CROSS JOIN LATERAL (
		SELECT ls.stock + coalesce((SELECT sum(ss.stock)
									  FROM @extschema@.location_stock_slots AS ss
									 WHERE ss.product_id = ls.product_id
									   AND ss.location_id = ls.location_id), 0) AS stock) AS h
	  LEFT JOIN (SELECT sm.product_id, sm.location_id, sum(sm.quantity) AS moved
				   FROM @extschema@.stock_movements AS sm
				  WHERE sm.location_id <> 1
				  GROUP BY sm.product_id, sm.location_id) AS m
		ON m.product_id = ls.product_id AND m.location_id = ls.location_id
	  LEFT JOIN (SELECT al.product_id, al.location_id, sum(al.quantity) AS sold
				   FROM @extschema@.order_item_allocations AS al
				  WHERE al.location_id <> 1
				  GROUP BY al.product_id, al.location_id) AS a
		ON a.product_id = ls.product_id AND a.location_id = ls.location_id
	 WHERE h.stock <> coalesce(m.moved, 0) - coalesce(a.sold, 0)
	UNION ALL
	SELECT 'location_stock_mismatch', m.product_id, NULL::bigint,
		   format('location %s has movements of %s units but no stock row', m.location_id, m.moved)
	  FROM (SELECT sm.product_id, sm.location_id, sum(sm.quantity) AS moved
			  FROM @extschema@.stock_movements AS sm
			 WHERE sm.location_id <> 1
			 GROUP BY sm.product_id, sm.location_id) AS m
	 WHERE NOT EXISTS (SELECT FROM @extschema@.location_stock AS ls
						WHERE ls.product_id = m.product_id AND ls.location_id = m.location_id)
	UNION ALL
	SELECT 'allocation_mismatch', a.product_id, a.order_id,
		   format('%s units from stock (%s cancelled), but its allocations hold %s (%s cancelled)',
				  u.units, u.cancelled, a.allocated, a.cancelled)
	  FROM (SELECT al.order_id, al.product_id, sum(al.quantity) AS allocated,
				   sum(al.cancelled_quantity) AS cancelled
			  FROM @extschema@.order_item_allocations AS al
			 GROUP BY al.order_id, al.product_id) AS a
	  -- the order's units of the product from stock: its own line's, less
	  -- preorders, and its bundles' parts
	 CROSS JOIN LATERAL (
		SELECT coalesce(sum(x.units), 0) AS units, coalesce(sum(x.cancelled), 0) AS cancelled
		  FROM (SELECT oi.quantity - oi.preordered_quantity AS units,
					   oi.cancelled_quantity - oi.preorder_released_quantity
					   - coalesce((SELECT sum(pf.cancelled_quantity)
									 FROM @extschema@.preorder_fills AS pf
									WHERE pf.order_id = oi.order_id
									  AND pf.product_id = oi.product_id), 0) AS cancelled
				  FROM @extschema@.order_items AS oi
				 WHERE oi.order_id = a.order_id AND oi.product_id = a.product_id
				UNION ALL
				SELECT op.quantity * bl.quantity, op.quantity * bl.cancelled_quantity
				  FROM @extschema@.order_item_parts AS op
				  JOIN @extschema@.order_items AS bl
					ON bl.order_id = op.order_id AND bl.product_id = op.bundle_id
				 WHERE op.order_id = a.order_id AND op.product_id = a.product_id) AS x) AS u
	 WHERE a.allocated <> u.units OR a.cancelled <> u.cancelled
	UNION ALL
	SELECT 'preorder_over_cap', po.product_id, NULL::bigint,
		   format('%s preordered units open, over the cap of %s', po.open_preorders, po.max_preorders)
	  FROM @extschema@.preorders AS po
	 WHERE po.open_preorders > po.max_preorders
	UNION ALL
	SELECT 'preorder_open_mismatch', po.product_id, NULL::bigint,
		   format('%s preordered units counted open, but its order lines hold %s',
				  po.open_preorders, coalesce(l.open_units, 0))
	  FROM @extschema@.preorders AS po
	  LEFT JOIN (SELECT oi.product_id,
						sum(oi.preordered_quantity - oi.preorder_filled_quantity
							- oi.preorder_released_quantity) AS open_units
				   FROM @extschema@.order_items AS oi
				  WHERE oi.preordered_quantity > 0
				  GROUP BY oi.product_id) AS l ON l.product_id = po.product_id
	 WHERE po.open_preorders <> coalesce(l.open_units, 0)
	UNION ALL
	SELECT 'preorder_fill_mismatch', oi.product_id, oi.order_id,
		   format('%s preordered units filled, but its fills hold %s',
				  oi.preorder_filled_quantity, coalesce(f.filled, 0))
	  FROM @extschema@.order_items AS oi
	  LEFT JOIN (SELECT pf.order_id, pf.product_id, sum(pf.quantity) AS filled
				   FROM @extschema@.preorder_fills AS pf
				  GROUP BY pf.order_id, pf.product_id) AS f
		ON f.order_id = oi.order_id AND f.product_id = oi.product_id
	 WHERE oi.preordered_quantity > 0 AND oi.preorder_filled_quantity <> coalesce(f.filled, 0)
	UNION ALL
	SELECT 'stock_on_sale_with_open_preorders', po.product_id, NULL::bigint,
		   format('%s units on sale while %s preordered units wait', ps.stock, po.open_preorders)
	  FROM @extschema@.preorders AS po
	  JOIN @extschema@.product_stock AS ps ON ps.product_id = po.product_id
	 WHERE po.open_preorders > 0 AND ps.stock > 0
	UNION ALL
	SELECT 'order_without_lines', NULL, o.id,
		   format('order %s of customer %s has no lines', o.id, o.customer_id)
	  FROM @extschema@.orders AS o
	 WHERE NOT EXISTS (SELECT FROM @extschema@.order_items AS oi
						WHERE oi.order_id = o.id)
	UNION ALL
	SELECT 'order_total_mismatch', NULL, o.id,
		   CASE WHEN o.discount_cents = 0
				THEN format('total_cents is %s, but its lines add up to %s',
							o.total_cents, l.lines_total)
				ELSE format('total_cents is %s, but its lines add up to %s less a discount of %s',
							o.total_cents, l.lines_total, o.discount_cents) END
	  FROM @extschema@.orders AS o
	  JOIN (SELECT oi.order_id, sum(oi.quantity * oi.unit_price_cents) AS lines_total,
				   sum(oi.discount_cents) AS lines_discount
			  FROM @extschema@.order_items AS oi
			 GROUP BY oi.order_id) AS l ON l.order_id = o.id
	 WHERE o.total_cents <> l.lines_total - o.discount_cents
	UNION ALL
	SELECT 'order_discount_mismatch', NULL, o.id,
		   format('discount_cents is %s, but its lines'' discounts add up to %s',
				  o.discount_cents, l.lines_discount)
	  FROM @extschema@.orders AS o
	  JOIN LATERAL (SELECT sum(oi.discount_cents) AS lines_discount
					  FROM @extschema@.order_items AS oi
					 WHERE oi.order_id = o.id) AS l ON true
	 WHERE o.voucher_id IS NOT NULL
	   AND o.discount_cents <> l.lines_discount
	UNION ALL
	SELECT 'cancellation_mismatch', oi.product_id, oi.order_id,
		   format('%s units cancelled, but its cancellations gave back %s (and released %s preordered)',
				  oi.cancelled_quantity, coalesce(b.given_back, 0), oi.preorder_released_quantity)
	  FROM @extschema@.order_items AS oi
	  LEFT JOIN (SELECT sm.order_id, sm.product_id, sum(sm.quantity) AS given_back
				   FROM @extschema@.stock_movements AS sm
				  WHERE sm.order_id IS NOT NULL AND sm.kind IN ('cancellation', 'expiry')
				  GROUP BY sm.order_id, sm.product_id) AS b
		ON b.order_id = oi.order_id AND b.product_id = oi.product_id
	  -- what the order's bundles gave back of this product as their part
	  LEFT JOIN (SELECT op.order_id, op.product_id, sum(op.quantity * bl.cancelled_quantity) AS as_part
				   FROM @extschema@.order_item_parts AS op
				   JOIN @extschema@.order_items AS bl
					 ON bl.order_id = op.order_id AND bl.product_id = op.bundle_id
				  GROUP BY op.order_id, op.product_id) AS bp
		ON bp.order_id = oi.order_id AND bp.product_id = oi.product_id
	 WHERE NOT EXISTS (SELECT FROM @extschema@.order_item_parts AS op
						WHERE op.order_id = oi.order_id AND op.bundle_id = oi.product_id)
	   AND oi.cancelled_quantity <> coalesce(b.given_back, 0) - coalesce(bp.as_part, 0)
									+ oi.preorder_released_quantity
	UNION ALL
	SELECT 'cancellation_mismatch', bp.product_id, bp.order_id,
		   format('its bundles gave back %s units of this part, but its cancellations gave back %s',
				  bp.as_part, coalesce(b.given_back, 0))
	  FROM (SELECT op.order_id, op.product_id, sum(op.quantity * bl.cancelled_quantity) AS as_part
			  FROM @extschema@.order_item_parts AS op
			  JOIN @extschema@.order_items AS bl
				ON bl.order_id = op.order_id AND bl.product_id = op.bundle_id
			 GROUP BY op.order_id, op.product_id) AS bp
	  LEFT JOIN (SELECT sm.order_id, sm.product_id, sum(sm.quantity) AS given_back
				   FROM @extschema@.stock_movements AS sm
				  WHERE sm.order_id IS NOT NULL AND sm.kind IN ('cancellation', 'expiry')
				  GROUP BY sm.order_id, sm.product_id) AS b
		ON b.order_id = bp.order_id AND b.product_id = bp.product_id
	 WHERE NOT EXISTS (SELECT FROM @extschema@.order_items AS oi
						WHERE oi.order_id = bp.order_id AND oi.product_id = bp.product_id)
	   AND bp.as_part <> coalesce(b.given_back, 0)
	UNION ALL
	SELECT 'cancelled_order_not_given_back', oi.product_id, o.id,
		   format('order %s is cancelled, but %s of %s units were given back',
				  o.id, oi.cancelled_quantity, oi.quantity)
	  FROM @extschema@.orders AS o
	  JOIN @extschema@.order_items AS oi ON oi.order_id = o.id
	 WHERE o.status = 'cancelled' AND oi.cancelled_quantity <> oi.quantity
	UNION ALL
	SELECT CASE WHEN u.slots_used > u.used AND u.slots_used - u.used <= u.cancelled
				THEN 'cancelled_order_voucher_not_released'
				ELSE 'voucher_used_mismatch' END,
		   NULL, NULL,
		   format('voucher %s has %s uses left of %s, but %s orders not cancelled (%s cancelled)',
				  u.voucher_id, u.usage_limit - u.slots_used, u.usage_limit, u.used,
				  u.cancelled)
	  FROM (SELECT v.id AS voucher_id, v.usage_limit, c.used, c.cancelled,
				   v.usage_limit - (SELECT coalesce(sum(s.remaining), 0)
									  FROM @extschema@.voucher_slots AS s
									 WHERE s.voucher_id = v.id) AS slots_used
			  FROM @extschema@.vouchers AS v
			 CROSS JOIN LATERAL (
				SELECT count(*) FILTER (WHERE o.status <> 'cancelled') AS used,
					   count(*) FILTER (WHERE o.status = 'cancelled') AS cancelled
				  FROM @extschema@.orders AS o
				 WHERE o.voucher_id = v.id) AS c
			 WHERE v.usage_limit IS NOT NULL) AS u
	 WHERE u.slots_used <> u.used
	UNION ALL
	SELECT 'voucher_over_limit', NULL, NULL,
		   format('voucher %s has %s orders not cancelled, over its limit of %s',
				  u.voucher_id, u.used, u.usage_limit)
	  FROM @extschema@.voucher_usage AS u
	 WHERE u.used > u.usage_limit
	UNION ALL
	SELECT 'voucher_customer_over_limit', NULL, NULL,
		   format('voucher %s has %s orders not cancelled of customer %s, over its limit of %s per customer',
				  v.id, c.uses, c.customer_id, v.per_customer_limit)
	  FROM @extschema@.vouchers AS v
	 CROSS JOIN LATERAL (
		SELECT o.customer_id, count(*) AS uses
		  FROM @extschema@.orders AS o
		 WHERE o.voucher_id = v.id AND o.status <> 'cancelled'
		 GROUP BY o.customer_id) AS c
	 WHERE c.uses > v.per_customer_limit
	 ORDER BY 1, 2, 3, 4
$$;

/*
 * shop_notify_stock_changes(): as 1.2's, and a bundle is announced with its
 * parts (1.3): a flagged part flags the bundles it is in, so a bundle goes
 * sold out when a part sells out and comes back when the part does
 */
CREATE OR REPLACE FUNCTION @extschema@.shop_notify_stock_changes()
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p			record;
	flagged		bigint[];
	sent		integer := 0;
BEGIN
	LOCK TABLE @extschema@.sold_out_products IN EXCLUSIVE MODE;
	-- take the flags first, then read the stock on a later snapshot: a
	-- checkout flagging a product meanwhile waits for this run's end and
	-- flags it again for the next, or committed before the stock is read
	WITH taken AS (DELETE FROM @extschema@.stock_watch RETURNING product_id)
	SELECT coalesce(array_agg(t.product_id), '{}') INTO flagged FROM taken AS t;
	FOR p IN
		SELECT ps.product_id, ps.stock, (so.product_id IS NOT NULL) AS was_sold_out
		  FROM (SELECT unnest(flagged) AS product_id
				UNION
				SELECT bp.bundle_id FROM @extschema@.bundle_parts AS bp
				 WHERE bp.product_id = ANY (flagged)
				UNION
				SELECT s.product_id FROM @extschema@.sold_out_products AS s) AS k
		  JOIN @extschema@.product_stock AS ps ON ps.product_id = k.product_id
		  LEFT JOIN @extschema@.sold_out_products AS so ON so.product_id = k.product_id
		 ORDER BY ps.product_id
	LOOP
		IF p.stock = 0 AND NOT p.was_sold_out THEN
			INSERT INTO @extschema@.sold_out_products (product_id) VALUES (p.product_id);
			PERFORM pg_notify('checkout_stock', json_build_object(
				'product_id', p.product_id, 'stock', 0, 'state', 'sold_out')::text);
			sent := sent + 1;
		ELSIF p.stock > 0 AND p.was_sold_out THEN
			DELETE FROM @extschema@.sold_out_products AS s WHERE s.product_id = p.product_id;
			PERFORM pg_notify('checkout_stock', json_build_object(
				'product_id', p.product_id, 'stock', p.stock, 'state', 'back_in_stock')::text);
			sent := sent + 1;
		END IF;
	END LOOP;
	RETURN sent;
END
$$;

/*
 * The stock a location's books say it holds (1.2), counting the parts of
 * bundles sold as sales of the part (1.3)
 */
CREATE OR REPLACE FUNCTION @extschema@.shop_booked_stock(product_id bigint, location_id bigint)
RETURNS bigint
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT coalesce((SELECT sum(sm.quantity) FROM @extschema@.stock_movements AS sm
					  WHERE sm.product_id = shop_booked_stock.product_id
						AND sm.location_id = shop_booked_stock.location_id), 0)
		 - CASE WHEN shop_booked_stock.location_id = 1
				THEN coalesce((SELECT sum(oi.quantity - oi.preordered_quantity)
								 FROM @extschema@.order_items AS oi
								WHERE oi.product_id = shop_booked_stock.product_id), 0)
					 + coalesce((SELECT sum(op.quantity * bl.quantity)
								   FROM @extschema@.order_item_parts AS op
								   JOIN @extschema@.order_items AS bl
									 ON bl.order_id = op.order_id AND bl.product_id = op.bundle_id
								  WHERE op.product_id = shop_booked_stock.product_id), 0)
					 - coalesce((SELECT sum(a.quantity) FROM @extschema@.order_item_allocations AS a
								  WHERE a.product_id = shop_booked_stock.product_id
									AND a.location_id <> 1), 0)
				ELSE coalesce((SELECT sum(a.quantity) FROM @extschema@.order_item_allocations AS a
								WHERE a.product_id = shop_booked_stock.product_id
								  AND a.location_id = shop_booked_stock.location_id), 0)
		   END;
END;

/*
 * The checkout's last resort before SH001 (1.1): as before, and an order
 * whose bundles hold a short part is one too (1.3)
 */
CREATE OR REPLACE FUNCTION @extschema@.shop_reclaim_expired(short_ids bigint[])
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
		   AND (EXISTS (SELECT FROM @extschema@.order_items AS oi
						 WHERE oi.order_id = o.id
						   AND oi.product_id = ANY (shop_reclaim_expired.short_ids)
						   AND oi.quantity > oi.cancelled_quantity)
				OR EXISTS (SELECT FROM @extschema@.order_item_parts AS op
							 JOIN @extschema@.order_items AS bl
							   ON bl.order_id = op.order_id AND bl.product_id = op.bundle_id
							WHERE op.order_id = o.id
							  AND op.product_id = ANY (shop_reclaim_expired.short_ids)
							  AND bl.quantity > bl.cancelled_quantity))
		 ORDER BY o.expires_at
		 LIMIT 100), 100, false);
END
$$;

/*
 * The cart as the storefront shows it (1.1, 1.2), knowing bundles (1.3): a
 * bundle's line ships from where its parts do, and a line the cart shares
 * a part with (a bundle's part on its own too, two bundles of one part)
 * can be fulfilled only when the part's stock holds what they all need
 */
CREATE OR REPLACE FUNCTION @extschema@.shop_cart_sources(customer_id bigint)
RETURNS TABLE (product_id bigint, ships_from text, preordered integer)
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	WITH need AS (
		-- the cart's stock lines: each product once, its own line's units
		-- and its bundles' parts' together (a part is never preordered)
		SELECT x.product_id, sum(x.units) AS units, bool_or(x.accept_preorder) AS accept_preorder
		  FROM (SELECT ci.product_id, ci.quantity::bigint AS units, ci.accept_preorder
				  FROM @extschema@.cart_items AS ci
				 WHERE ci.customer_id = shop_cart_sources.customer_id
				   AND NOT EXISTS (SELECT FROM @extschema@.bundle_parts AS bp
									WHERE bp.bundle_id = ci.product_id)
				UNION ALL
				SELECT bp.product_id, ci.quantity::bigint * bp.quantity, false
				  FROM @extschema@.cart_items AS ci
				  JOIN @extschema@.bundle_parts AS bp ON bp.bundle_id = ci.product_id
				 WHERE ci.customer_id = shop_cart_sources.customer_id) AS x
		 GROUP BY x.product_id
	), line AS (
		SELECT n.product_id, least(n.units, ps.stock) AS from_stock,
			   CASE WHEN n.accept_preorder AND po.product_id IS NOT NULL
					 AND NOT EXISTS (SELECT FROM @extschema@.bundle_parts AS bp
									  WHERE bp.product_id = n.product_id
										AND bp.bundle_id IN (SELECT ci.product_id
															   FROM @extschema@.cart_items AS ci
															  WHERE ci.customer_id = shop_cart_sources.customer_id))
					THEN greatest(n.units - ps.stock, 0) ELSE 0 END AS preordered
		  FROM need AS n
		  JOIN @extschema@.product_stock AS ps ON ps.product_id = n.product_id
		  LEFT JOIN @extschema@.preorders AS po ON po.product_id = n.product_id
	), held AS (
		SELECT b.product_id, b.location_id, b.location_name, b.stock, b.priority
		  FROM @extschema@.stock_by_location AS b
		 WHERE NOT b.retired AND b.product_id IN (SELECT l.product_id FROM line AS l)
	), whole AS (
		SELECT h.location_name
		  FROM held AS h
		  JOIN line AS l ON l.product_id = h.product_id
		 GROUP BY h.location_id, h.location_name
		HAVING count(*) FILTER (WHERE h.stock >= l.from_stock) = (SELECT count(*) FROM line)
		 ORDER BY min(h.priority), sum(h.stock) DESC, h.location_id
		 LIMIT 1
	), source AS (
		SELECT l.product_id,
			   CASE WHEN l.from_stock = 0 THEN NULL
					ELSE coalesce((SELECT w.location_name FROM whole AS w),
								  (SELECT h.location_name FROM held AS h
									WHERE h.product_id = l.product_id AND h.stock >= l.from_stock
									ORDER BY h.priority, h.stock DESC, h.location_id
									LIMIT 1),
								  'split') END AS ships_from,
			   l.preordered::integer AS preordered
		  FROM line AS l
	)
	-- a line of the cart: its stock line's; a bundle's: where its parts
	-- ship from, when they agree
	SELECT ci.product_id,
		   CASE WHEN s.product_id IS NOT NULL THEN s.ships_from
				ELSE (SELECT CASE WHEN bool_and(ps.ships_from IS NULL) THEN NULL
								  WHEN count(DISTINCT ps.ships_from) = 1
									   AND bool_and(ps.ships_from IS NOT NULL)
								  THEN min(ps.ships_from)
								  ELSE 'split' END
						FROM @extschema@.bundle_parts AS bp
						JOIN source AS ps ON ps.product_id = bp.product_id
					   WHERE bp.bundle_id = ci.product_id) END,
		   coalesce(s.preordered, 0)
	  FROM @extschema@.cart_items AS ci
	  LEFT JOIN source AS s ON s.product_id = ci.product_id
	 WHERE ci.customer_id = shop_cart_sources.customer_id;
END;

CREATE OR REPLACE FUNCTION @extschema@.shop_cart_status(customer_id bigint)
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
	WITH shared AS (
		-- what the cart needs of each bundle's part, its own line's too
		-- (only a part of a bundle in the cart: a line on its own keeps its
		-- preorder rule)
		SELECT x.product_id, sum(x.units) AS units, ps.stock
		  FROM (SELECT ci.product_id, ci.quantity::bigint AS units, false AS of_bundle
				  FROM @extschema@.cart_items AS ci
				 WHERE ci.customer_id = shop_cart_status.customer_id
				UNION ALL
				SELECT bp.product_id, ci.quantity::bigint * bp.quantity, true
				  FROM @extschema@.cart_items AS ci
				  JOIN @extschema@.bundle_parts AS bp ON bp.bundle_id = ci.product_id
				 WHERE ci.customer_id = shop_cart_status.customer_id) AS x
		  JOIN @extschema@.product_stock AS ps ON ps.product_id = x.product_id
		 GROUP BY x.product_id, ps.stock
		HAVING bool_or(x.of_bundle)
	)
	SELECT l.product_id, l.name, l.requested, l.available, l.can_fulfil,
		   bool_and(l.can_fulfil) OVER (), l.purchase_limit, l.already_bought
	  FROM (SELECT ci.product_id, p.name, ci.quantity AS requested,
				   ps.stock AS available, lim.max_per_customer AS purchase_limit,
				   b.bought AS already_bought,
				   ps.stock + CASE WHEN ci.accept_preorder
								   THEN greatest(coalesce(po.max_preorders - po.open_preorders, 0), 0)
								   ELSE 0 END >= ci.quantity
				   AND (lim.max_per_customer IS NULL
						OR b.bought + ci.quantity <= lim.max_per_customer)
				   -- a part the cart needs more of, over its lines and
				   -- bundles, than is on sale (1.3)
				   AND NOT EXISTS (SELECT FROM shared AS sh
									WHERE sh.units > sh.stock
									  AND (sh.product_id = ci.product_id
										   OR sh.product_id IN (SELECT bp.product_id
																  FROM @extschema@.bundle_parts AS bp
																 WHERE bp.bundle_id = ci.product_id)))
					 AS can_fulfil
			  FROM @extschema@.cart_items AS ci
			  JOIN @extschema@.products AS p ON p.id = ci.product_id
			  JOIN @extschema@.product_stock AS ps ON ps.product_id = p.id
			  LEFT JOIN @extschema@.purchase_limits AS lim ON lim.product_id = p.id
			  LEFT JOIN @extschema@.preorders AS po ON po.product_id = p.id
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

/* shop_grant_admin(role): as 1.2's, bundles and located slots (1.3) */
CREATE OR REPLACE FUNCTION @extschema@.shop_grant_admin(role regrole)
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
	EXECUTE format('GRANT EXECUTE ON FUNCTION %1$s.shop_restock(bigint, integer, text, bigint),'
				   ' %1$s.shop_adjust_stock(bigint, integer, text, bigint),'
				   ' %1$s.shop_create_location(text, integer), %1$s.shop_retire_location(bigint),'
				   ' %1$s.shop_move_stock(bigint, bigint, bigint, integer, text),'
				   ' %1$s.shop_set_preorder(bigint, integer, date),'
				   ' %1$s.shop_split_stock(bigint, integer), %1$s.shop_merge_stock(bigint),'
				   ' %1$s.shop_cancel_order(bigint, text),'
				   ' %1$s.shop_cancel_items(bigint, bigint, integer, text),'
				   ' %1$s.shop_expire_orders(integer), %1$s.shop_set_purchase_limit(bigint, integer),'
				   ' %1$s.shop_purge_idempotency_keys(), %1$s.shop_check_integrity(),'
				   ' %1$s.shop_cart_status(bigint), %1$s.shop_cart_status(bigint, text),'
				   ' %1$s.shop_checkout_stats_reset(),'
				   ' %1$s.shop_create_voucher(text, integer, bigint, integer, integer,'
				   '                          timestamptz, timestamptz, bigint),'
				   ' %1$s.shop_end_voucher(bigint), %1$s.shop_add_voucher_code(bigint, text, boolean),'
				   ' %1$s.shop_generate_voucher_codes(bigint, integer, text),'
				   ' %1$s.shop_create_bundle(text, bigint, jsonb),'
				   ' %1$s.shop_split_location_stock(bigint, bigint, integer),'
				   ' %1$s.shop_merge_location_stock(bigint, bigint) TO %2$s',
				   schema_name, shop_grant_admin.role);
	EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %s TO %s',
				   schema_name, shop_grant_admin.role);
END
$$;

/* ---------------------------------------------- located stock in slots */

/*
 * Locking rules (1.3).  One order for every lock on a product's stock: its
 * row, its stock slots (slot order), its location_stock rows (location
 * order), then its locations' slots (location, slot order).  A checkout
 * takes them in that order, or takes one free slot alone without waiting
 * (a default's or a location's, SKIP LOCKED, holding nothing else of the
 * product: locations.c, slots.c).  shop_lock_stock() takes them all, so
 * that every function that reads a location's stock under it reads what
 * no checkout can change until its transaction ends.
 */
CREATE OR REPLACE FUNCTION @extschema@.shop_lock_stock(product_id bigint,
													   OUT stock integer, OUT slots integer)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	reserve		integer;
BEGIN
	SELECT p.stock INTO reserve
	  FROM @extschema@.products AS p
	 WHERE p.id = shop_lock_stock.product_id
	   FOR NO KEY UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'product % does not exist', shop_lock_stock.product_id
			USING ERRCODE = 'SH004';
	END IF;
	SELECT reserve + coalesce(sum(l.stock), 0), count(*)
	  INTO shop_lock_stock.stock, shop_lock_stock.slots
	  FROM (SELECT s.stock FROM @extschema@.stock_slots AS s
			 WHERE s.product_id = shop_lock_stock.product_id
			 ORDER BY s.slot
			   FOR NO KEY UPDATE) AS l;
	PERFORM FROM @extschema@.location_stock AS ls
	 WHERE ls.product_id = shop_lock_stock.product_id
	 ORDER BY ls.location_id
	   FOR NO KEY UPDATE;
	PERFORM FROM @extschema@.location_stock_slots AS s
	 WHERE s.product_id = shop_lock_stock.product_id
	 ORDER BY s.location_id, s.slot
	   FOR NO KEY UPDATE;
END
$$;

-- The default location's stock of a product, and a location's: its row and its slots (0: no row)
CREATE OR REPLACE FUNCTION @extschema@.shop_location_stock(product_id bigint, location_id bigint)
RETURNS integer
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT CASE WHEN shop_location_stock.location_id = 1
				THEN (SELECT p.stock + coalesce((SELECT sum(s.stock)
												   FROM @extschema@.stock_slots AS s
												  WHERE s.product_id = p.id), 0)
						FROM @extschema@.products AS p
					   WHERE p.id = shop_location_stock.product_id)
				ELSE coalesce((SELECT ls.stock
									  + coalesce((SELECT sum(s.stock)
													FROM @extschema@.location_stock_slots AS s
												   WHERE s.product_id = ls.product_id
													 AND s.location_id = ls.location_id), 0)
								 FROM @extschema@.location_stock AS ls
								WHERE ls.product_id = shop_location_stock.product_id
								  AND ls.location_id = shop_location_stock.location_id), 0)
		   END::integer;
END;

/*
 * Put `stock` on sale at a location other than the default, holding
 * shop_lock_stock(): in its row when it has no slots, else spread evenly
 * over its slots (the row keeps 0), as shop_spread_stock() does for the
 * default; its row is created when missing
 */
CREATE OR REPLACE FUNCTION @extschema@.shop_set_location_stock(product_id bigint,
															   location_id bigint,
															   stock integer)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	INSERT INTO @extschema@.location_stock AS ls (product_id, location_id, stock)
	VALUES (shop_set_location_stock.product_id, shop_set_location_stock.location_id,
			CASE WHEN EXISTS (SELECT FROM @extschema@.location_stock_slots AS s
							   WHERE s.product_id = shop_set_location_stock.product_id
								 AND s.location_id = shop_set_location_stock.location_id)
				 THEN 0 ELSE shop_set_location_stock.stock END)
	ON CONFLICT (product_id, location_id) DO UPDATE SET stock = excluded.stock;
	UPDATE @extschema@.location_stock_slots AS s
	   SET stock = shop_set_location_stock.stock / NULLIF(n.slots, 0)
				   + CASE WHEN s.slot < shop_set_location_stock.stock % NULLIF(n.slots, 0)
						  THEN 1 ELSE 0 END
	  FROM (SELECT count(*)::integer AS slots
			  FROM @extschema@.location_stock_slots AS c
			 WHERE c.product_id = shop_set_location_stock.product_id
			   AND c.location_id = shop_set_location_stock.location_id) AS n
	 WHERE s.product_id = shop_set_location_stock.product_id
	   AND s.location_id = shop_set_location_stock.location_id;
END;

-- The stock on sale of each product in each location that has a row for it (a location's: its row and slots)
CREATE OR REPLACE VIEW @extschema@.stock_by_location AS
	SELECT p.id AS product_id, l.id AS location_id, l.name AS location_name,
		   (p.stock + coalesce((SELECT sum(s.stock)
								  FROM @extschema@.stock_slots AS s
								 WHERE s.product_id = p.id), 0))::integer AS stock,
		   l.priority, l.retired_at IS NOT NULL AS retired
	  FROM @extschema@.products AS p
	  JOIN @extschema@.locations AS l ON l.id = 1
	UNION ALL
	SELECT ls.product_id, l.id, l.name,
		   (ls.stock + coalesce((SELECT sum(s.stock)
								   FROM @extschema@.location_stock_slots AS s
								  WHERE s.product_id = ls.product_id
									AND s.location_id = ls.location_id), 0))::integer,
		   l.priority, l.retired_at IS NOT NULL
	  FROM @extschema@.location_stock AS ls
	  JOIN @extschema@.locations AS l ON l.id = ls.location_id;

/*
 * shop_split_location_stock(product_id, location_id, slots): spread the
 * product's stock on sale at a location other than the default evenly over
 * `slots` (2 to 64) rows of location_stock_slots, so that that many
 * checkouts of it can take from that location at once; returns that stock.
 * Run it again to change the number of slots; shop_merge_location_stock()
 * undoes it.  The location must not be retired; the product gets a row
 * there (of 0) when it had none.  The default location's stock is split
 * with shop_split_stock().
 */
CREATE FUNCTION @extschema@.shop_split_location_stock(product_id bigint, location_id bigint,
													  slots integer)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	held		integer;
BEGIN
	IF shop_split_location_stock.product_id IS NULL OR shop_split_location_stock.slots IS NULL THEN
		RAISE EXCEPTION 'product id and number of slots must not be NULL'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF shop_split_location_stock.slots NOT BETWEEN 2 AND 64 THEN
		RAISE EXCEPTION 'a location''s stock can be split into 2 to 64 slots'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('Got %s for product %s at location %s.',
								  shop_split_location_stock.slots,
								  shop_split_location_stock.product_id,
								  shop_split_location_stock.location_id),
				  HINT = 'To put the stock back into the location''s row, use shop_merge_location_stock().';
	END IF;
	PERFORM @extschema@.shop_require_location(shop_split_location_stock.location_id, true);
	IF shop_split_location_stock.location_id = 1 THEN
		RAISE EXCEPTION 'the default location''s stock is split with shop_split_stock()'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'Location 1 holds products.stock and stock_slots.',
				  HINT = format('Call shop_split_stock(%s, %s).', shop_split_location_stock.product_id,
								shop_split_location_stock.slots);
	END IF;

	PERFORM @extschema@.shop_lock_stock(shop_split_location_stock.product_id);
	held := @extschema@.shop_location_stock(shop_split_location_stock.product_id,
											shop_split_location_stock.location_id);
	DELETE FROM @extschema@.location_stock_slots AS s
	 WHERE s.product_id = shop_split_location_stock.product_id
	   AND s.location_id = shop_split_location_stock.location_id;
	INSERT INTO @extschema@.location_stock (product_id, location_id, stock)
	VALUES (shop_split_location_stock.product_id, shop_split_location_stock.location_id, 0)
	ON CONFLICT ON CONSTRAINT location_stock_pkey DO NOTHING;
	INSERT INTO @extschema@.location_stock_slots (product_id, location_id, slot, stock)
	SELECT shop_split_location_stock.product_id, shop_split_location_stock.location_id, g, 0
	  FROM generate_series(0, shop_split_location_stock.slots - 1) AS g;
	PERFORM @extschema@.shop_set_location_stock(shop_split_location_stock.product_id,
												shop_split_location_stock.location_id, held);
	RETURN held;
END
$$;

REVOKE ALL ON FUNCTION @extschema@.shop_split_location_stock(bigint, bigint, integer) FROM PUBLIC;

/*
 * shop_merge_location_stock(product_id, location_id): put the product's
 * stock on sale at the location back into its location_stock row and drop
 * its slots there; returns that stock.  A location without slots is left
 * as it is; the default location's stock is merged with shop_merge_stock().
 */
CREATE FUNCTION @extschema@.shop_merge_location_stock(product_id bigint, location_id bigint)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	held		integer;
BEGIN
	IF shop_merge_location_stock.product_id IS NULL THEN
		RAISE EXCEPTION 'product id must not be NULL'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	PERFORM @extschema@.shop_require_location(shop_merge_location_stock.location_id, false);
	IF shop_merge_location_stock.location_id = 1 THEN
		RAISE EXCEPTION 'the default location''s stock is merged with shop_merge_stock()'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'Location 1 holds products.stock and stock_slots.',
				  HINT = format('Call shop_merge_stock(%s).', shop_merge_location_stock.product_id);
	END IF;
	PERFORM @extschema@.shop_lock_stock(shop_merge_location_stock.product_id);
	held := @extschema@.shop_location_stock(shop_merge_location_stock.product_id,
											shop_merge_location_stock.location_id);
	DELETE FROM @extschema@.location_stock_slots AS s
	 WHERE s.product_id = shop_merge_location_stock.product_id
	   AND s.location_id = shop_merge_location_stock.location_id;
	UPDATE @extschema@.location_stock AS ls SET stock = held
	 WHERE ls.product_id = shop_merge_location_stock.product_id
	   AND ls.location_id = shop_merge_location_stock.location_id;
	RETURN held;
END
$$;

REVOKE ALL ON FUNCTION @extschema@.shop_merge_location_stock(bigint, bigint) FROM PUBLIC;

/*
 * shop_retire_location(location_id): as 1.2's, counting the location's
 * slots (1.3), which it locks after its rows (the locking rules above): a
 * checkout that holds one of them is waited for.  The location's own row
 * is locked FOR NO KEY UPDATE (1.2: FOR UPDATE), which the FOR KEY SHARE of
 * a checkout's allocation (its foreign key) does not wait for: a checkout
 * that held one of the location's rows or slots and then wrote its
 * allocation waited for the retire that waited for it (a deadlock, 40P01).
 */
CREATE OR REPLACE FUNCTION @extschema@.shop_retire_location(location_id bigint)
RETURNS timestamptz
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	retired		timestamptz;
	held		bigint;
	open_units	bigint;
BEGIN
	PERFORM @extschema@.shop_require_location(shop_retire_location.location_id, false);
	IF shop_retire_location.location_id = 1 THEN
		RAISE EXCEPTION 'the default location cannot be retired'
			USING ERRCODE = 'SH014',
				  DETAIL = 'Location 1 holds products.stock.',
				  HINT = 'Set its stock to 0 with shop_adjust_stock() or move it with shop_move_stock().';
	END IF;
	SELECT l.retired_at INTO retired FROM @extschema@.locations AS l
	 WHERE l.id = shop_retire_location.location_id
	   FOR NO KEY UPDATE;
	IF retired IS NOT NULL THEN
		RETURN retired;
	END IF;
	-- a checkout allocating from it holds these rows or one of its slots: wait for it
	SELECT coalesce(sum(ls.stock), 0) INTO held
	  FROM (SELECT ls.stock FROM @extschema@.location_stock AS ls
			 WHERE ls.location_id = shop_retire_location.location_id
			 ORDER BY ls.product_id
			   FOR UPDATE) AS ls;
	held := held + (SELECT coalesce(sum(s.stock), 0)
					  FROM (SELECT s.stock FROM @extschema@.location_stock_slots AS s
							 WHERE s.location_id = shop_retire_location.location_id
							 ORDER BY s.product_id, s.slot
							   FOR UPDATE) AS s);
	SELECT coalesce(sum(a.quantity - a.cancelled_quantity), 0) INTO open_units
	  FROM @extschema@.order_item_allocations AS a
	  JOIN @extschema@.orders AS o ON o.id = a.order_id
	 WHERE a.location_id = shop_retire_location.location_id AND o.status = 'placed';
	IF held > 0 OR open_units > 0 THEN
		RAISE EXCEPTION 'location % still holds stock or units of placed orders',
			shop_retire_location.location_id
			USING ERRCODE = 'SH014',
				  DETAIL = format('Location %s holds %s units on sale and %s units of placed orders not yet paid.',
								  shop_retire_location.location_id, held, open_units),
				  HINT = 'Move its stock with shop_move_stock() and wait until its placed orders are paid, cancelled or expired.';
	END IF;
	UPDATE @extschema@.locations AS l SET retired_at = now()
	 WHERE l.id = shop_retire_location.location_id
	RETURNING l.retired_at INTO retired;
	RETURN retired;
END
$$;
