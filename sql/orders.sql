--
-- The payment flow: idempotency keys, the payment window, shop_pay,
-- shop_expire_orders, cancellation through the ledger, purchase limits.
-- Every error with its SQLSTATE, message and detail, and nothing changed
-- after it.  shop_check_integrity() stays clean throughout.
--
CREATE EXTENSION checkout;
\set VERBOSITY default

CREATE TEMP VIEW shop_state AS
SELECT (SELECT string_agg(ps.product_id || ':' || ps.stock, ' ' ORDER BY ps.product_id)
		  FROM product_stock AS ps) AS stock,
       (SELECT string_agg(id || '/' || status, ' ' ORDER BY id) FROM orders) AS orders,
       (SELECT string_agg(order_id || '.' || product_id || 'x' || quantity
						  || CASE WHEN cancelled_quantity > 0 THEN '-' || cancelled_quantity ELSE '' END,
						  ' ' ORDER BY order_id, product_id) FROM order_items) AS lines,
       (SELECT string_agg(customer_id || '/' || product_id || 'x' || quantity, ' '
                          ORDER BY customer_id, product_id) FROM cart_items) AS carts,
       (SELECT count(*) FROM shop_check_integrity()) AS problems;

INSERT INTO products (name, price_cents, stock) VALUES
  ('Flash Sale Smartphone', 49900, 10), ('Phone Case', 1999, 20);
INSERT INTO customers (name) VALUES ('Ada'), ('Brian'), ('Chen');

-- Idempotency keys: the first call makes the order and records the key
INSERT INTO cart_items VALUES (1, 1, 2);
SELECT shop_checkout(1, 'attempt-1') AS order_id;
SELECT customer_id, idempotency_key, order_id FROM idempotency_keys;
-- the same key again returns the same order and changes nothing, even with
-- new lines in the cart
INSERT INTO cart_items VALUES (1, 2, 1);
SELECT shop_checkout(1, 'attempt-1') AS order_id;
SELECT * FROM shop_state;
-- a new key is a new checkout; a NULL key is no key
SELECT shop_checkout(1, 'attempt-2') AS order_id;
INSERT INTO cart_items VALUES (1, 2, 1);
SELECT shop_checkout(1, NULL) AS order_id;
SELECT count(*) AS keys FROM idempotency_keys;
-- keys are per customer
INSERT INTO cart_items VALUES (2, 2, 1);
SELECT shop_checkout(2, 'attempt-1') AS order_id;
-- a failed checkout records nothing: the retry runs as a checkout of its own
INSERT INTO cart_items VALUES (3, 1, 50);
SELECT shop_checkout(3, 'attempt-1');
SELECT count(*) AS keys_of_customer_3 FROM idempotency_keys WHERE customer_id = 3;
UPDATE cart_items SET quantity = 1 WHERE customer_id = 3;
SELECT shop_checkout(3, 'attempt-1') AS order_id;
-- the replay of a key whose cart is empty now
SELECT shop_checkout(3, 'attempt-1') AS order_id;
-- bad keys: 22023, nothing changes
INSERT INTO cart_items VALUES (3, 2, 1);
SELECT shop_checkout(3, '');
SELECT shop_checkout(3, repeat('x', 256));
SELECT length(repeat('é', 255)) AS chars, shop_checkout(3, repeat('é', 255)) > 0 AS ordered;
SELECT * FROM shop_state;

-- Purging keys: none is older than checkout.idempotency_retention (24h)
SHOW checkout.idempotency_retention;
SELECT shop_purge_idempotency_keys() AS purged;
UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE order_id = 1;
SELECT shop_purge_idempotency_keys() AS purged;
SET checkout.idempotency_retention = '1min';
UPDATE idempotency_keys SET created_at = now() - interval '2 minutes' WHERE order_id = 2;
SELECT shop_purge_idempotency_keys() AS purged;
RESET checkout.idempotency_retention;

-- Orders are placed, with no payment window by default
SHOW checkout.payment_window;
SELECT id, status, expires_at IS NULL AS never_expires FROM orders WHERE id = 1;
SELECT shop_pay(1, 'psp-1001') AS status;
SELECT shop_pay(1, 'psp-1001') AS status;	-- the same call again: a no-op
SELECT id, status, payment_ref, paid_at IS NOT NULL AS paid FROM orders WHERE id = 1;
\set VERBOSITY terse
SELECT shop_pay(1, 'psp-9999');				-- paid with another reference
\set VERBOSITY default
SELECT shop_pay(424242, 'psp-1');			-- unknown order
SELECT shop_pay(NULL, 'psp-1');
SELECT shop_pay(2, NULL);
SELECT shop_pay(2, '  ');

-- A payment window: new orders expire
SET checkout.payment_window = '15min';
INSERT INTO cart_items VALUES (2, 1, 3);
SELECT shop_checkout(2) AS order_id \gset
SELECT status, expires_at - created_at AS window FROM orders WHERE id = :order_id;
SELECT shop_expire_orders() AS expired;		-- not yet due
-- past its window it cannot be paid, and expiring gives the stock back
UPDATE orders SET expires_at = now() - interval '1 second' WHERE id = :order_id;
\set VERBOSITY terse
SELECT shop_pay(:order_id, 'psp-late');
\set VERBOSITY default
SELECT shop_expire_orders() AS expired;
SELECT id, status, cancel_reason FROM orders WHERE id = :order_id;
SELECT kind, quantity, order_id = :order_id AS names_order, reason
  FROM stock_movements WHERE kind = 'expiry';
\set VERBOSITY terse
SELECT shop_pay(:order_id, 'psp-late');		-- cancelled
\set VERBOSITY default
SELECT shop_expire_orders(0);
SELECT shop_expire_orders(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM shop_state;
RESET checkout.payment_window;

-- Cancelling lines, then the order: stock comes back exactly once
INSERT INTO cart_items VALUES (2, 1, 3), (2, 2, 4);
SELECT shop_checkout(2) AS order_id \gset
SELECT shop_cancel_items(:order_id, 2, 1, 'damaged in transit') AS left_on_line;
SELECT shop_cancel_items(:order_id, 2, 4, 'too many');		-- only 3 left
SELECT shop_cancel_items(:order_id, 2, 0, 'none');
SELECT shop_cancel_items(:order_id, 9, 1, 'not in the order');
SELECT shop_cancel_items(:order_id, 2, 1, '');
SELECT shop_cancel_items(424242, 2, 1, 'unknown order');
SELECT shop_cancel_order(:order_id, 'customer request') AS status;
SELECT shop_cancel_order(:order_id, 'customer request') AS status;	-- a no-op
SELECT shop_cancel_items(:order_id, 1, 1, 'after the cancel');
SELECT shop_cancel_order(424242, 'unknown');
SELECT shop_cancel_order(:order_id, NULL);
SELECT product_id, kind, quantity, reason FROM stock_movements
 WHERE order_id = :order_id ORDER BY id;
SELECT * FROM shop_state;
-- cancelling every line one by one cancels the order
INSERT INTO cart_items VALUES (3, 2, 2);
SELECT shop_checkout(3) AS order_id \gset
SELECT shop_cancel_items(:order_id, 2, 2, 'changed mind') AS left_on_line;
SELECT status, cancel_reason FROM orders WHERE id = :order_id;
-- a paid order can be cancelled too (the refund is the shop's business)
SELECT shop_cancel_order(1, 'refunded') AS status;

-- Purchase limits: 2 per customer, over their orders not cancelled
SELECT shop_set_purchase_limit(1, 2) AS max_per_customer;
INSERT INTO customers (name) VALUES ('Dana');
INSERT INTO cart_items VALUES (4, 1, 1);
SELECT shop_checkout(4) AS order_id \gset
INSERT INTO cart_items VALUES (4, 1, 2), (4, 2, 1);
SELECT * FROM shop_cart_status(4);
SELECT shop_checkout(4);					-- 1 bought + 2 > 2
SELECT * FROM shop_state;
UPDATE cart_items SET quantity = 1 WHERE customer_id = 4 AND product_id = 1;
SELECT shop_checkout(4) > 0 AS ordered;		-- 1 + 1 = 2: allowed
INSERT INTO cart_items VALUES (4, 1, 1);
SELECT shop_checkout(4);					-- 2 + 1 > 2
-- cancelled units free the limit
SELECT shop_cancel_items(:order_id, 1, 1, 'returned') AS left_on_line;
SELECT shop_checkout(4) > 0 AS ordered;
-- bad limits; NULL removes it
SELECT shop_set_purchase_limit(1, 0);
SELECT shop_set_purchase_limit(424242, 2);
SELECT shop_set_purchase_limit(NULL, 2);
SELECT shop_set_purchase_limit(1, NULL) AS max_per_customer;
SELECT count(*) AS limits FROM purchase_limits;

SELECT * FROM shop_check_integrity();
SET checkout.allow_drop = on;
DROP EXTENSION checkout CASCADE;
