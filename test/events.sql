-- pgTAP: order events (1.3).  The contract of the new objects and
-- settings; off writes nothing and takes no lock on the event ids; with
-- pgq, every change of an order writes exactly one event, in the queue of
-- checkout.events_queue, its ids increasing per order, its JSON valid and
-- of schema version 1; a refused checkout, a replay and a refused pay write
-- none; shop_events_create_queue() refuses without pgq; the sequence is
-- dumped with the shop's data.
BEGIN;
CREATE EXTENSION checkout;
SELECT plan(25);

-- the contract
SELECT has_sequence('order_event_ids');
SELECT has_function('shop_order_event', ARRAY['text', 'bigint', 'jsonb']);
SELECT has_function('shop_events_create_queue', ARRAY['text']);
SELECT is(current_setting('checkout.events'), 'off', 'checkout.events is off by default');
SELECT is(current_setting('checkout.events_queue'), 'checkout_orders', 'the default queue is checkout_orders');
SELECT is((SELECT context FROM pg_settings WHERE name = 'checkout.events'), 'superuser',
		  'only a superuser sets checkout.events');
SELECT ok((SELECT 'order_event_ids'::regclass::oid = ANY (extconfig) FROM pg_extension
			WHERE extname = 'checkout'), 'the event ids are dumped with the shop''s data');
SELECT throws_ok($$SELECT shop_events_create_queue()$$, '55000', NULL,
				 'creating the queue without pgq is 55000');

INSERT INTO products (id, name, price_cents, stock) OVERRIDING SYSTEM VALUE
	VALUES (901, 'Flash Sale Smartphone', 49900, 3), (902, 'Phone Case', 1999, 0);
INSERT INTO customers (id, name) OVERRIDING SYSTEM VALUE VALUES (901, 'Ada'), (902, 'Brian');

-- off: no event id taken, no lock on the sequence
INSERT INTO cart_items VALUES (901, 901, 1);
SELECT ok(shop_checkout(901) > 0, 'a checkout with events off');
SELECT is_empty($$SELECT FROM pg_locks WHERE relation = 'order_event_ids'::regclass
					AND pid = pg_backend_pid() AND mode = 'RowExclusiveLock'$$,
				'off takes no lock on the event ids (nextval''s)');
SELECT is((SELECT is_called FROM order_event_ids), false, 'off takes no event id');

-- pgq: one event per change
CREATE EXTENSION pgq;
SELECT is(shop_events_create_queue('shop_events'), 'shop_events', 'the queue is created');
SET LOCAL checkout.events = pgq;
SET LOCAL checkout.events_queue = 'shop_events';
CREATE TEMP VIEW queued AS
	SELECT e.ev_type, e.ev_extra1::bigint AS event_id, e.ev_extra2::bigint AS order_id,
		   e.ev_data::jsonb AS data
	  FROM pgq.event_template AS e;

INSERT INTO cart_items VALUES (901, 901, 2);
SELECT shop_checkout(901, 'k-1') AS order_id \gset
SELECT isnt_empty($$SELECT FROM pg_locks WHERE relation = 'order_event_ids'::regclass
					  AND pid = pg_backend_pid() AND mode = 'RowExclusiveLock'$$,
				  'pgq takes an event id (nextval: the test of off can fail)');
SELECT is(shop_checkout(901, 'k-1'), :order_id::bigint, 'a keyed replay returns the order');
INSERT INTO cart_items VALUES (902, 902, 1);
SELECT throws_ok($$SELECT shop_checkout(902)$$, 'SH001', NULL, 'a sold-out checkout is refused');
SELECT is(shop_pay(:order_id, 'psp-1'), 'paid', 'paid');
SELECT is(shop_pay(:order_id, 'psp-1'), 'paid', 'paid again with the same reference');
SELECT throws_ok(format('SELECT shop_pay(%s, %L)', :order_id, 'psp-2'), 'SH007', NULL,
				 'paid again with another reference is refused');
SELECT is(shop_cancel_items(:order_id, 901, 1, 'damaged'), 1, 'a partial cancel');
SELECT is(shop_cancel_order(:order_id, 'customer request'), 'cancelled', 'a whole cancel');

SELECT results_eq($$SELECT ev_type FROM queued ORDER BY event_id$$,
				  ARRAY['placed', 'paid', 'cancelled', 'cancelled'],
				  'one event per change, none for the replay, the refusals or the second pay');
SELECT is((SELECT count(DISTINCT order_id) FROM queued), 1::bigint, 'all of the one order');
SELECT ok((SELECT bool_and((data ->> 'event_id')::bigint = event_id
						   AND (data ->> 'order_id')::bigint = order_id
						   AND (data ->> 'kind') = ev_type
						   AND (data ->> 'schema_version') = '1'
						   AND (data ->> 'occurred_at')::timestamptz = now())
			 FROM queued), 'ev_data is the event, its ids in ev_extra1 and ev_extra2');
SELECT is((SELECT array_agg(data -> 'whole' ORDER BY event_id) FROM queued WHERE ev_type = 'cancelled'),
		  ARRAY['false', 'true']::jsonb[], 'the partial cancel, then the rest');
SELECT is((SELECT data -> 'lines' FROM queued WHERE ev_type = 'placed'),
		  '[{"name": "Flash Sale Smartphone", "quantity": 2, "product_id": 901, "allocations": [{"quantity": 2, "location_id": 1}], "discount_cents": 0, "unit_price_cents": 49900, "preordered_quantity": 0}]'::jsonb,
		  'the placed event lists the lines');

SELECT * FROM finish();
ROLLBACK;
