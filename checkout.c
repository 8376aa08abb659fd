/*-------------------------------------------------------------------------
 *
 * checkout.c
 *		shop_checkout(customer_id [, idempotency_key]): turn a customer's
 *		cart into an order in one atomic, race-free step.
 *
 * The whole checkout runs inside the caller's transaction, through SPI:
 *
 *	0. fail fast: on the statement's snapshot, without taking any lock, look
 *	   for cart lines the stock on sale cannot serve (counting what orders
 *	   past their payment window hold); if there are any, raise SH001 with
 *	   those figures (checkout.fail_fast);
 *	1. read the customer's cart once, locking its lines (FOR UPDATE), and
 *	   work from that set from then on; with an idempotency key, claim it
 *	   for the order to come (or return the order a call with it made);
 *	   with a purchase limit on a line, take the customer's turn and raise
 *	   SH005 past the limit (check_limits);
 *	2. queue for the cart's products without stock slots: one
 *	   transaction-level lock per product (checkout.queue_locks), in
 *	   ascending product id order;
 *	3. lock those products in ascending product id order with FOR NO KEY
 *	   UPDATE; then, in ascending product id order, serve each line of a
 *	   product with stock slots from its slots (slots_take), or lock
 *	   the row, slots and other locations of a product stocked in several
 *	   (locations.c; since 1.2);
 *	4. validate every line against the locked stock, first taking back the
 *	   stock of expired orders for a line it cannot serve (reclaim_expired);
 *	   allocate the lines of products in several locations to them;
 *	5. in one statement: decrement the stock (rows and slots locked but not
 *	   yet decremented), insert the order (its total computed here,
 *	   overflow-checked) and its lines, and delete exactly the cart lines that
 *	   were ordered; then, with other locations, decrement theirs and record
 *	   the allocations (locations_write_allocations).
 *
 * Why failing fast on a snapshot is correct.  The snapshot holds committed
 * data as of a moment within this call (under READ COMMITTED, the start of
 * the statement; under REPEATABLE READ and SERIALIZABLE, the transaction's
 * snapshot, which is what such a transaction sees anyway, and SERIALIZABLE
 * tracks the read).  Stock only ever reached that state through committed
 * transactions, so "available: 0" was true at that moment, and rejecting is
 * a result the shopper could have got by arriving a moment earlier.  It is
 * never an oversell: rejecting never writes.  What fails fast is rechecked
 * by nobody; what passes is checked again under the row lock (step 4), so a
 * snapshot that shows enough stock never lets a checkout through alone.
 * Under a sold-out rush this turns every rejection into a lock-free read:
 * rejected buyers never queue behind the row lock, and write nothing.
 *
 * Why queue.  When many checkouts wait for one product's row lock, each
 * commit wakes them all to re-check the row (a thundering herd, which on
 * two cores costs more than the checkouts themselves).  Waiting first in the
 * lock manager's queue for a per-product lock wakes them one at a time.  The
 * lock is a heavyweight advisory lock of this database on the product id,
 * with its fourth field CHECKOUT_QUEUE_LOCK (user advisory locks use 1 and
 * 2, so they never collide); it shows in pg_locks as locktype 'advisory',
 * objsubid 21320.  Carts of more than CHECKOUT_QUEUE_MAX_LINES lines skip
 * this queue for their products without slots.  A line of a product with
 * slots takes that product's queue lock whatever the cart's length, and
 * only when every slot that could serve it is busy (slots.c): it lets it go
 * once a slot serves the line, and keeps it to the end of the transaction
 * only when it goes on to combine slots.  So a cart holds at most one queue
 * lock per line, within max_locks_per_transaction like any other lock.
 *
 * Why stock slots.  However short the row lock, one product row lets one
 * checkout commit at a time (the lock is held through the commit's WAL
 * flush).  A product split into slots (shop_split_stock: rows of
 * stock_slots, its stock on sale being its row's stock plus theirs) lets
 * buyers lock different rows, so that their commits share WAL flushes.  A
 * line takes one free slot that holds its whole quantity (SKIP LOCKED,
 * starting at a random slot); only when every such slot is busy does it
 * queue (the product's queue lock) and wait for one; only when no slot holds
 * the quantity does it lock the product row and every slot and combine
 * them, so that SH001 is raised only when all of them together are short.
 *
 * Locking rules.  Cart lines are locked FOR UPDATE (the level their DELETE
 * takes anyway), so a second browser tab that changes a line being ordered
 * waits for the checkout and then finds the line gone, while lines it adds
 * are not seen and stay in the cart.  Products are locked FOR NO KEY UPDATE,
 * never FOR UPDATE: the foreign key checks of add-to-cart take KEY SHARE,
 * which FOR UPDATE would block.  Every checkout takes its locks in one
 * global order: queue locks of products without slots by ascending product
 * id, then their row locks by ascending product id, then, product after
 * product in ascending id order, a product with slots: a slot taken without
 * waiting, or its queue lock, a wait for one slot, or its row and then all
 * its slots in slot order.  A checkout that goes on to wait for a product
 * with slots first gives back any slot of it that it locked in vain (a
 * subtransaction, see take_one_slot).  So checkouts cannot deadlock against
 * each other (two checkouts in one caller transaction can, and then 40P01
 * says so; so can, rarely, a checkout that read a product as not split
 * while shop_split_stock split it).
 * Under READ COMMITTED the locking reads return the newest committed rows;
 * under REPEATABLE READ and SERIALIZABLE a row changed since the snapshot
 * makes the locking read fail with SQLSTATE 40001, for the client to retry.
 * The CHECK (stock >= 0) constraint is the last line of defence: stock can
 * never go negative even if this code were wrong.
 *
 * Errors.  A checkout raises its own errors (SH001-SH003, 22004, 22003)
 * with ereport; an error raised by PostgreSQL while the checkout waits for a
 * lock (55P03 after checkout.lock_timeout, 40001, 40P01, a cancel) goes to
 * the client unchanged, with one more context line naming what the
 * checkout was locking at that moment (checkout_error_context).
 * shop_checkout()'s catch block only counts the call in the statistics and
 * re-throws (stock.c's only rolls its subtransaction back and re-throws).
 *
 * Memory rules.  A statement's plan is prepared the first time it runs in a
 * backend and kept (SPI_keepplan) in its entry of the table of the file
 * that runs it (statements.h).  The running call's state is a
 * CheckoutCall on shop_checkout()'s stack, passed to the steps and to the
 * error context callback as its argument.  Everything else
 * lives in the SPI procedure context and is freed by SPI_finish, including
 * the product ids the current lock step points to (the step is a constant
 * phrase; only the error context callback formats it), which is cleared
 * before the call returns.  On an error SPI is cleaned up by the transaction (or
 * subtransaction) abort.
 *
 * Security.  Every statement names its tables through the schema the
 * function itself lives in (the extension's schema), quoted with
 * quote_identifier, and qualifies its operators and functions with
 * pg_catalog, so nothing earlier on search_path can capture them.  Values
 * go in only as SPI parameters.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "optimizer/cost.h"
#include "portability/instr_time.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

#include "checkout.h"
#include "bundles.h"
#include "events.h"
#include "locations.h"
#include "preorders.h"
#include "slots.h"
#include "statements.h"
#include "voucher.h"


/*
 * The cart's lines with the last slot number of their product, a piece:
 * LAST_SLOT, or NO_SLOT in a shop that never split stock into slots
 * (checkout_shop_uses(CHECKOUT_SLOTS))
 */
#define CART_SQL(last_slot) \
	"SELECT c.product_id, c.quantity," \
	"       " last_slot "," \
	"       %4$s" \
	"  FROM %1$s.cart_items AS c" \
	" WHERE c.customer_id OPERATOR(pg_catalog.=) $1" \
	" ORDER BY c.product_id" \
	"   FOR UPDATE OF c"

#define LAST_SLOT \
	"(SELECT pg_catalog.max(s.slot) FROM %1$s.stock_slots AS s" \
	"  WHERE s.product_id OPERATOR(pg_catalog.=) c.product_id)"

#define NO_SLOT "NULL::pg_catalog.int4"

/*
 * The stock a write takes (a piece of WRITE_ORDER_SQL): from the locked
 * product rows at ctids $6, $7 units from each, and from the stock slots
 * at ctids $8, $9 from each.  A write that takes none from rows, or none
 * from slots, is a statement without that piece: its executor never opens
 * the table, its indexes and its triggers (a few microseconds of a
 * one-line checkout), and a shop's statement trigger on the table does not
 * fire for it.
 */
#define SOLD_FROM_ROWS \
	", sold AS (" \
	"  UPDATE %1$s.products AS p" \
	"     SET stock = p.stock OPERATOR(pg_catalog.-)" \
	"         ($7)[pg_catalog.array_position($6, p.ctid)]" \
	"   WHERE p.ctid OPERATOR(pg_catalog.=) ANY ($6)" \
	")"
#define SOLD_FROM_SLOTS \
	", slot_sold AS (" \
	"  UPDATE %1$s.stock_slots AS s" \
	"     SET stock = s.stock OPERATOR(pg_catalog.-)" \
	"         ($9)[pg_catalog.array_position($8, s.ctid)]" \
	"   WHERE s.ctid OPERATOR(pg_catalog.=) ANY ($8)" \
	")"

/*
 * Every write of a checkout in one statement (STMT_WRITE_ORDER and,
 * with a voucher, STMT_WRITE_VOUCHER_ORDER, which passes the pieces
 * that record it): the lines' columns, a CTE, the order's and its lines'
 * columns and values (each piece empty or starting with a comma)
 */
#define WRITE_ORDER_ARGTYPES \
	INT8OID, INT8ARRAYOID, INT4ARRAYOID, INT8ARRAYOID, INT8OID, \
	TIDARRAYOID, INT4ARRAYOID, TIDARRAYOID, INT4ARRAYOID, INT8OID, INT4OID

#define WRITE_ORDER_SQL(stock, more_lines, line_column, cte, order_columns, \
						order_values, line_value, tail) \
	"WITH line AS (" \
	"  SELECT l.*" \
	"    FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3)," \
	"                    pg_catalog.unnest($4)" more_lines ")" \
	"         AS l(product_id, quantity, unit_price_cents" line_column ")" \
	")" stock cte ", new_order AS (" \
	"  INSERT INTO %1$s.orders (id, customer_id, total_cents%5$s" order_columns ")" \
	"  VALUES (COALESCE($10, pg_catalog.nextval(%2$s::pg_catalog.regclass))," \
	"          $1, $5%6$s" order_values ")" \
	"  RETURNING id" \
	"), new_lines AS (" \
	"  INSERT INTO %1$s.order_items" \
	"         (order_id, product_id, quantity, unit_price_cents" line_column ")" \
	"  SELECT new_order.id, line.product_id, line.quantity," \
	"         line.unit_price_cents" line_value \
	"    FROM new_order, line" \
	"), ordered AS (" \
	"  DELETE FROM %1$s.cart_items AS c" \
	"   WHERE c.customer_id OPERATOR(pg_catalog.=) $1" \
	"     AND c.product_id OPERATOR(pg_catalog.=) ANY ($2)" \
	")" tail \
	"SELECT new_order.id FROM new_order"

/*
 * The parts the order's bundles took (bundles.c's BundleParts, from
 * parameter first on: bundles, parts, quantities per unit of the bundle)
 */
#define WRITE_PARTS_SQL(first, second, third) \
	", parts AS (" \
	"  INSERT INTO %1$s.order_item_parts (order_id, bundle_id, product_id, quantity)" \
	"  SELECT new_order.id, p.bundle_id, p.product_id, p.quantity" \
	"    FROM new_order," \
	"         ROWS FROM (pg_catalog.unnest($" first "), pg_catalog.unnest($" second ")," \
	"                    pg_catalog.unnest($" third "))" \
	"         AS p(bundle_id, product_id, quantity)" \
	")"

#define WRITE_VOUCHER_ORDER_SQL(stock, tail) \
	WRITE_ORDER_SQL(stock, ", pg_catalog.unnest($15)", ", discount_cents", \
					", used AS (" \
					"  UPDATE %1$s.voucher_slots AS vs" \
					"     SET remaining = vs.remaining OPERATOR(pg_catalog.-) 1" \
					"   WHERE vs.ctid OPERATOR(pg_catalog.=) $16" \
					")", \
					", voucher_id, voucher_code_id, discount_cents", \
					", $12, $13, $14", ", line.discount_cents", tail)

#define WRITE_VOUCHER_ORDER_ARGTYPES \
	WRITE_ORDER_ARGTYPES, INT8OID, INT8OID, INT8OID, INT8ARRAYOID, TIDOID

#define WRITE_BUNDLE_ORDER_ARGTYPES \
	WRITE_ORDER_ARGTYPES, INT8ARRAYOID, INT8ARRAYOID, INT4ARRAYOID

#define WRITE_VOUCHER_BUNDLE_ORDER_ARGTYPES \
	WRITE_VOUCHER_ORDER_ARGTYPES, INT8ARRAYOID, INT8ARRAYOID, INT4ARRAYOID

/* The four writes, each of the stock it takes (SOLD_FROM_ROWS, SOLD_FROM_SLOTS) */
#define WRITE_PLAIN_SQL(stock) \
	WRITE_ORDER_SQL(stock, "", "", "", "", "", "", "")
#define WRITE_BUNDLE_SQL(stock) \
	WRITE_ORDER_SQL(stock, "", "", "", "", "", "", WRITE_PARTS_SQL("12", "13", "14"))
#define WRITE_VOUCHER_SQL(stock) \
	WRITE_VOUCHER_ORDER_SQL(stock, "")
#define WRITE_VOUCHER_BUNDLE_SQL(stock) \
	WRITE_VOUCHER_ORDER_SQL(stock, WRITE_PARTS_SQL("17", "18", "19"))

/*
 * Where a write takes stock from: the forms of each write statement (none:
 * a line served by one slot took it already, slots_take; or preordered)
 */
typedef enum WriteStock
{
	WRITE_FROM_ROWS_AND_SLOTS,
	WRITE_FROM_ROWS,
	WRITE_FROM_SLOTS,
	WRITE_FROM_NONE,
	NUM_WRITE_STOCK
} WriteStock;

/* One form of a write statement: its id, SQL and argument types */
#define WRITE_FORM(id, since_, nargs_, sql_, ...) \
	[id] = { \
		.what = "writing the order", .since = since_, .ok = SPI_OK_SELECT, \
		.nargs = nargs_, .argtypes = {__VA_ARGS__}, .sql = sql_ \
	}

/*
 * A write statement's entries (first: its id), one per WriteStock, the SQL
 * made by sql_of from the stock pieces
 */
#define WRITE_STATEMENTS(first, since_, nargs_, sql_of, ...) \
	WRITE_FORM(first + WRITE_FROM_ROWS_AND_SLOTS, since_, nargs_, \
			   sql_of(SOLD_FROM_ROWS SOLD_FROM_SLOTS), __VA_ARGS__), \
	WRITE_FORM(first + WRITE_FROM_ROWS, since_, nargs_, \
			   sql_of(SOLD_FROM_ROWS), __VA_ARGS__), \
	WRITE_FORM(first + WRITE_FROM_SLOTS, since_, nargs_, \
			   sql_of(SOLD_FROM_SLOTS), __VA_ARGS__), \
	WRITE_FORM(first + WRITE_FROM_NONE, since_, nargs_, sql_of(""), __VA_ARGS__)

/* The statements of checkout (statements.h), each run by the function that needs it */
typedef enum CheckoutStatementId
{
	STMT_CART,
	STMT_CART_PLAIN,
	STMT_CART_UNSPLIT,
	STMT_CART_PLAIN_UNSPLIT,
	STMT_CUSTOMER,
	STMT_LOCK_PRODUCTS,
	STMT_KEY_LOOKUP,
	STMT_KEY_CLAIM,
	STMT_LOCK_CUSTOMER,
	STMT_OVER_LIMIT,
	STMT_WATCH_STOCK,
	STMT_KEY_LOOKUP_REQUEST,
	STMT_KEY_CLAIM_REQUEST,
	STMT_SET_CART,
	/* each write in its four forms, in WriteStock's order */
	STMT_WRITE_ORDER,
	STMT_WRITE_VOUCHER_ORDER = STMT_WRITE_ORDER + NUM_WRITE_STOCK,
	STMT_WRITE_BUNDLE_ORDER = STMT_WRITE_VOUCHER_ORDER + NUM_WRITE_STOCK,
	STMT_WRITE_VOUCHER_BUNDLE_ORDER = STMT_WRITE_BUNDLE_ORDER + NUM_WRITE_STOCK,
	NUM_STATEMENTS = STMT_WRITE_VOUCHER_BUNDLE_ORDER + NUM_WRITE_STOCK
} CheckoutStatementId;

static Statement statements[NUM_STATEMENTS] = {
	/*
	 * 1. The cart, read once and held: its lines are locked.  Which products
	 * have slots, and their last slot's number (slots are numbered from 0),
	 * is read on the snapshot (see lock_products for a product split
	 * meanwhile); so is whether a product has a purchase limit (the limit
	 * itself is read again under the customer's lock, STMT_OVER_LIMIT).
	 */
	[STMT_CART] = {
		.what = "reading the cart",
		.since = SINCE_1_0,
		.ok = SPI_OK_SELECT,
		.nargs = 1,
		.argtypes = {INT8OID},
		.sql = CART_SQL(LAST_SLOT)
	},

	/* The same where no product has ever had a purchase limit */
	[STMT_CART_PLAIN] = {
		.what = "reading the cart",
		.since = SINCE_1_0,
		.ok = SPI_OK_SELECT,
		.plain = true,
		.nargs = 1,
		.argtypes = {INT8OID},
		.sql = CART_SQL(LAST_SLOT)
	},

	/*
	 * The two where no product was ever split into slots (1.3): a product
	 * split after this read is found short on its row, then its slots are
	 * locked and counted (lock_products)
	 */
	[STMT_CART_UNSPLIT] = {
		.what = "reading the cart",
		.since = SINCE_1_0,
		.ok = SPI_OK_SELECT,
		.nargs = 1,
		.argtypes = {INT8OID},
		.sql = CART_SQL(NO_SLOT)
	},

	[STMT_CART_PLAIN_UNSPLIT] = {
		.what = "reading the cart",
		.since = SINCE_1_0,
		.ok = SPI_OK_SELECT,
		.plain = true,
		.nargs = 1,
		.argtypes = {INT8OID},
		.sql = CART_SQL(NO_SLOT)
	},

	/* Tells an unknown customer from an empty cart */
	[STMT_CUSTOMER] = {
		.what = "looking up the customer",
		.since = SINCE_1_0,
		.ok = SPI_OK_SELECT,
		.read_only = true,
		.nargs = 1,
		.argtypes = {INT8OID},
		.sql = "SELECT 1 FROM %1$s.customers AS c"
		" WHERE c.id OPERATOR(pg_catalog.=) $1"
	},

	/* 3. The cart's products without slots ($1), locked in ascending id order */
	[STMT_LOCK_PRODUCTS] = {
		.what = "locking the products",
		.since = SINCE_1_0,
		.ok = SPI_OK_SELECT,
		.nargs = 1,
		.argtypes = {INT8ARRAYOID},
		.sql = "SELECT p.id, p.name, p.price_cents, p.stock, p.ctid"
		"  FROM %1$s.products AS p"
		" WHERE p.id OPERATOR(pg_catalog.=) ANY ($1)"
		" ORDER BY p.id"
		"   FOR NO KEY UPDATE"
	},

	/*
	 * 5. Every write in one statement: $1 customer, $2 product ids, $3
	 * quantities, $4 unit prices, $5 order total, $6 the locked product rows
	 * to take stock from (ctids) and $7 how much from each, $8 and $9 the
	 * same for stock slots.  Stock is updated by ctid (a TID scan, whatever
	 * the planner thinks of the table's size): the rows are locked by this
	 * transaction, so their ctids cannot change.  $10 is the order's id when
	 * a key reserved it (else the identity's next), $11 the payment window in
	 * seconds (0: none).
	 */
	WRITE_STATEMENTS(STMT_WRITE_ORDER, SINCE_1_0, 11, WRITE_PLAIN_SQL,
					 WRITE_ORDER_ARGTYPES),

	/*
	 * The same with bundles (1.3): $12 to $14 the parts their bundles took
	 * (order_item_parts)
	 */
	WRITE_STATEMENTS(STMT_WRITE_BUNDLE_ORDER, SINCE_1_3, 14, WRITE_BUNDLE_SQL,
					 WRITE_BUNDLE_ORDER_ARGTYPES),

	/* The order an idempotency key ($2) of a customer ($1) made */
	[STMT_KEY_LOOKUP] = {
		.what = "looking up the idempotency key",
		.since = SINCE_1_1,
		.ok = SPI_OK_SELECT,
		.nargs = 2,
		.argtypes = {INT8OID, TEXTOID},
		.sql = "SELECT k.order_id FROM %1$s.idempotency_keys AS k"
		" WHERE k.customer_id OPERATOR(pg_catalog.=) $1"
		"   AND k.idempotency_key OPERATOR(pg_catalog.=) $2"
	},

	/*
	 * Claim a key for the order this checkout will write, reserving its id;
	 * no row when the key is taken.  A call with the same key still in flight
	 * holds the primary key's entry: this waits for its end, then inserts (it
	 * rolled back) or finds the key taken (it committed).
	 */
	[STMT_KEY_CLAIM] = {
		.what = "claiming the idempotency key",
		.since = SINCE_1_1,
		.ok = SPI_OK_INSERT_RETURNING,
		.nargs = 2,
		.argtypes = {INT8OID, TEXTOID},
		.sql = "INSERT INTO %1$s.idempotency_keys AS k"
		"       (customer_id, idempotency_key, order_id)"
		" VALUES ($1, $2, pg_catalog.nextval(%2$s::pg_catalog.regclass))"
		" ON CONFLICT (customer_id, idempotency_key) DO NOTHING"
		" RETURNING k.order_id"
	},

	/*
	 * 2a. Purchase limits under REPEATABLE READ and SERIALIZABLE: two
	 * checkouts of one customer take turns on its row (an update, so that the
	 * second gets 40001 rather than count on a snapshot without the first's
	 * order; see check_limits), ...
	 */
	[STMT_LOCK_CUSTOMER] = {
		.what = "locking the customer",
		.since = SINCE_1_1,
		.ok = SPI_OK_UPDATE,
		.nargs = 1,
		.argtypes = {INT8OID},
		.sql = "UPDATE %1$s.customers AS c SET name = c.name"
		" WHERE c.id OPERATOR(pg_catalog.=) $1"
	},

	/*
	 * ... then the lines ($2 products, $3 quantities) that would take the
	 * customer past a product's limit, counting the units of their orders not
	 * cancelled: driven by the customer's orders, each probing its line of
	 * the product by primary key (OFFSET 0: never a scan of the product's
	 * every sale, which a hot product has thousands of)
	 */
	[STMT_OVER_LIMIT] = {
		.what = "checking the purchase limits",
		.since = SINCE_1_1,
		.ok = SPI_OK_SELECT,
		.nargs = 3,
		.argtypes = {INT8OID, INT8ARRAYOID, INT4ARRAYOID},
		.sql = "SELECT q.product_id, p.name, l.max_per_customer,"
		"       COALESCE(b.bought, 0), q.quantity"
		"  FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3))"
		"       AS q(product_id, quantity)"
		"  JOIN %1$s.purchase_limits AS l"
		"    ON l.product_id OPERATOR(pg_catalog.=) q.product_id"
		"  JOIN %1$s.products AS p ON p.id OPERATOR(pg_catalog.=) q.product_id"
		" CROSS JOIN LATERAL ("
		"  SELECT pg_catalog.sum(x.left_over) AS bought"
		"    FROM %1$s.orders AS o"
		LEFT_OVER_OF_LINE("q.product_id")
		"   WHERE o.customer_id OPERATOR(pg_catalog.=) $1"
		"     AND o.status OPERATOR(pg_catalog.<>) 'cancelled') AS b"
		" WHERE COALESCE(b.bought, 0) OPERATOR(pg_catalog.+) q.quantity"
		"       OPERATOR(pg_catalog.>) l.max_per_customer"
		" ORDER BY q.product_id"
	},

	/*
	 * STMT_WRITE_ORDER with a voucher: $12 the voucher, $13 its code, $14 the
	 * discount, $15 each line's share of it, $16 the locked voucher_slots row
	 * its use comes from (NULL: no usage limit, or a use taken already from a
	 * free slot)
	 */
	WRITE_STATEMENTS(STMT_WRITE_VOUCHER_ORDER, SINCE_1_2, 16, WRITE_VOUCHER_SQL,
					 WRITE_VOUCHER_ORDER_ARGTYPES),

	/* The same with bundles (1.3): $17 to $19 the parts their bundles took */
	WRITE_STATEMENTS(STMT_WRITE_VOUCHER_BUNDLE_ORDER, SINCE_1_3, 19,
					 WRITE_VOUCHER_BUNDLE_SQL, WRITE_VOUCHER_BUNDLE_ORDER_ARGTYPES),

	/*
	 * The products ($1) whose row or one of whose slots this checkout
	 * emptied, for shop_notify_stock_changes(): written only then, never per
	 * checkout
	 */
	[STMT_WATCH_STOCK] = {
		.what = "flagging sold-out products",
		.since = SINCE_1_2,
		.ok = SPI_OK_INSERT,
		.nargs = 1,
		.argtypes = {INT8ARRAYOID},
		.sql = "INSERT INTO %1$s.stock_watch (product_id)"
		" SELECT pg_catalog.unnest($1)"
		" ON CONFLICT DO NOTHING"
	},

	/*
	 * Since 1.3, a key keeps what its first call asked for ($3, request): its
	 * order, whether this request is the same (a key recorded before 1.3 has
	 * none, and any request replays it), and the first request
	 */
	[STMT_KEY_LOOKUP_REQUEST] = {
		.what = "looking up the idempotency key",
		.since = SINCE_1_3,
		.ok = SPI_OK_SELECT,
		.nargs = 3,
		.argtypes = {INT8OID, TEXTOID, JSONBOID},
		.sql = "SELECT k.order_id,"
		"       k.request IS NULL OR k.request OPERATOR(pg_catalog.=) $3,"
		"       COALESCE(k.request::pg_catalog.text, 'a request made before 1.3')"
		"  FROM %1$s.idempotency_keys AS k"
		" WHERE k.customer_id OPERATOR(pg_catalog.=) $1"
		"   AND k.idempotency_key OPERATOR(pg_catalog.=) $2"
	},

	/* STMT_KEY_CLAIM, keeping the request */
	[STMT_KEY_CLAIM_REQUEST] = {
		.what = "claiming the idempotency key",
		.since = SINCE_1_3,
		.ok = SPI_OK_INSERT_RETURNING,
		.nargs = 3,
		.argtypes = {INT8OID, TEXTOID, JSONBOID},
		.sql = "INSERT INTO %1$s.idempotency_keys AS k"
		"       (customer_id, idempotency_key, order_id, request)"
		" VALUES ($1, $2, pg_catalog.nextval(%2$s::pg_catalog.regclass), $3)"
		" ON CONFLICT (customer_id, idempotency_key) DO NOTHING"
		" RETURNING k.order_id"
	},

	/*
	 * shop_place_order(): the cart of customer $1 set to the lines ($2
	 * products, $3 quantities, $4 whether the buyer accepts a preorder): the
	 * other lines deleted, these inserted or updated (disjoint rows, so the
	 * two never meet), only when the customer and the product exist. Returns
	 * whether the customer exists and the products that do not.
	 */
	[STMT_SET_CART] = {
		.what = "setting the cart",
		.since = SINCE_1_3,
		.ok = SPI_OK_SELECT,
		.nargs = 4,
		.argtypes = {INT8OID, INT8ARRAYOID, INT4ARRAYOID, BOOLARRAYOID},
		.sql = "WITH l AS ("
		"  SELECT * FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3),"
		"                           pg_catalog.unnest($4)) AS l(product_id, quantity, accept_preorder)),"
		" cleared AS ("
		"  DELETE FROM %1$s.cart_items AS c"
		"   WHERE c.customer_id OPERATOR(pg_catalog.=) $1"
		"     AND c.product_id OPERATOR(pg_catalog.<>) ALL ($2)),"
		" filled AS ("
		"  INSERT INTO %1$s.cart_items AS c (customer_id, product_id, quantity, accept_preorder)"
		"  SELECT $1, l.product_id, l.quantity, l.accept_preorder"
		"    FROM l JOIN %1$s.products AS p ON p.id OPERATOR(pg_catalog.=) l.product_id"
		"   WHERE EXISTS (SELECT FROM %1$s.customers AS u WHERE u.id OPERATOR(pg_catalog.=) $1)"
		"  ON CONFLICT (customer_id, product_id) DO UPDATE"
		"     SET quantity = excluded.quantity, accept_preorder = excluded.accept_preorder)"
		"SELECT EXISTS (SELECT FROM %1$s.customers AS u WHERE u.id OPERATOR(pg_catalog.=) $1),"
		"       ARRAY(SELECT l.product_id FROM l"
		"              WHERE NOT EXISTS (SELECT FROM %1$s.products AS p"
		"                                 WHERE p.id OPERATOR(pg_catalog.=) l.product_id)"
		"              ORDER BY l.product_id)"
	},

};

PG_MODULE_MAGIC;

void		_PG_init(void);

/* checkout.lock_timeout: milliseconds a checkout waits for a lock; 0 = as the server does */
static int	checkout_lock_timeout = 0;

/* checkout.fail_fast: reject on the snapshot before taking any lock */
static bool checkout_fail_fast = true;

/* checkout.queue_locks: queue for each product before locking its row */
static bool checkout_queue_locks = true;

/* checkout.payment_window: seconds a placed order waits for shop_pay(); 0 = forever */
static int	checkout_payment_window = 0;

/* checkout.idempotency_retention: seconds a key is kept at least (read by SQL) */
static int	checkout_idempotency_retention = 86400;

/* The fourth field of a customer's limit lock tag ("SC") */
#define CHECKOUT_CUSTOMER_LOCK 0x5343

/* The fourth field of a customer's cart lock tag ("SP": shop_place_order) */
#define CHECKOUT_CART_LOCK 0x5350

/* Carts with more lines than this skip the queue */
#define CHECKOUT_QUEUE_MAX_LINES 16

/*
 * Read and lock the customer's cart; return its line count and the lines,
 * in ascending product id order.
 */
static int
read_cart(CheckoutCall *call, int64 customer_id, CartLine **lines_out)
{
	Datum		args[1] = {Int64GetDatum(customer_id)};
	CartLine   *lines;
	int			nlines;
	Datum		last_slot;
	bool		no_slots;
	bool		limits = checkout_shop_uses(CHECKOUT_LIMITS);
	CheckoutStatementId id;

	if (checkout_shop_uses(CHECKOUT_SLOTS))
		id = limits ? STMT_CART : STMT_CART_PLAIN;
	else
		id = limits ? STMT_CART_UNSPLIT : STMT_CART_PLAIN_UNSPLIT;
	checkout_lock_step(call, "locking the cart", 0);
	nlines = (int) stmt_execute(&statements[id], args, NULL, 0);
	checkout_lock_step(call, NULL, 0);

	lines = palloc0(sizeof(CartLine) * Max(nlines, 1));
	for (int i = 0; i < nlines; i++)
	{
		lines[i].product_id = DatumGetInt64(stmt_value(i, 1));
		lines[i].quantity = DatumGetInt32(stmt_value(i, 2));
		last_slot = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
								  3, &no_slots);
		lines[i].nslots = no_slots ? 0 : DatumGetInt32(last_slot) + 1;
		lines[i].limited = DatumGetBool(stmt_value(i, 4));
	}
	*lines_out = lines;
	return nlines;
}

/*
 * Ensure every line's quantity is in stock, less its units preordered.
 * Otherwise report the first short line in the message and every short
 * line in the detail, with what it could preorder when its buyer accepted
 * a preorder (preorders.c).
 */
static void
check_stock(CheckoutCall *call, const CartLine *lines, int nlines)
{
	const CartLine *first = NULL;
	StringInfoData detail;

	initStringInfo(&detail);
	for (int i = 0; i < nlines; i++)
	{
		if (lines[i].stock >= lines[i].quantity - lines[i].pre.preordered)
			continue;
		checkout_refuse_line(call, first == NULL, lines[i].product_id, lines[i].name,
							 lines[i].stock, lines[i].quantity,
							 lines[i].pre.preorderable ? lines[i].pre.preorder_room : -1,
							 lines[i].bundle.of);
		if (first == NULL)
			first = &lines[i];
		else
			appendStringInfoChar(&detail, '\n');
		if (lines[i].bundle.of != NULL)
			appendStringInfo(&detail,
							 "Product %lld \"%s\" (a part of %s): available %lld, requested %d.",
							 (long long) lines[i].product_id, lines[i].name, lines[i].bundle.of,
							 (long long) lines[i].stock, lines[i].quantity);
		else if (lines[i].pre.preorderable)
			appendStringInfo(&detail,
							 "Product %lld \"%s\": available %lld, preorderable %d, requested %d.",
							 (long long) lines[i].product_id, lines[i].name,
							 (long long) lines[i].stock, lines[i].pre.preorder_room,
							 lines[i].quantity);
		else
			appendStringInfo(&detail,
							 "Product %lld \"%s\": available %lld, requested %d.",
							 (long long) lines[i].product_id, lines[i].name,
							 (long long) lines[i].stock, lines[i].quantity);
	}

	if (first != NULL)
		checkout_refusal_end(call);
	if (first != NULL && first->bundle.of != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CHECKOUT_INSUFFICIENT_STOCK),
				 errmsg("Insufficient stock for %s: part %s (available: %lld, requested: %d)",
						first->bundle.of, first->name, (long long) first->stock,
						first->quantity),
				 errdetail("%s", detail.data),
				 errhint("Lower the quantity of each product listed to what is available, or remove it from the cart, then check out again.")));
	if (first != NULL && first->pre.preorderable)
		ereport(ERROR,
				(errcode(ERRCODE_CHECKOUT_INSUFFICIENT_STOCK),
				 errmsg("Insufficient stock for %s (available: %lld, preorderable: %d, requested: %d)",
						first->name, (long long) first->stock, first->pre.preorder_room,
						first->quantity),
				 errdetail("%s", detail.data),
				 errhint("Lower the quantity of each product listed to what is available, or remove it from the cart, then check out again.")));
	if (first != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CHECKOUT_INSUFFICIENT_STOCK),
				 errmsg("Insufficient stock for %s (available: %lld, requested: %d)",
						first->name, (long long) first->stock, first->quantity),
				 errdetail("%s", detail.data),
				 errhint("Lower the quantity of each product listed to what is available, or remove it from the cart, then check out again.")));
	pfree(detail.data);
}

/*
 * The order an idempotency key of the customer made, or 0 (order ids are
 * positive: the identity starts at 1)
 */
static int64
key_order(CheckoutCall *call, int64 customer_id, text *key)
{
	Datum		args[3] = {Int64GetDatum(customer_id), PointerGetDatum(key), call->request};
	int64		order_id;

	if (!stmt_available(&statements[STMT_KEY_LOOKUP_REQUEST]))
		return stmt_execute(&statements[STMT_KEY_LOOKUP], args, NULL, 1) == 1 ?
			DatumGetInt64(stmt_value(0, 1)) : 0;
	if (stmt_execute(&statements[STMT_KEY_LOOKUP_REQUEST], args, NULL, 1) != 1)
		return 0;
	order_id = DatumGetInt64(stmt_value(0, 1));

	/* Ensure the key's first call asked for what this one asks for */
	if (!DatumGetBool(stmt_value(0, 2)))
		ereport(ERROR,
				(errcode(ERRCODE_CHECKOUT_KEY_REUSED),
				 errmsg("idempotency key \"%s\" was used for another request (order %lld)",
						text_to_cstring(key), (long long) order_id),
				 errdetail("Order %lld of customer %lld was placed with this key for %s; this call asks for %s.",
						   (long long) order_id, (long long) customer_id,
						   TextDatumGetCString(stmt_value(0, 3)),
						   DatumGetCString(DirectFunctionCall1(jsonb_out, call->request))),
				 errhint("Use a new key for a new checkout; retry with a key only the request it was first used for.")));
	return order_id;
}

/*
 * Claim the key for the order this checkout writes: return the order id it
 * reserves, or, when the key is taken (a call with it committed, after
 * waiting for it if it was in flight), 0.
 */
static int64
claim_key(CheckoutCall *call, int64 customer_id, text *key)
{
	Datum		args[3] = {Int64GetDatum(customer_id), PointerGetDatum(key), call->request};
	bool		claimed;

	checkout_lock_step(call, "waiting for the call with the same idempotency key", 0);
	claimed = stmt_execute(&statements[stmt_available(&statements[STMT_KEY_CLAIM_REQUEST]) ?
									   STMT_KEY_CLAIM_REQUEST : STMT_KEY_CLAIM],
						   args, NULL, 1) == 1;
	checkout_lock_step(call, NULL, 0);
	return claimed ? DatumGetInt64(stmt_value(0, 1)) : 0;
}

/*
 * Raise SH001 for the nshort lines the snapshot's stock cannot serve
 * (short_lines: product id, quantity, name and stock), if any; but first,
 * with a key, look again whether a call with it has committed since: then
 * return that order's id.  0 when no line is short.
 */
static int64
reject_short_lines(CheckoutCall *call, int64 customer_id, text *key,
				   CartLine *short_lines, int nshort)
{
	int64		replay;

	if (nshort == 0)
		return 0;

	/*
	 * Short of the default's stock, perhaps not of every location's, nor of
	 * what the buyer may preorder
	 */
	if ((nshort = locations_drop_served_lines(short_lines, nshort)) == 0 ||
		(nshort = preorders_drop_served_lines(customer_id, short_lines, nshort)) == 0)
		return 0;
	if (key != NULL && (replay = key_order(call, customer_id, key)) != 0)
		return replay;
	check_stock(call, short_lines, nshort);
	elog(ERROR, "checkout: short lines passed the stock check");
}

/*
 * Fail fast: raise SH001 if, on the snapshot and without taking any lock,
 * the stock cannot serve some line of the cart (counting what orders past
 * their payment window hold: the checkout takes that back).  See the header
 * comment for why that is correct.  With a key, first look again whether a
 * call with it has committed since: then return that order's id (else 0).
 */
static int64
reject_on_snapshot(CheckoutCall *call, int64 customer_id, text *key)
{
	int			nshort;
	CartLine   *short_lines = stock_find_short_lines(customer_id, &nshort);

	return reject_short_lines(call, customer_id, key, short_lines, nshort);
}

/*
 * Purchase limits: when a line's product has one, or the voucher has a limit
 * per customer (voucher_limited: counted later, voucher_take_use), two
 * checkouts of one customer take turns (different customers never meet),
 * then raise SH005 if the cart would take the customer past a product's
 * limit, counting the units of their orders not cancelled.
 *
 * Under READ COMMITTED the turn is a transaction-level lock on the customer
 * id in the lock manager (writes nothing): the count that follows takes a
 * new snapshot, which shows the order of the checkout that held the lock
 * (a transaction is visible before it lets its locks go).  Under REPEATABLE
 * READ and SERIALIZABLE the count reads the transaction's snapshot, so the
 * turn is an update of the customer's row instead: a checkout whose snapshot
 * misses another's order then gets 40001 from that update.
 */
static void
check_limits(CheckoutCall *call, int64 customer_id, const CartLine *lines, int nlines,
			 bool voucher_limited)
{
	Datum	   *ids = palloc(sizeof(Datum) * nlines);
	Datum	   *quantities = palloc(sizeof(Datum) * nlines);
	int			n = 0;
	Datum		args[3];
	StringInfoData detail;

	for (int i = 0; i < nlines; i++)
		if (lines[i].limited)
		{
			ids[n] = Int64GetDatum(lines[i].product_id);
			quantities[n++] = Int32GetDatum(lines[i].quantity);
		}
	if (n == 0 && !voucher_limited)
		return;

	args[0] = Int64GetDatum(customer_id);
	checkout_lock_step(call, "locking customer", customer_id);
	if (IsolationUsesXactSnapshot())
	{
		(void) stmt_execute(&statements[STMT_LOCK_CUSTOMER], args, NULL, 0);
	}
	else
	{
		LOCKTAG		tag;
		uint64		id = (uint64) customer_id;

		SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) (id >> 32), (uint32) id,
							 CHECKOUT_CUSTOMER_LOCK);
		(void) LockAcquire(&tag, ExclusiveLock, false, false);
	}
	checkout_lock_step(call, NULL, 0);
	if (n == 0)
		return;

	args[1] = stmt_bigint_array(ids, n);
	args[2] = stmt_int_array(quantities, n);
	if (stmt_execute(&statements[STMT_OVER_LIMIT], args, NULL, 0) == 0)
		return;

	initStringInfo(&detail);
	for (uint64 i = 0; i < SPI_processed; i++)
		checkout_refuse_limit(call, i == 0, DatumGetInt64(stmt_value(i, 1)),
							  TextDatumGetCString(stmt_value(i, 2)),
							  DatumGetInt32(stmt_value(i, 3)),
							  DatumGetInt64(stmt_value(i, 4)),
							  DatumGetInt32(stmt_value(i, 5)));
	checkout_refusal_end(call);
	for (uint64 i = 0; i < SPI_processed; i++)
		appendStringInfo(&detail, "%sProduct %lld \"%s\": limit %d, already bought %lld, requested %d.",
						 i == 0 ? "" : "\n",
						 (long long) DatumGetInt64(stmt_value(i, 1)),
						 TextDatumGetCString(stmt_value(i, 2)),
						 DatumGetInt32(stmt_value(i, 3)),
						 (long long) DatumGetInt64(stmt_value(i, 4)),
						 DatumGetInt32(stmt_value(i, 5)));
	ereport(ERROR,
			(errcode(ERRCODE_CHECKOUT_PURCHASE_LIMIT),
			 errmsg("Purchase limit for %s is %d per customer (already bought: %lld, requested: %d)",
					TextDatumGetCString(stmt_value(0, 2)), DatumGetInt32(stmt_value(0, 3)),
					(long long) DatumGetInt64(stmt_value(0, 4)), DatumGetInt32(stmt_value(0, 5))),
			 errdetail("%s", detail.data),
			 errhint("Lower the quantity of each product listed to what the limit leaves, or remove it from the cart, then check out again.")));
}

/*
 * Whether a line's product row is locked up front (lock_products), as
 * every line's is but those that may be served by one slot: of a product
 * with stock slots (slots.c), or the located hot product's fast path
 * (locations.c)
 */
static inline bool
row_locked_first(const CartLine *line)
{
	return line->nslots == 0 && line->loc.slot_count == 0;
}

/*
 * Queue for each product of the cart without slots, in ascending id order:
 * wait for the product's queue lock, held until the transaction ends.
 * (Buyers of a product with slots do not herd on one row; they queue only
 * when every slot is busy, in slots_take.)
 */
static void
queue_for_products(CheckoutCall *call, const CartLine *lines, int nlines)
{
	if (!checkout_queue_locks || nlines > CHECKOUT_QUEUE_MAX_LINES)
		return;

	for (int i = 0; i < nlines; i++)
	{
		LOCKTAG		tag;

		if (!row_locked_first(&lines[i]))
			continue;
		checkout_queue_lock_tag(&tag, lines[i].product_id);
		checkout_lock_step(call, "queueing for product", lines[i].product_id);
		(void) LockAcquire(&tag, ExclusiveLock, false, false);
	}
	checkout_lock_step(call, NULL, 0);
}

/* Raise SH003: there is no such customer (function: the one called) */
static void
report_unknown_customer(int64 customer_id, const char *function)
{
	ereport(ERROR,
			(errcode(ERRCODE_CHECKOUT_UNKNOWN_CUSTOMER),
			 errmsg("customer %lld does not exist",
					(long long) customer_id),
			 errdetail("There is no row with id %lld in table customers.",
					   (long long) customer_id),
			 errhint("Check the customer id passed to %s().", function)));
}

/* Report an empty cart, or an unknown customer when there is none */
static void
report_empty_cart(int64 customer_id)
{
	Datum		args[1] = {Int64GetDatum(customer_id)};

	if (stmt_execute(&statements[STMT_CUSTOMER], args, NULL, 1) == 0)
		report_unknown_customer(customer_id, "shop_checkout");

	ereport(ERROR,
			(errcode(ERRCODE_CHECKOUT_EMPTY_CART),
			 errmsg("cart of customer %lld is empty", (long long) customer_id),
			 errdetail("There are no rows for customer %lld in table cart_items.",
					   (long long) customer_id),
			 errhint("Add items to the cart before checking out.")));
}

/* Microseconds since start */
static int64
elapsed_us(instr_time start)
{
	instr_time	now;

	INSTR_TIME_SET_CURRENT(now);
	INSTR_TIME_SUBTRACT(now, start);
	return INSTR_TIME_GET_MICROSEC(now);
}

/*
 * The ids of the cart's products as a bigint[], in the lines' (ascending)
 * order: all of them, or only those without slots.  *n is set to their
 * number.
 */
static Datum
product_id_array(const CartLine *lines, int nlines, bool unslotted_only,
				 int *n)
{
	Datum	   *ids = palloc(sizeof(Datum) * nlines);

	*n = 0;
	for (int i = 0; i < nlines; i++)
		if (!unslotted_only || row_locked_first(&lines[i]))
			ids[(*n)++] = Int64GetDatum(lines[i].product_id);
	return stmt_bigint_array(ids, *n);
}

/*
 * Lock the cart's products that have no slots, in ascending id order, and
 * complete each of their lines with the product's name, price, stock and
 * row.  A product found short here may have been split into slots after the
 * cart was read: its slots are then locked too and counted (rare; see
 * stock_lock_all).
 */
static void
lock_products(CheckoutCall *call, CartLine *lines, int nlines, SlotTakes *takes)
{
	int			nids;
	Datum		args[1];
	uint64		nrows;
	int			row = 0;

	args[0] = product_id_array(lines, nlines, true, &nids);
	if (nids == 0)
		return;
	checkout_lock_products_step(call, (int64 *) ARR_DATA_PTR(DatumGetArrayTypeP(args[0])), nids);
	nrows = stmt_execute(&statements[STMT_LOCK_PRODUCTS], args, NULL, 0);
	checkout_lock_step(call, NULL, 0);

	/* Both lists are in ascending product id; the foreign key pairs them */
	if (nrows != (uint64) nids)
		elog(ERROR, "checkout: %d cart lines but " UINT64_FORMAT " products",
			 nids, nrows);
	for (int i = 0; i < nlines; i++)
	{
		if (!row_locked_first(&lines[i]))
			continue;
		if (DatumGetInt64(stmt_value(row, 1)) != lines[i].product_id)
			elog(ERROR, "checkout: product %lld of the cart was not found",
				 (long long) lines[i].product_id);
		lines[i].name = TextDatumGetCString(stmt_value(row, 2));
		lines[i].unit_price_cents = DatumGetInt64(stmt_value(row, 3));
		lines[i].stock = DatumGetInt32(stmt_value(row, 4));
		lines[i].ctid = *(ItemPointer) DatumGetPointer(stmt_value(row, 5));
		lines[i].row_take = lines[i].quantity;
		row++;
	}

	/* SPI_tuptable is not used beyond this point: the checks may query */
	for (int i = 0; i < nlines; i++)
		if (row_locked_first(&lines[i]) && lines[i].stock < lines[i].quantity &&
			!lines[i].loc.located)
			stock_lock_all(call, &lines[i], true, takes);
}

/* Return the order's total in cents; raise an error on overflow */
static int64
order_total(const CartLine *lines, int nlines)
{
	int64		total = 0;

	for (int i = 0; i < nlines; i++)
	{
		int64		line_total;

		if (pg_mul_s64_overflow(lines[i].unit_price_cents,
								(int64) lines[i].quantity, &line_total) ||
			pg_add_s64_overflow(total, line_total, &total))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("order total is out of range"),
					 errdetail("The total of the cart exceeds the largest bigint number of cents at product %lld.",
							   (long long) lines[i].product_id)));
	}
	return total;
}

/*
 * The cart's lines of products on their own take the name and price of
 * their product's locked row (a bundle's were read with its parts)
 */
static void
price_cart_lines(CartLine *lines, int nlines, const CartLine *stock, int nstock)
{
	for (int i = 0; i < nlines; i++)
	{
		if (lines[i].bundle.is_bundle)
			continue;
		for (int k = 0; k < nstock; k++)
			if (stock[k].product_id == lines[i].product_id)
			{
				lines[i].name = stock[k].name;
				lines[i].unit_price_cents = stock[k].unit_price_cents;
				break;
			}
	}
}

/*
 * Decrement the stock, insert the order and its lines, and delete the
 * ordered cart lines, in one statement; with a voucher, take its use (if
 * limited) and record it, the discount off total (the subtotal) and each
 * line's share; with bundles, the parts they took.  Return the new order's
 * id.
 */
static int64
write_order(CheckoutCall *call, int64 customer_id, const CartLine *lines,
			int nlines, const CartLine *stock, int nstock, const SlotTakes *takes,
			int64 total, int64 reserved_id, const Voucher *voucher,
			const BundleParts *parts)
{
	CheckoutStatementId id;
	Datum	   *quantities = palloc(sizeof(Datum) * nlines);
	Datum	   *prices = palloc(sizeof(Datum) * nlines);
	Datum	   *row_ctids = palloc(sizeof(Datum) * nstock);
	Datum	   *row_takes = palloc(sizeof(Datum) * nstock);
	int			nrows = 0;
	int			nids;
	Datum		args[19];
	char		nulls[19];

	memset(nulls, ' ', sizeof(nulls));
	for (int i = 0; i < nlines; i++)
	{
		quantities[i] = Int32GetDatum(lines[i].quantity);
		prices[i] = Int64GetDatum(lines[i].unit_price_cents);
	}
	for (int i = 0; i < nstock; i++)
		if (stock[i].row_take > 0)
		{
			row_ctids[nrows] = PointerGetDatum(&stock[i].ctid);
			row_takes[nrows++] = Int32GetDatum(stock[i].row_take);
		}
	args[0] = Int64GetDatum(customer_id);
	args[1] = product_id_array(lines, nlines, false, &nids);
	args[2] = stmt_int_array(quantities, nlines);
	args[3] = stmt_bigint_array(prices, nlines);
	args[4] = Int64GetDatum(total);
	args[5] = stmt_tid_array(row_ctids, nrows);
	args[6] = stmt_int_array(row_takes, nrows);
	args[7] = stmt_tid_array(takes->ctids, takes->n);
	args[8] = stmt_int_array(takes->amounts, takes->n);
	args[9] = Int64GetDatum(reserved_id);
	nulls[9] = reserved_id == 0 ? 'n' : ' ';
	args[10] = Int32GetDatum(checkout_payment_window);
	if (voucher != NULL)
	{
		args[4] = Int64GetDatum(total - voucher->discount_cents);
		args[11] = Int64GetDatum(voucher->id);
		args[12] = Int64GetDatum(voucher->code_id);
		args[13] = Int64GetDatum(voucher->discount_cents);
		args[14] = voucher->discount_shares;
		args[15] = PointerGetDatum(&voucher->use_ctid);
		nulls[15] = ItemPointerIsValid(&voucher->use_ctid) ? ' ' : 'n';
	}

	if (parts->n > 0)
	{
		int			first = voucher != NULL ? 16 : 11;

		args[first] = stmt_bigint_array(parts->bundle_ids, parts->n);
		args[first + 1] = stmt_bigint_array(parts->product_ids, parts->n);
		args[first + 2] = stmt_int_array(parts->quantities, parts->n);
		id = voucher != NULL ? STMT_WRITE_VOUCHER_BUNDLE_ORDER : STMT_WRITE_BUNDLE_ORDER;
	}
	else
		id = voucher != NULL ? STMT_WRITE_VOUCHER_ORDER : STMT_WRITE_ORDER;
	if (takes->n == 0)
		id += nrows == 0 ? WRITE_FROM_NONE : WRITE_FROM_ROWS;
	else if (nrows == 0)
		id += WRITE_FROM_SLOTS;

	/* Its foreign key checks lock the customer's and the products' rows */
	checkout_lock_step(call, "writing the order", 0);
	if (stmt_execute(&statements[id], args, nulls, 0) != 1)
		elog(ERROR, "checkout: writing the order wrote no order");
	checkout_lock_step(call, NULL, 0);
	checkout_order_written(checkout_payment_window > 0);

	return DatumGetInt64(stmt_value(0, 1));
}

/*
 * Flag for shop_notify_stock_changes() (1.2) the products whose row, slot
 * or whole stock this checkout emptied: a line's stock is what served it
 * (its row, its one slot, or all of them combined), so taking all of it
 * empties that.  Only then is anything written; a product with stock left
 * in other slots is looked at and passed over.  A bundle's part (1.3) is
 * flagged when less is left than a bundle takes of it: its bundles may be
 * sold out.
 */
static void
watch_emptied_stock(const CartLine *lines, int nlines)
{
	Datum	   *ids = palloc(sizeof(Datum) * nlines);
	int			n = 0;
	Datum		args[1];

	if (!stmt_available(&statements[STMT_WATCH_STOCK]))
		return;
	for (int i = 0; i < nlines; i++)
		if (lines[i].stock - (lines[i].quantity - lines[i].pre.preordered) <
			Max(lines[i].bundle.keep, 1))
			ids[n++] = Int64GetDatum(lines[i].product_id);
	if (n == 0)
		return;
	args[0] = stmt_bigint_array(ids, n);
	(void) stmt_execute(&statements[STMT_WATCH_STOCK], args, NULL, 0);
}

/*
 * The last resort before SH001: when a line its locked stock cannot serve
 * is of a product that placed orders past their payment window hold, expire
 * those orders (shop_reclaim_expired: only those whose products it can lock
 * without waiting) and read the lines' rows again.  Returns whether any
 * stock came back.
 */
static bool
reclaim_expired(CheckoutCall *call, CartLine *lines, int nlines, SlotTakes *takes)
{
	Datum	   *short_ids = palloc(sizeof(Datum) * nlines);
	int			nshort = 0;
	Oid			reclaim_function;

	for (int i = 0; i < nlines; i++)
		if (lines[i].stock < lines[i].quantity && ItemPointerIsValid(&lines[i].ctid))
			short_ids[nshort++] = Int64GetDatum(lines[i].product_id);
	if (nshort == 0 ||
		!OidIsValid(reclaim_function = stmt_reclaim_function()))
		return false;

	/*
	 * Called directly, not through SQL: a role that may only check out has no
	 * EXECUTE on it, and it runs as the extension's owner
	 */
	if (DatumGetInt32(OidFunctionCall1(reclaim_function,
									   stmt_bigint_array(short_ids, nshort))) == 0)
		return false;

	/*
	 * Expiring updated the rows of the products it gave stock back to: read
	 * again every row this checkout holds (it waits for nothing), and serve
	 * the short lines anew from the row and, if any, the slots
	 */
	for (int i = 0; i < nlines; i++)
	{
		if (!ItemPointerIsValid(&lines[i].ctid))
			continue;
		if (lines[i].loc.located)
		{
			locations_lock_line(call, &lines[i], false);
			continue;
		}
		if (lines[i].stock < lines[i].quantity)
		{
			lines[i].stock = stock_read_row_again(&lines[i]);
			stock_lock_all(call, &lines[i], true, takes);
		}
		else					/* served already: only its row's ctid moved */
			(void) stock_read_row_again(&lines[i]);
	}
	return true;
}

/* Whether some line asks for more than its stock */
static bool
any_short(const CartLine *lines, int nlines)
{
	for (int i = 0; i < nlines; i++)
		if (lines[i].stock < lines[i].quantity)
			return true;
	return false;
}

/*
 * Settings for the rest of this call, at a new GUC nesting level, which the
 * caller pops with AtEOXact_GUC() (or the transaction abort does); returns
 * the level, or 0 when nothing had to be set.
 *
 * enable_seqscan = off: every statement here finds rows by key or by ctid,
 * and a generic plan must not pick a sequential scan because a table looks
 * small or because it cannot know how many ids or ctids an array parameter
 * holds (it guesses 10: on a catalog of a thousand products, a TID scan of
 * 10 rows then costs more than reading the table).  Plans are built, and
 * rebuilt after an invalidation, only while a call runs, so they are always
 * built with this setting; it covers the foreign key checks the writes fire.
 * Since 1.2 shop_checkout's own SET clause sets it, at the nesting level
 * that its SET search_path opens anyway; the 1.1 definition (a backend
 * whose library is newer than its objects, mid-upgrade) does not: then it
 * is set here.
 *
 * lock_timeout = checkout.lock_timeout, when that is set: bounds lock waits.
 */
static int
set_call_settings(void)
{
	int			nestlevel;

	if (!enable_seqscan && checkout_lock_timeout == 0)
		return 0;
	nestlevel = NewGUCNestLevel();
	if (enable_seqscan)
		(void) set_config_option("enable_seqscan", "off", PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	if (checkout_lock_timeout > 0)
	{
		char		value[32];

		snprintf(value, sizeof(value), "%d", checkout_lock_timeout);
		(void) set_config_option("lock_timeout", value, PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	}
	return nestlevel;
}

/* Pop the settings of set_call_settings(), if it made any */
static void
reset_call_settings(int nestlevel)
{
	if (nestlevel > 0)
		AtEOXact_GUC(true, nestlevel);
}

/*
 * The idempotency key argument number argno: NULL when absent or NULL;
 * 22023 when empty or longer than CHECKOUT_MAX_KEY_LENGTH characters
 */
static text *
idempotency_key(FunctionCallInfo fcinfo, int argno)
{
	text	   *key;
	int			length;

	if (PG_NARGS() <= argno || PG_ARGISNULL(argno))
		return NULL;
	key = PG_GETARG_TEXT_PP(argno);
	length = pg_mbstrlen_with_len(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
	if (length == 0 || length > CHECKOUT_MAX_KEY_LENGTH)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("idempotency key must be 1 to %d characters long",
						CHECKOUT_MAX_KEY_LENGTH),
				 errdetail("Got a key of %d characters.", length),
				 errhint("Pass one key per checkout attempt, e.g. a UUID, and the same key when retrying it.")));
	return key;
}

/*
 * What a key's call asks for, as idempotency_keys.request keeps it (1.3):
 * the voucher code, its ASCII letters lower-cased (codes match so), and
 * the lines of shop_place_order() (sorted by product), or null for the
 * stored cart.  The cart's content is not part of a shop_checkout()
 * request: a retry finds it emptied by the first call, or changed by
 * another tab since, and still gets its order.
 */
static Datum
key_request(text *code, const CheckoutLines *lines)
{
	StringInfoData json;

	initStringInfo(&json);
	appendStringInfoString(&json, "{\"voucher_code\": ");
	if (code != NULL)
	{
		char	   *lower = text_to_cstring(code);

		for (char *c = lower; *c; c++)
			*c = pg_ascii_tolower((unsigned char) *c);
		escape_json(&json, lower);
	}
	else
		appendStringInfoString(&json, "null");
	appendStringInfoString(&json, ", \"lines\": ");
	if (lines != NULL)
	{
		appendStringInfoChar(&json, '[');
		for (int i = 0; i < lines->n; i++)
			appendStringInfo(&json, "%s{\"product_id\": " INT64_FORMAT ", \"quantity\": %d%s}",
							 i == 0 ? "" : ", ", lines->product_ids[i], lines->quantities[i],
							 lines->accept_preorder[i] ? ", \"accept_preorder\": true" : "");
		appendStringInfoChar(&json, ']');
	}
	else
		appendStringInfoString(&json, "null");
	appendStringInfoChar(&json, '}');
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(json.data));
}

/*
 * shop_place_order(): set the customer's cart to the call's lines, in the
 * customer's turn (two calls of one customer take turns, so that their
 * cart rows are never locked crosswise).  SH003 for an unknown customer,
 * SH004 for an unknown product, and nothing changed.
 */
static void
set_cart(CheckoutCall *call, int64 customer_id)
{
	const CheckoutLines *lines = call->lines;
	Datum	   *ids = palloc(sizeof(Datum) * lines->n);
	Datum	   *quantities = palloc(sizeof(Datum) * lines->n);
	Datum	   *accept = palloc(sizeof(Datum) * lines->n);
	Datum		args[4];
	LOCKTAG		tag;
	uint64		id = (uint64) customer_id;
	ArrayType  *unknown;
	Datum	   *unknown_ids;
	int			nunknown;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) (id >> 32), (uint32) id,
						 CHECKOUT_CART_LOCK);
	checkout_lock_step(call, "waiting for another checkout of customer", customer_id);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
	checkout_lock_step(call, "locking the cart", 0);

	for (int i = 0; i < lines->n; i++)
	{
		ids[i] = Int64GetDatum(lines->product_ids[i]);
		quantities[i] = Int32GetDatum(lines->quantities[i]);
		accept[i] = BoolGetDatum(lines->accept_preorder[i]);
	}
	args[0] = Int64GetDatum(customer_id);
	args[1] = stmt_bigint_array(ids, lines->n);
	args[2] = stmt_int_array(quantities, lines->n);
	args[3] = PointerGetDatum(construct_array(accept, lines->n, BOOLOID, 1, true,
											  TYPALIGN_CHAR));
	if (stmt_execute(&statements[STMT_SET_CART], args, NULL, 0) != 1)
		elog(ERROR, "checkout: setting the cart returned no row");
	checkout_lock_step(call, NULL, 0);

	if (!DatumGetBool(stmt_value(0, 1)))
		report_unknown_customer(customer_id, "shop_place_order");
	unknown = DatumGetArrayTypeP(stmt_value(0, 2));
	deconstruct_array(unknown, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &unknown_ids, NULL, &nunknown);
	if (nunknown > 0)
		ereport(ERROR,
				(errcode(ERRCODE_CHECKOUT_UNKNOWN_PRODUCT),
				 errmsg("product %lld does not exist", (long long) DatumGetInt64(unknown_ids[0])),
				 errdetail("There is no row with id %lld in table products (%d of the lines name no product).",
						   (long long) DatumGetInt64(unknown_ids[0]), nunknown),
				 errhint("Check the product ids of the lines passed to shop_place_order().")));
}

/*
 * The statements use schema nspoid (the schema of the function called), and
 * the feature cache follows: other backends' invalidations taken in first,
 * so that a call's answers are as of the call; the features looked up again
 * when the schema was (statements.c says when)
 */
void
checkout_use_schema(Oid nspoid)
{
	StatementSchema schema;

	checkout_features_check();
	if (stmt_use_schema(nspoid, &schema))
	{
		checkout_features_reset(nspoid, schema.is_1_0, schema.is_1_3);
		checkout_checks_use_schema(nspoid);
	}
}

/*
 * What a call has once it is neither refused on the snapshot nor a replay:
 * its cart's lines read and locked, the order id its key reserved (0: no
 * key), its voucher as read (NULL: no code), and whether it pushed a
 * snapshot (the call's lines set in the cart)
 */
typedef struct CheckoutStart
{
	CartLine   *lines;
	int			nlines;
	int64		reserved_id;
	Voucher    *voucher;
	Voucher		voucher_data;
	bool		snapshot_pushed;
} CheckoutStart;

/*
 * The call's start, before any lock on stock: return the order of a key
 * used before (a replay, changing nothing), or raise the refusal the
 * snapshot shows (SH009, SH001, SH010 in that order; SH002), or return 0
 * with *start filled.
 *
 * Lines of the call: claim the key first (a retry then changes no cart: it
 * finds the key taken, after waiting if the first is in flight, and returns
 * its order), then set the cart.  The key is this call's from then on: no
 * later step looks it up.  The statements that read on the snapshot must
 * see the cart just set: a snapshot taken now.
 *
 * A key used before: its order.  Looked for only where the call would
 * otherwise end, so that a first call pays no lookup: when fail fast
 * rejects (the first call may have committed before this snapshot), when
 * the cart is empty (the first emptied it), and when the key cannot be
 * claimed (taken, after waiting if the first was in flight).
 */
static int64
start_or_replay(CheckoutCall *call, int64 customer_id, text *key, text *code,
				CheckoutStart *start)
{
	int64		order_id;

	bool		fail_fast = checkout_fail_fast;

	if (call->lines != NULL)
	{
		Datum		customer[1] = {Int64GetDatum(customer_id)};

		/* The key's row names the customer: an unknown one is SH003 first */
		if (key != NULL && stmt_execute(&statements[STMT_CUSTOMER], customer, NULL, 1) == 0)
			report_unknown_customer(customer_id, "shop_place_order");
		if (key != NULL && (start->reserved_id = claim_key(call, customer_id, key)) == 0)
		{
			if ((order_id = key_order(call, customer_id, key)) != 0)
				return order_id;
		}
		else
		{
			set_cart(call, customer_id);
			PushActiveSnapshot(GetTransactionSnapshot());
			start->snapshot_pushed = true;
			key = NULL;
		}
	}

	if (code != NULL)
	{
		/* the code first, then the cart's stock, then whether a use is left */
		Voucher    *voucher = &start->voucher_data;
		CartLine   *short_lines;
		int			nshort;

		start->voucher = voucher;
		voucher_find(call, customer_id, code, fail_fast, voucher, &short_lines, &nshort);
		if (voucher->verdict != VOUCHER_OK && voucher->verdict != VOUCHER_USED_UP)
		{
			if (key != NULL && (order_id = key_order(call, customer_id, key)) != 0)
				return order_id;
			voucher_reject(call, voucher);
		}
		if ((order_id = reject_short_lines(call, customer_id, key, short_lines, nshort)) != 0)
			return order_id;
		if (fail_fast && voucher->verdict == VOUCHER_USED_UP)
		{
			if (key != NULL && (order_id = key_order(call, customer_id, key)) != 0)
				return order_id;
			voucher_reject(call, voucher);
		}
	}
	else if (fail_fast &&
			 (order_id = reject_on_snapshot(call, customer_id, key)) != 0)
		return order_id;

	start->nlines = read_cart(call, customer_id, &start->lines);
	if (start->nlines == 0)
	{
		if (key != NULL && (order_id = key_order(call, customer_id, key)) != 0)
			return order_id;
		report_empty_cart(customer_id);
	}
	if (key != NULL && (start->reserved_id = claim_key(call, customer_id, key)) == 0)
		return key_order(call, customer_id, key);
	return 0;
}

/*
 * The checkout itself: read, lock, validate and write.  Returns the new
 * order's id, or with an idempotency key used before, that call's order
 * (call->replayed); raises every error the README lists.  With lines
 * (shop_place_order), the key is claimed first and the cart set to them.
 */
static int64
checkout(CheckoutCall *call, Oid nspoid, int64 customer_id, text *key, text *code)
{
	CheckoutStart start = {0};
	Voucher    *voucher;
	CartLine   *lines;
	int			nlines;
	CartLine   *stock;
	int			nstock;
	BundleParts parts;
	SlotTakes	takes = {0};
	int64		order_id;
	int64		reserved_id;
	int64		total;
	int			nestlevel;
	bool		located;
	bool		preordered = false;
	bool		snapshot_pushed;
	text	   *request_key = key;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "checkout: SPI_connect failed");

	call->nspoid = nspoid;
	checkout_use_schema(nspoid);
	if (call->lines != NULL && !stmt_available(&statements[STMT_SET_CART]))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("shop_place_order() needs version 1.3 of extension \"checkout\""),
				 errhint("Run ALTER EXTENSION checkout UPDATE.")));
	call->request = key != NULL ? key_request(code, call->lines) : (Datum) 0;

	/*
	 * The settings come before fail fast too: left to itself its plan would
	 * scan the (small) stock_slots table, and starting a sequential scan
	 * costs a file-size system call, more than the GUC work
	 */
	nestlevel = set_call_settings();

	order_id = start_or_replay(call, customer_id, key, code, &start);
	if (order_id != 0)
	{
		call->replayed = true;
		if (start.snapshot_pushed)
			PopActiveSnapshot();
		reset_call_settings(nestlevel);
		SPI_finish();
		return order_id;
	}
	lines = start.lines;
	nlines = start.nlines;
	reserved_id = start.reserved_id;
	voucher = start.voucher;
	snapshot_pushed = start.snapshot_pushed;

	if (voucher != NULL)
		voucher_lock_code(call, voucher);
	check_limits(call, customer_id, lines, nlines,
				 voucher != NULL && voucher->per_customer_limit > 0);

	/*
	 * The stock the cart takes: its lines, or, when it holds bundles, each
	 * product once with what its lines and its bundles need of it
	 */
	if (!bundles_expand(lines, nlines, &stock, &nstock, &parts))
	{
		stock = lines;
		nstock = nlines;
	}

	/*
	 * Queue and lock, timed for the statistics: the rows of products without
	 * slots, then the slots of the others, in ascending product id order
	 */
	located = locations_find_lines(stock, nstock);
	preorders_find_lines(customer_id, stock, nstock);
	INSTR_TIME_SET_CURRENT(call->lock_wait_start);
	call->in_lock_wait = true;
	queue_for_products(call, stock, nstock);
	lock_products(call, stock, nstock, &takes);
	for (int i = 0; i < nstock; i++)
		if (stock[i].loc.located)
		{
			if (!locations_take_slot(call, &stock[i]))
				locations_lock_line(call, &stock[i], true);
		}
		else if (stock[i].nslots > 0 && !ItemPointerIsValid(&stock[i].ctid))
			slots_take(call, &stock[i], &takes);
	call->in_lock_wait = false;
	call->lock_wait_us = elapsed_us(call->lock_wait_start);

	if (any_short(stock, nstock))
	{
		reclaim_expired(call, stock, nstock, &takes);
		located |= locations_locate_moved_lines(call, stock, nstock);
		located |= locations_locate_short_lines(call, stock, nstock);
		preordered = preorders_take(call, stock, nstock, &takes);
	}
	check_stock(call, stock, nstock);
	if (located)
		locations_allocate(stock, nstock, &takes);
	if (stock != lines)
		price_cart_lines(lines, nlines, stock, nstock);
	total = order_total(lines, nlines);
	if (voucher != NULL)
	{
		voucher_take_use(call, customer_id, total, voucher);
		voucher->discount_shares = voucher_spread_discount(lines, nlines, total,
														   voucher->discount_cents);
	}
	order_id = write_order(call, customer_id, lines, nlines, stock, nstock, &takes,
						   total, reserved_id, voucher, &parts);
	if (located)
		locations_write_allocations(order_id, stock, nstock);
	if (preordered)
		preorders_write(order_id, stock, nstock);
	watch_emptied_stock(stock, nstock);
	if (events_on())
		events_order_placed(nspoid, order_id, customer_id, request_key, lines, nlines,
							stock, nstock, &parts, total, voucher, checkout_payment_window);

	for (int i = 0; i < nlines; i++)
		call->items_sold += lines[i].quantity;
	if (snapshot_pushed)
		PopActiveSnapshot();
	reset_call_settings(nestlevel);
	SPI_finish();

	return order_id;
}

/* Which statistics counter an error with this SQLSTATE falls under */
static CheckoutOutcome
outcome_of(int sqlerrcode)
{
	switch (sqlerrcode)
	{
		case ERRCODE_CHECKOUT_INSUFFICIENT_STOCK:
			return CHECKOUT_INSUFFICIENT_STOCK;
		case ERRCODE_CHECKOUT_EMPTY_CART:
			return CHECKOUT_EMPTY_CART;
		case ERRCODE_CHECKOUT_UNKNOWN_CUSTOMER:
			return CHECKOUT_UNKNOWN_CUSTOMER;
		case ERRCODE_CHECKOUT_PURCHASE_LIMIT:
			return CHECKOUT_PURCHASE_LIMIT;
		case ERRCODE_CHECKOUT_VOUCHER_INVALID:
			return CHECKOUT_VOUCHER_INVALID;
		case ERRCODE_CHECKOUT_VOUCHER_LIMIT:
			return CHECKOUT_VOUCHER_LIMIT;
		case ERRCODE_CHECKOUT_VOUCHER_CUSTOMER_LIMIT:
			return CHECKOUT_VOUCHER_CUSTOMER_LIMIT;
		case ERRCODE_LOCK_NOT_AVAILABLE:
			return CHECKOUT_LOCK_TIMEOUT;
		case ERRCODE_T_R_SERIALIZATION_FAILURE:
			return CHECKOUT_SERIALIZATION_FAILURE;
		default:
			return CHECKOUT_OTHER_FAILURE;
	}
}

/*
 * One call of a checkout, in any of its forms (form: shop_checkout(), or
 * shop_place_order() in placeorder.c): its arguments read, then the
 * checkout.  Counts every call in the statistics (when preloaded), bad
 * arguments included; an error raised while it waits for a lock names what
 * it was locking (error context).
 */
int64
checkout_call(CheckoutCall *call, FunctionCallInfo fcinfo, const CheckoutForm *form)
{
	ErrorContextCallback errcallback;
	instr_time	start;
	int64		order_id;

	INSTR_TIME_SET_CURRENT(start);
	call->customer_id = PG_ARGISNULL(0) ? 0 : PG_GETARG_INT64(0);

	errcallback.callback = checkout_error_context;
	errcallback.arg = call;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;

	PG_TRY();
	{
		int64		customer_id = checkout_customer_argument(fcinfo, form->function);
		text	   *key;
		text	   *code;

		if (form->arguments != NULL)
			form->arguments(fcinfo, call);
		key = idempotency_key(fcinfo, form->key_argno);
		code = voucher_code_argument(fcinfo, form->code_argno);
		order_id = checkout(call, get_func_namespace(fcinfo->flinfo->fn_oid),
							customer_id, key, code);
	}
	PG_CATCH();
	{
		/* Count the failure, then let the error go on unchanged */
		if (call->in_lock_wait)
			call->lock_wait_us += elapsed_us(call->lock_wait_start);
		checkout_stats_count(outcome_of(geterrcode()), 0, elapsed_us(start),
							 call->lock_wait_us);
		PG_RE_THROW();
	}
	PG_END_TRY();

	error_context_stack = errcallback.previous;
	checkout_stats_count(call->replayed ? CHECKOUT_REPLAY : CHECKOUT_SUCCESS,
						 call->items_sold,
						 elapsed_us(start), call->lock_wait_us);
	return order_id;
}

/*
 * The customer id argument: 22004 when NULL (the checkout functions are not
 * STRICT, so that a NULL is an error rather than a NULL order)
 */
int64
checkout_customer_argument(FunctionCallInfo fcinfo, const char *function)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("customer id must not be NULL"),
				 errhint("Pass the id of an existing customer to %s().", function)));
	return PG_GETARG_INT64(0);
}

/* shop_checkout's forms: the customer, the key, the voucher code */
static const CheckoutForm checkout_form = {"shop_checkout", 1, 2, NULL};

/* shop_checkout's forms: the call, counted */
static Datum
checkout_counted(FunctionCallInfo fcinfo)
{
	CheckoutCall call = {0};

	PG_RETURN_INT64(checkout_call(&call, fcinfo, &checkout_form));
}

PG_FUNCTION_INFO_V1(shop_checkout);

/*
 * shop_checkout(customer_id bigint) RETURNS bigint
 * shop_checkout(customer_id bigint, idempotency_key text) RETURNS bigint
 */
Datum
shop_checkout(PG_FUNCTION_ARGS)
{
	return checkout_counted(fcinfo);
}

PG_FUNCTION_INFO_V1(shop_checkout_with_voucher);

/*
 * shop_checkout(customer_id bigint, idempotency_key text, voucher_code text)
 * RETURNS bigint, since 1.2: a symbol of its own, which a library older
 * than 1.2 lacks, so that such a library refuses the call rather than
 * check out at full price
 */
Datum
shop_checkout_with_voucher(PG_FUNCTION_ARGS)
{
	return checkout_counted(fcinfo);
}

/* Module load: the checkout.* settings, and the statistics when preloaded */
void
_PG_init(void)
{
	DefineCustomIntVariable("checkout.lock_timeout",
							"Longest a checkout waits for a lock on a cart or a product.",
							"A checkout that waits longer fails with SQLSTATE 55P03 and changes nothing. "
							"0 waits as the server's lock_timeout says.",
							&checkout_lock_timeout,
							0, 0, INT_MAX,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("checkout.fail_fast",
							 "Rejects a checkout on the snapshot, before taking any lock, when the stock cannot serve it.",
							 "Rejected buyers then never wait for a row lock and write nothing.",
							 &checkout_fail_fast,
							 true,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);
	DefineCustomBoolVariable("checkout.queue_locks",
							 "Makes checkouts of one product queue for it one at a time before locking its row.",
							 "Stops each commit on a hot product from waking every waiting checkout at once.",
							 &checkout_queue_locks,
							 true,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("checkout.payment_window",
							"How long a new order waits for shop_pay() before shop_expire_orders() may cancel it.",
							"A new order is placed with expires_at = now() + this. 0: orders never expire.",
							&checkout_payment_window,
							0, 0, INT_MAX,
							PGC_USERSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("checkout.idempotency_retention",
							"How long idempotency keys are kept at least.",
							"shop_purge_idempotency_keys() deletes the keys older than this.",
							&checkout_idempotency_retention,
							86400, 0, INT_MAX,
							PGC_USERSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);
	checkout_guard_init();
	events_init();
	voucher_init();
	MarkGUCPrefixReserved("checkout");

	stmt_init();
	checkout_features_init();
	checkout_checks_init();
	checkout_stats_init();
}
