--
-- Order events (1.3): every change of an order is written in its own
-- transaction to the sink checkout.events names.  Read here through a
-- test_decoding slot (the logical sink) and through PgQ's consumer API
-- (the pgq sink).  Proves: the payload of each kind; a failed checkout, a
-- rolled-back one and a keyed replay emit nothing; off emits nothing and
-- takes no event id; a role that may only check out gets its orders'
-- events written (as the extension's owner) and cannot turn them off; the
-- settings refuse a sink that cannot work.  Needs wal_level = logical and
-- the pgq extension (Debian's postgresql-NN-pgq3).
--
CREATE EXTENSION checkout;
\set VERBOSITY default

-- The defaults: off, queue checkout_orders
SHOW checkout.events;
SHOW checkout.events_queue;

-- pgq is refused (55000) while extension pgq is not installed, and the
-- setting stays off; so is shop_events_create_queue()
SET checkout.events = pgq;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SHOW checkout.events;
SELECT shop_events_create_queue();
\echo SQLSTATE :LAST_ERROR_SQLSTATE
\set VERBOSITY terse
-- an unknown sink
SET checkout.events = kafka;

INSERT INTO products (name, price_cents, stock) VALUES
  ('Flash Sale Smartphone', 49900, 10), ('Phone "Case"', 1999, 5), ('Charger', 2500, 0);
INSERT INTO customers (name) VALUES ('Ada'), ('Brian'), ('Chen');

-- Events off: a checkout writes none and takes no event id
SELECT 'created' AS slot FROM pg_create_logical_replication_slot('events_test', 'test_decoding');
-- the events decoded since the last look (occurred_at left out: a time)
CREATE TEMP VIEW emitted_raw AS
SELECT substring(data FROM 'content:(.*)$')::jsonb AS event
  FROM pg_logical_slot_get_changes('events_test', NULL, NULL)
 WHERE data LIKE 'message: transactional: 1 prefix: checkout.order_event,%';
CREATE TEMP VIEW emitted AS SELECT event - 'occurred_at' AS event FROM emitted_raw;
INSERT INTO cart_items VALUES (1, 1, 1);
SELECT shop_checkout(1) > 0 AS ordered;
SELECT count(*) AS events FROM emitted;
SELECT is_called FROM order_event_ids;

-- Logical: a placed event carries everything a consumer needs
SET checkout.events = logical;
SET checkout.payment_window = '15min';
INSERT INTO cart_items VALUES (2, 1, 2), (2, 2, 1);
SELECT shop_checkout(2, 'ada-attempt-1') AS order_id \gset
-- the deadline is the order's expires_at, occurred_at its created_at
SELECT jsonb_pretty(e.event - 'occurred_at' - 'payment_deadline') AS event,
       (e.event ->> 'order_id')::bigint = :order_id AS is_the_order,
       (e.event ->> 'payment_deadline')::timestamptz = o.expires_at AS deadline_is_expires_at,
       (e.event ->> 'occurred_at')::timestamptz = o.created_at AS occurred_at_is_created_at
  FROM emitted_raw AS e JOIN orders AS o ON o.id = (e.event ->> 'order_id')::bigint;
SELECT shop_checkout(2, 'ada-attempt-1') = :order_id AS replayed;
SELECT count(*) AS replay_events FROM emitted;

-- A failed checkout emits nothing; neither does a rolled-back one
INSERT INTO cart_items VALUES (3, 3, 1);
SELECT shop_checkout(3);
DELETE FROM cart_items WHERE customer_id = 3;
INSERT INTO cart_items VALUES (3, 2, 1);
BEGIN;
SELECT shop_checkout(3) > 0 AS rolled_back;
ROLLBACK;
-- ... nor one in a subtransaction rolled back
BEGIN;
SAVEPOINT attempt;
SELECT shop_checkout(3) > 0 AS rolled_back;
ROLLBACK TO SAVEPOINT attempt;
COMMIT;
SELECT count(*) AS events FROM emitted;

-- paid, once: paying again with the same reference changes nothing
SELECT shop_pay(:order_id, 'psp-123');
SELECT shop_pay(:order_id, 'psp-123');
SELECT event - 'paid_at' - 'order_id' AS event, (event ->> 'order_id')::bigint = :order_id AS is_the_order
  FROM emitted;

-- a voucher: the placed event names it, with each line's share of the discount
SELECT shop_add_voucher_code(shop_create_voucher('Ten off', amount_off_cents => 1000), 'TEN-OFF');
INSERT INTO cart_items VALUES (1, 1, 1), (1, 2, 1);
SELECT shop_checkout(1, NULL, 'ten-off') AS voucher_order_id \gset
SELECT (event -> 'voucher') - 'id' - 'code_id' AS voucher, event -> 'subtotal_cents' AS subtotal,
       event -> 'discount_cents' AS discount, event -> 'total_cents' AS total,
       jsonb_path_query_array(event, '$.lines[*].discount_cents') AS line_discounts,
       (event -> 'voucher' ->> 'id')::bigint = o.voucher_id AS voucher_id_is_the_orders
  FROM emitted AS e JOIN orders AS o ON o.id = :voucher_order_id;

-- cancelled: a partial cancel names its line; a whole cancel what was left
SELECT shop_checkout(3) AS second_order_id \gset
SELECT shop_cancel_items(:order_id, 1, 1, 'damaged in transit');
SELECT shop_cancel_order(:second_order_id, 'customer request');
SELECT shop_cancel_order(:second_order_id, 'customer request');
SELECT event ->> 'kind' AS kind, (event ->> 'order_id')::bigint = :second_order_id AS second_order,
       event - 'kind' - 'order_id' - 'event_id' - 'payment_deadline' AS fields
  FROM emitted ORDER BY event -> 'event_id';

-- expired: an order past its payment window, given back by the expiry
RESET checkout.payment_window;
SET checkout.payment_window = 1;
INSERT INTO cart_items VALUES (1, 1, 3);
SELECT shop_checkout(1) AS expiring_order_id \gset
UPDATE orders SET expires_at = now() - interval '1 second' WHERE id = :expiring_order_id;
SELECT shop_expire_orders();
SELECT event ->> 'kind' AS kind, (event ->> 'order_id')::bigint = :expiring_order_id AS is_the_order,
       event -> 'lines' AS lines, event -> 'reason' AS reason, event -> 'status' AS status
  FROM emitted ORDER BY event -> 'event_id';
RESET checkout.payment_window;

-- preorder_filled: a restock fills an open preorder before going on sale
SELECT shop_set_preorder(3, 5, '2027-02-01');
INSERT INTO cart_items (customer_id, product_id, quantity, accept_preorder) VALUES (1, 3, 2, true);
SELECT shop_checkout(1) AS preorder_id \gset
SELECT shop_restock(3, 1, 'delivery 1');
SELECT event ->> 'kind' AS kind, (event ->> 'order_id')::bigint = :preorder_id AS is_the_order,
       event -> 'lines' -> 0 -> 'preordered_quantity' AS preordered,
       event -> 'lines' -> 0 -> 'allocations' AS allocations,
       event -> 'product_id' AS product_id, event -> 'location_id' AS location_id,
       event -> 'quantity' AS quantity, event -> 'preordered_open_quantity' AS still_open
  FROM emitted ORDER BY event -> 'event_id';

-- a bundle: its line carries the parts it took and where they came from;
-- a part also on its own line shows each unit once (3 bands from the
-- depot: 1 for the band's line, 2 for the kit's)
INSERT INTO products (name, price_cents, stock) VALUES ('Band', 900, 2);
SELECT shop_create_bundle('Fitness Kit', 50000,
  jsonb_build_array(jsonb_build_object('product_id', currval('products_id_seq'), 'quantity', 2),
                    jsonb_build_object('product_id', 1, 'quantity', 1))) AS kit_id \gset
SELECT shop_create_location('Depot', 5) AS depot_id \gset
SELECT shop_restock(:kit_id - 1, 3, 'depot delivery', :depot_id);
INSERT INTO cart_items VALUES (2, :kit_id, 1), (2, :kit_id - 1, 1);
SELECT shop_checkout(2) AS kit_order_id \gset
SELECT jsonb_pretty(event -> 'lines') AS lines
  FROM emitted WHERE (event ->> 'order_id')::bigint = :kit_order_id;

-- A role that may only check out: its checkout's event is written (as the
-- extension's owner), and it cannot turn the events off (superuser only)
CREATE ROLE events_app LOGIN;
SELECT shop_grant_app('events_app');
INSERT INTO cart_items VALUES (3, 1, 1);
SET ROLE events_app;
SET checkout.events = off;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shop_checkout(3) AS app_order_id \gset
RESET ROLE;
SELECT event ->> 'kind' AS kind, (event ->> 'order_id')::bigint = :app_order_id AS is_the_order,
       event ->> 'customer_id' AS customer_id
  FROM emitted;

-- PgQ: the queue is created on demand, and read through a consumer
CREATE EXTENSION pgq;
SELECT shop_events_create_queue();
SELECT shop_events_create_queue();
SELECT pgq.register_consumer('checkout_orders', 'warehouse');
SET checkout.events = pgq;
-- pgq set while the queue is missing: the checkout fails and changes nothing
SET checkout.events_queue = 'no_such_queue';
INSERT INTO cart_items VALUES (3, 2, 1);
\set VERBOSITY default
SELECT shop_checkout(3);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
\set VERBOSITY terse
SELECT count(*) AS carts_kept FROM cart_items WHERE customer_id = 3;
RESET checkout.events_queue;
SELECT shop_checkout(3, 'chen-1') AS pgq_order_id \gset
SELECT shop_pay(:pgq_order_id, 'psp-456');
SELECT pgq.force_tick('checkout_orders') > 0 AS forced;
SELECT pgq.ticker() >= 0 AS ticked;
SELECT pgq.next_batch('checkout_orders', 'warehouse') AS batch_id \gset
SELECT ev_type, ev_extra1::bigint > 0 AS has_event_id, ev_extra2::bigint = :pgq_order_id AS is_the_order,
       (ev_data::jsonb ->> 'event_id') = ev_extra1 AS id_matches,
       ev_data::jsonb ->> 'idempotency_key' AS key, ev_data::jsonb ->> 'payment_ref' AS payment_ref
  FROM pgq.get_batch_events(:batch_id)
 ORDER BY ev_extra1::bigint;
SELECT pgq.finish_batch(:batch_id);
SELECT count(*) AS logical_events_meanwhile FROM emitted;

-- The internal emitter is not for PUBLIC; its kinds are checked
SELECT has_function_privilege('events_app', 'shop_order_event(text, bigint, jsonb)', 'EXECUTE');
SELECT shop_order_event('shipped', 1, '{}');
SELECT shop_order_event('paid', 1, '[1]');
SELECT shop_order_event('paid', 1, NULL) > 0 AS written_without_fields;

SELECT count(*) AS problems FROM shop_check_integrity();
SELECT pg_drop_replication_slot('events_test');
RESET checkout.events;
DROP OWNED BY events_app;
DROP ROLE events_app;
SET checkout.allow_drop = on;
SELECT pgq.drop_queue('checkout_orders', true);
DROP EXTENSION pgq;
DROP EXTENSION checkout;
