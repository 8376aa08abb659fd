--
-- shop_place_order (1.3): the web's checkout in one call.  Proves: the
-- cart is set to the lines and checked out; the row says placed or
-- replayed, with the order's lines and prices; each refusal comes back as
-- data (its SQLSTATE, the exact message, the figures) and changes nothing;
-- bad input, an unknown customer or product are errors that change
-- nothing; a key binds its request (SH015 names the earlier order), for
-- shop_checkout too; a refused call consumes no key; preorders, vouchers
-- and the payment window work as in shop_checkout; integrity stays clean.
--
CREATE EXTENSION checkout;
\set VERBOSITY default

CREATE TEMP VIEW shop_state AS
SELECT (SELECT string_agg(ps.product_id || ':' || ps.stock, ' ' ORDER BY ps.product_id)
		  FROM product_stock AS ps) AS stock,
       (SELECT string_agg(id || '/' || status, ' ' ORDER BY id) FROM orders) AS orders,
       (SELECT string_agg(customer_id || '/' || product_id || 'x' || quantity, ' '
                          ORDER BY customer_id, product_id) FROM cart_items) AS carts,
       (SELECT count(*) FROM idempotency_keys) AS keys,
       (SELECT count(*) FROM shop_check_integrity()) AS problems;

INSERT INTO products (name, price_cents, stock) VALUES
  ('Flash Sale Smartphone', 49900, 3), ('Phone "Case"', 1999, 10), ('Charger', 2500, 0);
INSERT INTO customers (name) VALUES ('Ada'), ('Brian'), ('Chen');

-- Placed: the stored cart (a case) is replaced by the lines, then ordered
INSERT INTO cart_items VALUES (1, 2, 4);
SELECT outcome, order_id, status, total_cents, discount_cents, payment_deadline,
       jsonb_pretty(order_lines) AS order_lines, sqlstate, message, refusal
  FROM shop_place_order(1, '[{"product_id": 1, "quantity": 2}]', 'ada-1');
SELECT * FROM shop_state;

-- Replayed: the same key and lines return the order and change nothing,
-- even with a cart filled since
INSERT INTO cart_items VALUES (1, 2, 1);
SELECT outcome, order_id, total_cents FROM shop_place_order(1, '[{"product_id": 1, "quantity": 2}]', 'ada-1');
SELECT * FROM shop_state;

-- SH015: the same key with other lines, or another code, names the order
SELECT * FROM shop_place_order(1, '[{"product_id": 1, "quantity": 1}]', 'ada-1');
SELECT * FROM shop_place_order(1, '[{"product_id": 1, "quantity": 2}]', 'ada-1', 'FLASH10');
-- ... and so does shop_checkout with the key of a call that took lines
SELECT shop_checkout(1, 'ada-1');
SELECT * FROM shop_state;

-- SH001 as data: every short line's figures; nothing changed, no key spent
SELECT outcome, order_id, sqlstate, message, jsonb_pretty(refusal) AS refusal
  FROM shop_place_order(2, '[{"product_id": 1, "quantity": 5}, {"product_id": 2, "quantity": 1},
                             {"product_id": 3, "quantity": 1}]', 'brian-1');
SELECT * FROM shop_state;
-- the key was not spent: the same key with a cart that can be served places it
SELECT outcome, order_id, total_cents FROM shop_place_order(2, '[{"product_id": 2, "quantity": 1}]', 'brian-1');

-- SH005 as data
SELECT shop_set_purchase_limit(2, 2);
SELECT outcome, sqlstate, message, refusal
  FROM shop_place_order(2, '[{"product_id": 2, "quantity": 2}]');
SELECT shop_set_purchase_limit(2, NULL);

-- SH009, SH010 and SH011 as data
SELECT shop_add_voucher_code(shop_create_voucher('Once', percent_off => 10, usage_limit => 1), 'ONCE');
SELECT shop_add_voucher_code(shop_create_voucher('Each once', amount_off_cents => 100,
												 per_customer_limit => 1), 'EACH');
SELECT outcome, order_id, total_cents, discount_cents, order_lines -> 0 -> 'discount_cents' AS line_discount
  FROM shop_place_order(3, '[{"product_id": 2, "quantity": 1}]', 'chen-1', 'once');
SELECT outcome, sqlstate, message, refusal - 'voucher_id' AS refusal
  FROM shop_place_order(3, '[{"product_id": 2, "quantity": 1}]', 'chen-2', 'ONCE');
SELECT outcome, sqlstate, message, refusal
  FROM shop_place_order(3, '[{"product_id": 2, "quantity": 1}]', NULL, 'NOPE');
SELECT outcome, order_id IS NOT NULL AS ordered
  FROM shop_place_order(3, '[{"product_id": 2, "quantity": 1}]', NULL, 'each');
SELECT outcome, sqlstate, message, refusal - 'voucher_id' AS refusal
  FROM shop_place_order(3, '[{"product_id": 2, "quantity": 1}]', NULL, 'each');
-- the same key and code in another case of its letters is the same request
SELECT outcome FROM shop_place_order(3, '[{"product_id": 2, "quantity": 1}]', 'chen-1', 'ONCE');

-- Errors, each changing nothing
SELECT * FROM shop_place_order(NULL, '[{"product_id": 1, "quantity": 1}]');
SELECT * FROM shop_place_order(1, NULL);
SELECT * FROM shop_place_order(1, '{"product_id": 1}');
SELECT * FROM shop_place_order(1, '[]');
SELECT * FROM shop_place_order(1, '[1]');
SELECT * FROM shop_place_order(1, '[{"product_id": 1}]');
SELECT * FROM shop_place_order(1, '[{"product_id": 1, "quantity": 0}]');
SELECT * FROM shop_place_order(1, '[{"product_id": 1, "quantity": 1.5}]');
SELECT * FROM shop_place_order(1, '[{"product_id": "1", "quantity": 1}]');
SELECT * FROM shop_place_order(1, '[{"product_id": 1, "quantity": 1, "colour": "red"}]');
SELECT * FROM shop_place_order(1, '[{"product_id": 1, "quantity": 1}, {"product_id": 1, "quantity": 2}]');
SELECT * FROM shop_place_order(1, '[{"product_id": 1, "quantity": 1, "accept_preorder": "yes"}]');
SELECT * FROM shop_place_order(1, '[{"product_id": 1, "quantity": 1}]', '');
SELECT * FROM shop_place_order(42, '[{"product_id": 1, "quantity": 1}]');
SELECT * FROM shop_place_order(42, '[{"product_id": 1, "quantity": 1}]', 'key-of-nobody');
SELECT * FROM shop_place_order(1, '[{"product_id": 1, "quantity": 1}, {"product_id": 99, "quantity": 1}]');
SELECT * FROM shop_state;

-- Preorders: a line that accepts one takes the stock on hand, then preorders
SELECT shop_set_preorder(3, 5, '2027-02-01');
SELECT outcome, order_lines -> 0 -> 'preordered_quantity' AS preordered
  FROM shop_place_order(1, '[{"product_id": 3, "quantity": 2, "accept_preorder": true}]');
-- ... and past the cap, SH001 says what was preorderable
SELECT outcome, sqlstate, message, refusal
  FROM shop_place_order(1, '[{"product_id": 3, "quantity": 9, "accept_preorder": true}]');

-- The payment window: the order's deadline
SET checkout.payment_window = '15min';
SELECT outcome, payment_deadline = now() + interval '15 minutes' AS deadline_in_15_minutes
  FROM shop_place_order(2, '[{"product_id": 1, "quantity": 1}]');
RESET checkout.payment_window;

-- shop_checkout's keys bind their voucher code, not the cart
INSERT INTO cart_items VALUES (2, 2, 1);
SELECT shop_checkout(2, 'brian-cart') AS order_id \gset
INSERT INTO cart_items VALUES (2, 1, 1);
SELECT shop_checkout(2, 'brian-cart') = :order_id AS replayed_whatever_the_cart;
SELECT shop_checkout(2, 'brian-cart', 'EACH');
DELETE FROM cart_items;

SELECT * FROM shop_state;
DROP VIEW shop_state;
SET checkout.allow_drop = on;
DROP EXTENSION checkout;
