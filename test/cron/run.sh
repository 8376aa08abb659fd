#!/bin/sh
# shop_expire_orders() scheduled with pg_cron (Debian's postgresql-15-cron),
# as README.md shows it, run by test/run-all.sh in a throwaway cluster of its
# own with shared_preload_libraries = 'pg_cron'.  An order past its payment
# window must be cancelled by the job, its stock given back, within the
# next minute (pg_cron 1.4 schedules by the minute).  Prints "check:".
set -u
cd "$(dirname "$0")/../.."
. test/lib.sh

sql postgres "CREATE EXTENSION pg_cron" "CREATE EXTENSION checkout" \
	"INSERT INTO products (name, price_cents, stock) VALUES ('Flash Sale Smartphone', 49900, 5)" \
	"INSERT INTO customers (name) VALUES ('Ada')" \
	"INSERT INTO cart_items VALUES (1, 1, 2)" \
	"SET checkout.payment_window = '15min'" \
	"SELECT shop_checkout(1)" \
	"UPDATE orders SET expires_at = now() - interval '1 minute'" \
	"SELECT cron.schedule('checkout-expire-orders', '* * * * *', 'SELECT shop_expire_orders()')" \
	>/dev/null || exit 1

# Wait for the job's first run (at most 80 s)
i=0
until [ "$(psql -X -At -c "SELECT status FROM orders WHERE id = 1")" = cancelled ]; do
	i=$((i + 1))
	[ "$i" -gt 160 ] && break
	sleep 0.5
done
state=$(psql -X -At -c "
	SELECT o.status || ' ' || ps.stock || ' '
		   || (SELECT count(*) FROM shop_check_integrity()) || ' '
		   || (SELECT count(*) FROM cron.job_run_details WHERE status = 'succeeded')
	  FROM orders AS o, product_stock AS ps WHERE o.id = 1")
echo "order status, stock, integrity problems, succeeded runs: $state"
verdict check "pg_cron ran shop_expire_orders() (succeeded runs: ${state##* })" \
	[ "${state##* }" -ge 1 ]
verdict check "the expired order is cancelled, its stock back, integrity clean" \
	[ "${state% *}" = "cancelled 5 0" ]
