--
-- Without shared_preload_libraries = 'checkout' the statistics functions
-- say what is missing (55000), and checkout works as before.
--
CREATE EXTENSION checkout;
SHOW shared_preload_libraries;

SELECT * FROM shop_checkout_stats();
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM shop_checkout_stats;
\echo :LAST_ERROR_SQLSTATE
SELECT shop_checkout_stats_reset();
\echo :LAST_ERROR_SQLSTATE

INSERT INTO products (name, price_cents, stock) VALUES ('Widget', 250, 10);
INSERT INTO customers (name) VALUES ('Ada');
INSERT INTO cart_items VALUES (1, 1, 2);
SELECT shop_checkout(1) AS order_id;

-- checkout.lock_timeout is a setting of its own, in milliseconds
SHOW checkout.lock_timeout;
SET checkout.lock_timeout = '2s';
SHOW checkout.lock_timeout;
SET checkout.lock_timeout = -1;
RESET checkout.lock_timeout;
SET checkout.no_such_setting = 1;

SET checkout.allow_drop = on;
DROP EXTENSION checkout CASCADE;
