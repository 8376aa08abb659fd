-- make bench: the data and the alternative flows, in a database where
-- CREATE EXTENSION checkout has run (in schema public).
--
-- Products: 1 is the hot product (stock never runs out during a run),
-- 2 is sold out, 3..1002 are a spread catalog.  Customers 1..200, one per
-- pgbench client (client_id + 1); 201..10200 idle shoppers; 10201..110200
-- the crowd of the payment-flow workloads.
\set ON_ERROR_STOP 1

INSERT INTO public.products (id, name, price_cents, stock)
VALUES (1, 'Flash Sale Smartphone', 49900, 1000000000),
	   (2, 'Sold-out Console', 59900, 0);
INSERT INTO public.products (id, name, price_cents, stock)
SELECT g, 'Catalog item ' || g, 100 + g, 1000000000
  FROM generate_series(3, 1002) AS g;
SELECT setval(pg_get_serial_sequence('public.products', 'id'), 1002);
INSERT INTO public.customers (id, name)
SELECT g, 'bench buyer ' || g FROM generate_series(1, 200) AS g;
-- ... and 10,000 shoppers whose carts (two lines each) wait while the sale
-- runs: with them the tables' statistics look like a shop's, not empty
INSERT INTO public.customers (id, name)
SELECT g, 'idle shopper ' || g FROM generate_series(201, 10200) AS g;
-- ... and 100,000 buyers of the payment-flow workloads (pay-*), each of
-- whom has bought little or nothing when a run picks them at random
INSERT INTO public.customers (id, name)
SELECT g, 'fresh buyer ' || g FROM generate_series(10201, 110200) AS g;
SELECT setval(pg_get_serial_sequence('public.customers', 'id'), 110200);
INSERT INTO public.cart_items (customer_id, product_id, quantity)
SELECT c, 3 + (c * 7 + k) % 1000, 1
  FROM generate_series(201, 10200) AS c, generate_series(0, 1) AS k;

-- A history of 50,000 orders, as a running shop has: the planner then
-- plans lookups in orders (such as the foreign key checks of order_items) as
-- index scans, as it would in production, and not as scans of an empty table.
INSERT INTO public.orders (id, customer_id, total_cents, created_at)
SELECT g, 1 + g % 200, 1103, now() - interval '1 day'
  FROM generate_series(1, 50000) AS g;
INSERT INTO public.order_items (order_id, product_id, quantity, unit_price_cents)
SELECT g, 3 + g % 1000, 1, 1103 FROM generate_series(1, 50000) AS g;
SELECT setval(pg_get_serial_sequence('public.orders', 'id'), 50000);

CREATE SCHEMA bench;

-- The same algorithm as shop_checkout(), written in PL/pgSQL as a user would
-- write it instead of C: read and lock the cart once, lock the products in id
-- order, validate, then set-based writes.
CREATE FUNCTION bench.plpgsql_checkout(p_customer_id bigint)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_products bigint[];
	v_quantities integer[];
	v_prices bigint[] := '{}';
	v_total bigint := 0;
	v_order bigint;
	r record;
BEGIN
	SELECT array_agg(c.product_id ORDER BY c.product_id),
		   array_agg(c.quantity ORDER BY c.product_id)
	  INTO v_products, v_quantities
	  FROM (SELECT ci.product_id, ci.quantity FROM public.cart_items ci
			 WHERE ci.customer_id = p_customer_id
			 ORDER BY ci.product_id FOR UPDATE) AS c;
	IF v_products IS NULL THEN
		RAISE EXCEPTION 'cart of customer % is empty', p_customer_id
			USING ERRCODE = 'SH002';
	END IF;

	FOR r IN SELECT p.id, p.name, p.stock, p.price_cents, l.quantity
			   FROM public.products p
			   JOIN unnest(v_products, v_quantities) AS l(product_id, quantity)
				 ON p.id = l.product_id
			  ORDER BY p.id
				FOR NO KEY UPDATE OF p
	LOOP
		IF r.stock < r.quantity THEN
			RAISE EXCEPTION 'Insufficient stock for % (available: %, requested: %)',
				r.name, r.stock, r.quantity USING ERRCODE = 'SH001';
		END IF;
		v_prices := v_prices || r.price_cents;
		v_total := v_total + r.price_cents * r.quantity;
	END LOOP;

	UPDATE public.products p SET stock = p.stock - l.quantity
	  FROM unnest(v_products, v_quantities) AS l(product_id, quantity)
	 WHERE p.id = l.product_id;
	INSERT INTO public.orders (customer_id, total_cents)
	VALUES (p_customer_id, v_total) RETURNING id INTO v_order;
	INSERT INTO public.order_items (order_id, product_id, quantity, unit_price_cents)
	SELECT v_order, l.product_id, l.quantity, l.price
	  FROM unnest(v_products, v_quantities, v_prices) AS l(product_id, quantity, price);
	DELETE FROM public.cart_items
	 WHERE customer_id = p_customer_id AND product_id = ANY (v_products);
	RETURN v_order;
END
$$;

-- pgbench aborts a client on any error, so the sold-out rush calls the
-- flows that raise through these: a rejection returns NULL instead.
CREATE FUNCTION bench.try_shop_checkout(p_customer_id bigint)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN public.shop_checkout(p_customer_id);
EXCEPTION WHEN SQLSTATE 'SH001' THEN
	RETURN NULL;
END
$$;

CREATE FUNCTION bench.try_plpgsql_checkout(p_customer_id bigint)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN bench.plpgsql_checkout(p_customer_id);
EXCEPTION WHEN SQLSTATE 'SH001' THEN
	RETURN NULL;
END
$$;

VACUUM ANALYZE;
