/*-------------------------------------------------------------------------
 *
 * statements.c
 *		The SQL statements of a checkout, as a table: what each does, the
 *		version it appeared in, its SPI result, its argument types and its
 *		SQL, indexed by CheckoutStatement (checkout.h); each is prepared once
 *		per backend, kept, and run by name with checkout_execute().  Also the
 *		small helpers that pass them parameters and read their results.
 *
 * Versions.  A library of version 1.1 or later also serves a database where
 * the extension is still at 1.0 (installed, not yet updated): then the
 * statements since 1.1 are not prepared, the others leave out what 1.0
 * lacks (purchase limits, payment window, expiry: version_pieces()), and
 * the plans are prepared again once the extension is updated.  Likewise
 * the statements since 1.2 (vouchers) are prepared only where its tables
 * are; only shop_checkout(bigint, text, text), of 1.2, runs them.
 *
 * Memory rules.  Each statement is prepared with SPI_prepare_cursor as a
 * generic plan and kept (SPI_keepplan) in plans[] for the life of the
 * backend; they are all prepared again when the extension's schema changes
 * (its OID or its name: a schema renamed, or the extension dropped and
 * created again).  The schema's name is kept in TopMemoryContext.
 * Everything the helpers return lives in the current (SPI procedure)
 * context.  Must be called while connected to SPI.
 *
 * Locking rules.  None here: which statement takes which row lock is said
 * at each statement below and in checkout.c's header comment.
 *
 * Security.  Every statement names its tables through the extension's
 * schema, quoted with quote_identifier, and qualifies its operators and
 * functions with pg_catalog, so nothing earlier on search_path can capture
 * them.  Values go in only as SPI parameters.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "nodes/makefuncs.h"
#include "nodes/pg_list.h"
#include "parser/parse_func.h"
#include "storage/bufmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "checkout.h"

/*
 * x.left_over: the units of product `product` that order o still holds,
 * found by the line's primary key (OFFSET 0 keeps the planner from joining
 * the other way round, through every sale of the product)
 */
#define LEFT_OVER_OF_LINE(product) \
	" CROSS JOIN LATERAL (" \
	"  SELECT oi.quantity OPERATOR(pg_catalog.-) oi.cancelled_quantity AS left_over" \
	"    FROM %1$s.order_items AS oi" \
	"   WHERE oi.order_id OPERATOR(pg_catalog.=) o.id" \
	"     AND oi.product_id OPERATOR(pg_catalog.=) " product \
	"  OFFSET 0) AS x"

/*
 * A slot of product $1 that holds at least $2, numbered from $3 up to below
 * $4 (the caller starts at a random slot, so that buyers spread over the
 * slots); the product row is read, not locked
 */
#define SLOT_QUERY \
	"SELECT s.ctid, s.stock, p.name, p.price_cents" \
	"  FROM %1$s.stock_slots AS s" \
	"  JOIN %1$s.products AS p ON p.id OPERATOR(pg_catalog.=) s.product_id" \
	" WHERE s.product_id OPERATOR(pg_catalog.=) $1" \
	"   AND s.slot OPERATOR(pg_catalog.>=) $3" \
	"   AND s.slot OPERATOR(pg_catalog.<) $4" \
	"   AND s.stock OPERATOR(pg_catalog.>=) $2" \
	" ORDER BY s.slot" \
	" LIMIT 1" \
	"   FOR NO KEY UPDATE OF s"

/*
 * A slot of voucher $1 with a use left, numbered from $2 up to below $3, in
 * the primary key's order (the caller starts at a random slot, so that
 * buyers spread over them, and then wraps around)
 */
#define VOUCHER_SLOT_QUERY \
	"SELECT s.ctid FROM %1$s.voucher_slots AS s" \
	" WHERE s.voucher_id OPERATOR(pg_catalog.=) $1" \
	"   AND s.slot OPERATOR(pg_catalog.>=) $2" \
	"   AND s.slot OPERATOR(pg_catalog.<) $3" \
	"   AND s.remaining OPERATOR(pg_catalog.>) 0" \
	" ORDER BY s.slot" \
	" LIMIT 1" \
	"   FOR NO KEY UPDATE"

/*
 * The fail-fast statement and the cart's, each in two plans: with the
 * pieces of the extension's version, and plain (CHECKOUT_*_PLAIN)
 */
#define SHORT_LINES_SQL \
	"SELECT c.product_id, c.quantity, p.name, a.stock" \
	"  FROM %1$s.cart_items AS c" \
	"  JOIN %1$s.products AS p" \
	"    ON p.id OPERATOR(pg_catalog.=) c.product_id" \
	" CROSS JOIN LATERAL (" \
	"  SELECT CASE" \
	"         WHEN EXISTS (SELECT FROM %1$s.stock_slots AS s" \
	"                       WHERE s.product_id OPERATOR(pg_catalog.=) p.id" \
	"                         AND s.stock OPERATOR(pg_catalog.>=) c.quantity)" \
	"         THEN NULL" \
	"         ELSE p.stock::pg_catalog.int8 OPERATOR(pg_catalog.+)" \
	"              COALESCE((SELECT pg_catalog.sum(s.stock)" \
	"                          FROM %1$s.stock_slots AS s" \
	"                         WHERE s.product_id OPERATOR(pg_catalog.=) p.id), 0)" \
	"         END AS stock," \
	"         %3$s AS held" \
	"  OFFSET 0) AS a" \
	" WHERE c.customer_id OPERATOR(pg_catalog.=) $1" \
	"   AND p.stock OPERATOR(pg_catalog.<) c.quantity" \
	"   AND a.stock OPERATOR(pg_catalog.<) c.quantity" \
	"   AND NOT a.held" \
	" ORDER BY c.product_id"

/*
 * A voucher's code $2 and its voucher, for customer $1's cart (see
 * CHECKOUT_VOUCHER): VOUCHER_COLUMNS columns
 */
#define VOUCHER_SQL \
	"SELECT vc.id, vc.single_use, v.id, COALESCE(v.percent_off, 0)," \
	"       COALESCE(v.amount_off_cents, 0), COALESCE(v.usage_limit, 0)," \
	"       COALESCE(v.per_customer_limit, 0), v.use_slots, v.min_total_cents," \
	"       COALESCE(t.subtotal, 0)," \
	"       CASE WHEN v.starts_at OPERATOR(pg_catalog.>) pg_catalog.now() THEN 1" \
	"            WHEN v.ends_at OPERATOR(pg_catalog.<=) pg_catalog.now() THEN 2" \
	"            WHEN vc.single_use AND EXISTS (" \
	"                 SELECT FROM %1$s.orders AS o" \
	"                  WHERE o.voucher_code_id OPERATOR(pg_catalog.=) vc.id" \
	"                    AND o.status OPERATOR(pg_catalog.<>) 'cancelled') THEN 3" \
	"            WHEN t.subtotal OPERATOR(pg_catalog.<) v.min_total_cents THEN 4" \
	"            WHEN v.usage_limit IS NOT NULL AND NOT EXISTS (" \
	"                 SELECT FROM %1$s.voucher_slots AS s" \
	"                  WHERE s.voucher_id OPERATOR(pg_catalog.=) v.id" \
	"                    AND s.remaining OPERATOR(pg_catalog.>) 0) THEN 5" \
	"            ELSE 0 END AS verdict" \
	"  FROM %1$s.voucher_codes AS vc" \
	"  JOIN %1$s.vouchers AS v ON v.id OPERATOR(pg_catalog.=) vc.voucher_id" \
	" CROSS JOIN LATERAL (" \
	"       SELECT CASE WHEN v.min_total_cents OPERATOR(pg_catalog.>) 0 THEN (" \
	"              SELECT LEAST(COALESCE(pg_catalog.sum(c.quantity::pg_catalog.numeric" \
	"                                       OPERATOR(pg_catalog.*) p.price_cents), 0)," \
	"                           9223372036854775807::pg_catalog.numeric)::pg_catalog.int8" \
	"                FROM %1$s.cart_items AS c" \
	"                JOIN %1$s.products AS p ON p.id OPERATOR(pg_catalog.=) c.product_id" \
	"               WHERE c.customer_id OPERATOR(pg_catalog.=) $1) END AS subtotal" \
	"       OFFSET 0) AS t" \
	" WHERE pg_catalog.upper(vc.code COLLATE \"C\")" \
	"       OPERATOR(pg_catalog.=) pg_catalog.upper($2 COLLATE \"C\")"

/*
 * The voucher's columns and then the short lines' (SHORT_LINES_SQL), or
 * NULLs: at least one row, whether the code exists or not and whether a
 * line is short or not
 */
#define VOUCHER_SHORT_LINES_SQL \
	"SELECT v.*, s.*" \
	"  FROM (SELECT) AS one" \
	"  LEFT JOIN (" VOUCHER_SQL ") AS v ON true" \
	"  LEFT JOIN LATERAL (" SHORT_LINES_SQL ") AS s ON true" \
	" ORDER BY s.product_id"

#define CART_SQL \
	"SELECT c.product_id, c.quantity," \
	"       (SELECT pg_catalog.max(s.slot) FROM %1$s.stock_slots AS s" \
	"         WHERE s.product_id OPERATOR(pg_catalog.=) c.product_id)," \
	"       %4$s" \
	"  FROM %1$s.cart_items AS c" \
	" WHERE c.customer_id OPERATOR(pg_catalog.=) $1" \
	" ORDER BY c.product_id" \
	"   FOR UPDATE OF c"

/*
 * Every write of a checkout in one statement (CHECKOUT_WRITE_ORDER and,
 * with a voucher, CHECKOUT_WRITE_VOUCHER_ORDER, which passes the pieces
 * that record it): the lines' columns, a CTE, the order's and its lines'
 * columns and values (each piece empty or starting with a comma)
 */
#define WRITE_ORDER_ARGTYPES \
	INT8OID, INT8ARRAYOID, INT4ARRAYOID, INT8ARRAYOID, INT8OID, \
	TIDARRAYOID, INT4ARRAYOID, TIDARRAYOID, INT4ARRAYOID, INT8OID, INT4OID

#define WRITE_ORDER_SQL(more_lines, line_column, cte, order_columns, \
						order_values, line_value) \
	"WITH line AS (" \
	"  SELECT l.*" \
	"    FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3)," \
	"                    pg_catalog.unnest($4)" more_lines ")" \
	"         AS l(product_id, quantity, unit_price_cents" line_column ")" \
	"), sold AS (" \
	"  UPDATE %1$s.products AS p" \
	"     SET stock = p.stock OPERATOR(pg_catalog.-)" \
	"         ($7)[pg_catalog.array_position($6, p.ctid)]" \
	"   WHERE p.ctid OPERATOR(pg_catalog.=) ANY ($6)" \
	"), slot_sold AS (" \
	"  UPDATE %1$s.stock_slots AS s" \
	"     SET stock = s.stock OPERATOR(pg_catalog.-)" \
	"         ($9)[pg_catalog.array_position($8, s.ctid)]" \
	"   WHERE s.ctid OPERATOR(pg_catalog.=) ANY ($8)" \
	")" cte ", new_order AS (" \
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
	")" \
	"SELECT new_order.id FROM new_order"

#define MAX_STATEMENT_ARGS 16

/*
 * One statement of a checkout.  Its SQL's "%1$s" stands for the quoted
 * schema name, "%2$s" for the orders' id sequence (a quoted literal, for
 * nextval()), "%3$s" to "%6$s" for the expressions that differ between
 * versions (version_pieces()).
 */
typedef struct CheckoutStatementDef
{
	const char *what;			/* what it does, for an error that cannot
								 * happen */
	const char *since;			/* the first extension version it serves */
	int			ok;				/* the SPI result code it returns */
	bool		read_only;		/* runs on the statement's snapshot, no locks */
	bool		plain;			/* prepared without the payment window and
								 * limits, as for 1.0 (a shop that has never
								 * used them: checkout_shop_uses()) */
	int			nargs;
	Oid			argtypes[MAX_STATEMENT_ARGS];
	const char *sql;
} CheckoutStatementDef;

static const CheckoutStatementDef statements[NUM_CHECKOUT_STATEMENTS] = {

	/*
	 * 0. Fail fast: the lines the snapshot's stock on sale (the product's row
	 * plus its slots) cannot serve, no locks.  Lateral a is computed only for
	 * a line its row cannot serve (the join's filter runs first): NULL when
	 * one slot can, else the row plus all its slots; OFFSET 0 keeps it from
	 * being flattened into the filter, where it would be evaluated for every
	 * line and twice for a short one.  Its held says whether placed orders
	 * past their payment window hold units of the product: then the line is
	 * not rejected here, and the checkout takes those units back under its
	 * locks (reclaim_expired in checkout.c) before it can say "sold out".
	 * Only whether, not how many: an EXISTS costs the executor far less to
	 * start than a sum, and a rejection here must only never be wrong.
	 */
	[CHECKOUT_SHORT_LINES] = {
		"reading the stock", "1.0", SPI_OK_SELECT, true, false, 1, {INT8OID},
		SHORT_LINES_SQL
	},

	/* The same where no order has ever had a payment window */
	[CHECKOUT_SHORT_LINES_PLAIN] = {
		"reading the stock", "1.0", SPI_OK_SELECT, true, true, 1, {INT8OID},
		SHORT_LINES_SQL
	},

	/*
	 * 1. The cart, read once and held: its lines are locked.  Which products
	 * have slots, and their last slot's number (slots are numbered from 0),
	 * is read on the snapshot (see lock_products for a product split
	 * meanwhile); so is whether a product has a purchase limit (the limit
	 * itself is read again under the customer's lock, CHECKOUT_OVER_LIMIT).
	 */
	[CHECKOUT_CART] = {
		"reading the cart", "1.0", SPI_OK_SELECT, false, false, 1, {INT8OID},
		CART_SQL
	},

	/* The same where no product has ever had a purchase limit */
	[CHECKOUT_CART_PLAIN] = {
		"reading the cart", "1.0", SPI_OK_SELECT, false, true, 1, {INT8OID},
		CART_SQL
	},

	/* Tells an unknown customer from an empty cart */
	[CHECKOUT_CUSTOMER] = {
		"looking up the customer", "1.0", SPI_OK_SELECT, true, false, 1, {INT8OID},
		"SELECT 1 FROM %1$s.customers AS c"
		" WHERE c.id OPERATOR(pg_catalog.=) $1"
	},

	/* 3. The cart's products without slots ($1), locked in ascending id order */
	[CHECKOUT_LOCK_PRODUCTS] = {
		"locking the products", "1.0", SPI_OK_SELECT, false, false, 1, {INT8ARRAYOID},
		"SELECT p.id, p.name, p.price_cents, p.stock, p.ctid"
		"  FROM %1$s.products AS p"
		" WHERE p.id OPERATOR(pg_catalog.=) ANY ($1)"
		" ORDER BY p.id"
		"   FOR NO KEY UPDATE"
	},

	/* 3b. The first free slot that holds the line (SLOT_QUERY) ... */
	[CHECKOUT_FREE_SLOT] = {
		"taking a stock slot", "1.0", SPI_OK_SELECT, false, false,
		4, {INT8OID, INT4OID, INT4OID, INT4OID},
		SLOT_QUERY " SKIP LOCKED"
	},

	/* ... or the first that still holds it once this one waited for it ... */
	[CHECKOUT_WAIT_FOR_SLOT] = {
		"waiting for a stock slot", "1.0", SPI_OK_SELECT, false, false,
		4, {INT8OID, INT4OID, INT4OID, INT4OID},
		SLOT_QUERY
	},

	/* ... and take $2 from the slot locked at ctid $1 */
	[CHECKOUT_TAKE_FROM_SLOT] = {
		"updating a stock slot", "1.0", SPI_OK_UPDATE, false, false, 2, {TIDOID, INT4OID},
		"UPDATE %1$s.stock_slots AS s"
		"   SET stock = s.stock OPERATOR(pg_catalog.-) $2"
		" WHERE s.ctid OPERATOR(pg_catalog.=) $1"
	},

	/* 3c. Combining slots: lock the product row, ... */
	[CHECKOUT_LOCK_PRODUCT] = {
		"locking a product", "1.0", SPI_OK_SELECT, false, false, 1, {INT8OID},
		"SELECT p.name, p.price_cents, p.stock, p.ctid"
		"  FROM %1$s.products AS p"
		" WHERE p.id OPERATOR(pg_catalog.=) $1"
		"   FOR NO KEY UPDATE"
	},

	/* ... then all its slots, in slot order */
	[CHECKOUT_LOCK_SLOTS] = {
		"locking the stock slots", "1.0", SPI_OK_SELECT, false, false, 1, {INT8OID},
		"SELECT s.ctid, s.stock"
		"  FROM %1$s.stock_slots AS s"
		" WHERE s.product_id OPERATOR(pg_catalog.=) $1"
		" ORDER BY s.slot"
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
	[CHECKOUT_WRITE_ORDER] = {
		"writing the order", "1.0", SPI_OK_SELECT, false, false,
		11, {WRITE_ORDER_ARGTYPES},
		WRITE_ORDER_SQL("", "", "", "", "", "")
	},

	/* The order an idempotency key ($2) of a customer ($1) made */
	[CHECKOUT_KEY_LOOKUP] = {
		"looking up the idempotency key", "1.1", SPI_OK_SELECT, false, false,
		2, {INT8OID, TEXTOID},
		"SELECT k.order_id FROM %1$s.idempotency_keys AS k"
		" WHERE k.customer_id OPERATOR(pg_catalog.=) $1"
		"   AND k.idempotency_key OPERATOR(pg_catalog.=) $2"
	},

	/*
	 * Claim a key for the order this checkout will write, reserving its id;
	 * no row when the key is taken.  A call with the same key still in flight
	 * holds the primary key's entry: this waits for its end, then inserts (it
	 * rolled back) or finds the key taken (it committed).
	 */
	[CHECKOUT_KEY_CLAIM] = {
		"claiming the idempotency key", "1.1", SPI_OK_INSERT_RETURNING, false, false,
		2, {INT8OID, TEXTOID},
		"INSERT INTO %1$s.idempotency_keys AS k"
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
	[CHECKOUT_LOCK_CUSTOMER] = {
		"locking the customer", "1.1", SPI_OK_UPDATE, false, false, 1, {INT8OID},
		"UPDATE %1$s.customers AS c SET name = c.name"
		" WHERE c.id OPERATOR(pg_catalog.=) $1"
	},

	/*
	 * ... then the lines ($2 products, $3 quantities) that would take the
	 * customer past a product's limit, counting the units of their orders not
	 * cancelled: driven by the customer's orders, each probing its line of
	 * the product by primary key (OFFSET 0: never a scan of the product's
	 * every sale, which a hot product has thousands of)
	 */
	[CHECKOUT_OVER_LIMIT] = {
		"checking the purchase limits", "1.1", SPI_OK_SELECT, false, false,
		3, {INT8OID, INT8ARRAYOID, INT4ARRAYOID},
		"SELECT q.product_id, p.name, l.max_per_customer,"
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
	 * Before any lock, on the snapshot: the code $1 (matched as its unique
	 * index does: upper() under "C" changes ASCII letters only), its voucher,
	 * and its verdict (VoucherVerdict): not valid yet, expired, a single-use
	 * code an order not cancelled holds, the subtotal of customer $2's cart
	 * under the voucher's smallest (read only when it has one: the CASE runs
	 * the subquery only then, OFFSET 0 runs it once), or no use left in any
	 * slot (only whether any slot has one: EXISTS stops at the first).  The
	 * dates are compared with the transaction's now().
	 */
	[CHECKOUT_VOUCHER] = {
		"reading the voucher", "1.2", SPI_OK_SELECT, true, false,
		2, {INT8OID, TEXTOID},
		VOUCHER_SQL
	},

	/*
	 * The same and fail fast (CHECKOUT_SHORT_LINES) in one statement, for a
	 * rejection to cost one statement as a sold-out one does: one row of the
	 * voucher's columns (NULL: an unknown code) per short line of customer
	 * $1's cart, or one with NULL short line when none is short
	 */
	[CHECKOUT_VOUCHER_SHORT_LINES] = {
		"reading the voucher and the stock", "1.2", SPI_OK_SELECT, true, false,
		2, {INT8OID, TEXTOID},
		VOUCHER_SHORT_LINES_SQL
	},

	/* The same where no order had a payment window */
	[CHECKOUT_VOUCHER_SHORT_LINES_PLAIN] = {
		"reading the voucher and the stock", "1.2", SPI_OK_SELECT, true, true,
		2, {INT8OID, TEXTOID},
		VOUCHER_SHORT_LINES_SQL
	},

	/*
	 * A single-use code's turn ($1, its id): an update of its row, so that a
	 * second checkout with it waits for the first, then (READ COMMITTED) sees
	 * its order, or (REPEATABLE READ, SERIALIZABLE) gets 40001 ...
	 */
	[CHECKOUT_LOCK_CODE] = {
		"locking the voucher code", "1.2", SPI_OK_UPDATE, false, false, 1, {INT8OID},
		"UPDATE %1$s.voucher_codes AS vc SET single_use = vc.single_use"
		" WHERE vc.id OPERATOR(pg_catalog.=) $1"
	},

	/* ... and whether an order not cancelled holds it */
	[CHECKOUT_CODE_USED] = {
		"reading the voucher code's orders", "1.2", SPI_OK_SELECT, false, false,
		1, {INT8OID},
		"SELECT FROM %1$s.orders AS o"
		" WHERE o.voucher_code_id OPERATOR(pg_catalog.=) $1"
		"   AND o.status OPERATOR(pg_catalog.<>) 'cancelled'"
		" LIMIT 1"
	},

	/*
	 * The orders not cancelled of customer $2 with voucher $1, under the
	 * customer's turn (check_limits)
	 */
	[CHECKOUT_CUSTOMER_USES] = {
		"counting the customer's uses of the voucher", "1.2", SPI_OK_SELECT, false, false,
		2, {INT8OID, INT8OID},
		"SELECT pg_catalog.count(*) FROM %1$s.orders AS o"
		" WHERE o.voucher_id OPERATOR(pg_catalog.=) $1"
		"   AND o.customer_id OPERATOR(pg_catalog.=) $2"
		"   AND o.status OPERATOR(pg_catalog.<>) 'cancelled'"
	},

	/*
	 * A free slot of voucher $1 with a use left, starting at slot $2 of $3 (a
	 * random one, so that buyers spread over the slots), its use taken at
	 * once (CHECKOUT_TAKE_USE, in the same subtransaction: voucher.c) ...
	 */
	[CHECKOUT_FREE_USE] = {
		"taking a use of the voucher", "1.2", SPI_OK_SELECT, false, false,
		3, {INT8OID, INT4OID, INT4OID},
		VOUCHER_SLOT_QUERY " SKIP LOCKED"
	},

	/*
	 * ... or, when every slot with a use left is busy, the same waiting for
	 * the first such slot, from slot 0 (voucher.c: one order for waiters):
	 * once its holder ends, the slot is read again and passed over if its
	 * holder took its last use (then the next one is tried); none means every
	 * use is taken (SH010)
	 */
	[CHECKOUT_WAIT_FOR_USE] = {
		"waiting for a use of the voucher", "1.2", SPI_OK_SELECT, false, false,
		3, {INT8OID, INT4OID, INT4OID},
		VOUCHER_SLOT_QUERY
	},

	/* A use taken from the free voucher slot locked at ctid $1 */
	[CHECKOUT_TAKE_USE] = {
		"taking a use of the voucher", "1.2", SPI_OK_UPDATE, false, false, 1, {TIDOID},
		"UPDATE %1$s.voucher_slots AS vs"
		"   SET remaining = vs.remaining OPERATOR(pg_catalog.-) 1"
		" WHERE vs.ctid OPERATOR(pg_catalog.=) $1"
	},

	/*
	 * CHECKOUT_WRITE_ORDER with a voucher: $12 the voucher, $13 its code, $14
	 * the discount, $15 each line's share of it, $16 the locked voucher_slots
	 * row its use comes from (NULL: no usage limit, or a use taken already
	 * from a free slot)
	 */
	[CHECKOUT_WRITE_VOUCHER_ORDER] = {
		"writing the order", "1.2", SPI_OK_SELECT, false, false,
		16, {WRITE_ORDER_ARGTYPES, INT8OID, INT8OID, INT8OID, INT8ARRAYOID, TIDOID},
		WRITE_ORDER_SQL(", pg_catalog.unnest($15)", ", discount_cents",
						", used AS ("
						"  UPDATE %1$s.voucher_slots AS vs"
						"     SET remaining = vs.remaining OPERATOR(pg_catalog.-) 1"
						"   WHERE vs.ctid OPERATOR(pg_catalog.=) $16"
						")",
						", voucher_id, voucher_code_id, discount_cents",
						", $12, $13, $14", ", line.discount_cents")
	},

	/*
	 * The products ($1) whose row or one of whose slots this checkout
	 * emptied, for shop_notify_stock_changes(): written only then, never per
	 * checkout
	 */
	[CHECKOUT_WATCH_STOCK] = {
		"flagging sold-out products", "1.2", SPI_OK_INSERT, false, false,
		1, {INT8ARRAYOID},
		"INSERT INTO %1$s.stock_watch (product_id)"
		" SELECT pg_catalog.unnest($1)"
		" ON CONFLICT DO NOTHING"
	},

	/*
	 * Locations (locations.c): the stock of the products $1 in locations
	 * other than the default and not retired, on the snapshot (which lines
	 * are located; fail fast counts it), the best priority among those
	 * locations and the default's ...
	 */
	[CHECKOUT_LOCATED_STOCK] = {
		"reading the locations' stock", "1.2", SPI_OK_SELECT, true, false,
		1, {INT8ARRAYOID},
		"SELECT ls.product_id, pg_catalog.sum(ls.stock)::pg_catalog.int8,"
		"       pg_catalog.min(l.priority),"
		"       (SELECT d.priority FROM %1$s.locations AS d"
		"         WHERE d.id OPERATOR(pg_catalog.=) 1)"
		"  FROM %1$s.location_stock AS ls"
		"  JOIN %1$s.locations AS l ON l.id OPERATOR(pg_catalog.=) ls.location_id"
		" WHERE ls.product_id OPERATOR(pg_catalog.=) ANY ($1)"
		"   AND l.retired_at IS NULL"
		" GROUP BY ls.product_id"
	},

	/*
	 * ... the location rows of product $1, locked in location order, with
	 * their priority and the default location's ...
	 */
	[CHECKOUT_LOCK_LOCATIONS] = {
		"locking the locations' stock", "1.2", SPI_OK_SELECT, false, false,
		1, {INT8OID},
		"SELECT ls.location_id, ls.stock, ls.ctid, l.priority,"
		"       (SELECT d.priority FROM %1$s.locations AS d"
		"         WHERE d.id OPERATOR(pg_catalog.=) 1)"
		"  FROM %1$s.location_stock AS ls"
		"  JOIN %1$s.locations AS l ON l.id OPERATOR(pg_catalog.=) ls.location_id"
		" WHERE ls.product_id OPERATOR(pg_catalog.=) $1"
		"   AND l.retired_at IS NULL"
		" ORDER BY ls.location_id"
		"   FOR NO KEY UPDATE OF ls"
	},

	/*
	 * ... and, once the order $1 is written, $3 taken from each location row
	 * locked at ctid $2, and the allocations ($4 product, $5 location, $6
	 * units) recorded
	 */
	[CHECKOUT_WRITE_ALLOCATIONS] = {
		"writing the allocations", "1.2", SPI_OK_INSERT, false, false,
		6, {INT8OID, TIDARRAYOID, INT4ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, INT4ARRAYOID},
		"WITH taken AS ("
		"  UPDATE %1$s.location_stock AS ls"
		"     SET stock = ls.stock OPERATOR(pg_catalog.-)"
		"         ($3)[pg_catalog.array_position($2, ls.ctid)]"
		"   WHERE ls.ctid OPERATOR(pg_catalog.=) ANY ($2)"
		")"
		"INSERT INTO %1$s.order_item_allocations"
		"       (order_id, product_id, location_id, quantity)"
		"SELECT $1, a.product_id, a.location_id, a.quantity"
		"  FROM ROWS FROM (pg_catalog.unnest($4), pg_catalog.unnest($5),"
		"                  pg_catalog.unnest($6)) AS a(product_id, location_id, quantity)"
	},

	/*
	 * Preorders (preorders.c): the lines of customer $1 among products $2
	 * whose buyer accepted a preorder of a product that takes them, and the
	 * room under its cap, on the snapshot ...
	 */
	[CHECKOUT_PREORDER_ROOM] = {
		"reading the preorders", "1.2", SPI_OK_SELECT, true, false,
		2, {INT8OID, INT8ARRAYOID},
		"SELECT c.product_id,"
		"       po.max_preorders OPERATOR(pg_catalog.-) po.open_preorders"
		"  FROM %1$s.cart_items AS c"
		"  JOIN %1$s.preorders AS po ON po.product_id OPERATOR(pg_catalog.=) c.product_id"
		" WHERE c.customer_id OPERATOR(pg_catalog.=) $1"
		"   AND c.accept_preorder"
		"   AND c.product_id OPERATOR(pg_catalog.=) ANY ($2)"
	},

	/* ... the room under product $1's cap, its row locked ... */
	[CHECKOUT_LOCK_PREORDER] = {
		"locking a preorder", "1.2", SPI_OK_SELECT, false, false,
		1, {INT8OID},
		"SELECT po.max_preorders OPERATOR(pg_catalog.-) po.open_preorders"
		"  FROM %1$s.preorders AS po"
		" WHERE po.product_id OPERATOR(pg_catalog.=) $1"
		"   FOR NO KEY UPDATE"
	},

	/* ... and the units $3 of products $2 preordered by order $1 */
	[CHECKOUT_WRITE_PREORDERS] = {
		"writing the preorders", "1.2", SPI_OK_UPDATE, false, false,
		3, {INT8OID, INT8ARRAYOID, INT4ARRAYOID},
		"WITH l AS ("
		"  SELECT * FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3))"
		"         AS l(product_id, preordered)"
		"), lines AS ("
		"  UPDATE %1$s.order_items AS oi"
		"     SET preordered_quantity = l.preordered"
		"    FROM l"
		"   WHERE oi.order_id OPERATOR(pg_catalog.=) $1"
		"     AND oi.product_id OPERATOR(pg_catalog.=) l.product_id"
		")"
		"UPDATE %1$s.preorders AS po"
		"   SET open_preorders = po.open_preorders OPERATOR(pg_catalog.+) l.preordered"
		"  FROM l"
		" WHERE po.product_id OPERATOR(pg_catalog.=) l.product_id"
	},

	/*
	 * Since 1.3, a key keeps what its first call asked for ($3, request): its
	 * order, whether this request is the same (a key recorded before 1.3 has
	 * none, and any request replays it), and the first request
	 */
	[CHECKOUT_KEY_LOOKUP_REQUEST] = {
		"looking up the idempotency key", "1.3", SPI_OK_SELECT, false, false,
		3, {INT8OID, TEXTOID, JSONBOID},
		"SELECT k.order_id,"
		"       k.request IS NULL OR k.request OPERATOR(pg_catalog.=) $3,"
		"       COALESCE(k.request::pg_catalog.text, 'a request made before 1.3')"
		"  FROM %1$s.idempotency_keys AS k"
		" WHERE k.customer_id OPERATOR(pg_catalog.=) $1"
		"   AND k.idempotency_key OPERATOR(pg_catalog.=) $2"
	},

	/* CHECKOUT_KEY_CLAIM, keeping the request */
	[CHECKOUT_KEY_CLAIM_REQUEST] = {
		"claiming the idempotency key", "1.3", SPI_OK_INSERT_RETURNING, false, false,
		3, {INT8OID, TEXTOID, JSONBOID},
		"INSERT INTO %1$s.idempotency_keys AS k"
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
	[CHECKOUT_SET_CART] = {
		"setting the cart", "1.3", SPI_OK_SELECT, false, false,
		4, {INT8OID, INT8ARRAYOID, INT4ARRAYOID, BOOLARRAYOID},
		"WITH l AS ("
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

	/* shop_place_order(): order $1 as it returns it */
	[CHECKOUT_ORDER_RESULT] = {
		"reading the order", "1.3", SPI_OK_SELECT, false, false, 1, {INT8OID},
		"SELECT o.status, o.total_cents, o.discount_cents, o.expires_at,"
		"       (SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object("
		"                 'product_id', i.product_id, 'name', p.name, 'quantity', i.quantity,"
		"                 'unit_price_cents', i.unit_price_cents, 'discount_cents', i.discount_cents,"
		"                 'preordered_quantity', i.preordered_quantity) ORDER BY i.product_id)"
		"          FROM %1$s.order_items AS i"
		"          JOIN %1$s.products AS p ON p.id OPERATOR(pg_catalog.=) i.product_id"
		"         WHERE i.order_id OPERATOR(pg_catalog.=) o.id)"
		"  FROM %1$s.orders AS o"
		" WHERE o.id OPERATOR(pg_catalog.=) $1"
	},
};

/*
 * The saved plans (NULL: not prepared, or not of this version), valid for
 * the schema plans_nspoid named plans_nspname, of version 1.0 or later;
 * plans_checked says nothing in the catalogs changed since they were
 * checked (a syscache callback clears it), so that a call need not look
 * them up again.
 */
static SPIPlanPtr plans[NUM_CHECKOUT_STATEMENTS];
static Oid	plans_nspoid = InvalidOid;
static char *plans_nspname = NULL;
static bool plans_for_1_0 = false;
static bool plans_for_vouchers = false;
static bool plans_for_1_3 = false;
static bool plans_checked = false;

/* The pieces a statement's SQL names by number ("%1$s" is pieces[0]) */
#define NUM_PIECES 6

/*
 * Prepare one statement with these pieces and keep its plan for the life
 * of the backend
 */
static SPIPlanPtr
keep_plan(const CheckoutStatementDef *def, const char *const *pieces)
{
	StringInfoData sql;
	SPIPlanPtr	plan;

	/* Not appendStringInfo: a statement need not use every piece */
	initStringInfo(&sql);
	for (const char *p = def->sql; *p; p++)
	{
		if (p[0] == '%' && p[1] >= '1' && p[1] <= '0' + NUM_PIECES &&
			p[2] == '$' && p[3] == 's')
		{
			appendStringInfoString(&sql, pieces[p[1] - '1']);
			p += 3;
		}
		else
			appendStringInfoChar(&sql, *p);
	}

	/*
	 * Generic plans: the statements are simple lookups by key, so there is
	 * nothing a custom plan could do better, and planning each call costs
	 * more than running it.
	 */
	plan = SPI_prepare_cursor(sql.data, def->nargs, (Oid *) def->argtypes,
							  CURSOR_OPT_GENERIC_PLAN);
	if (plan == NULL)
		elog(ERROR, "checkout: SPI_prepare failed for \"%s\": %s",
			 sql.data, SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "checkout: SPI_keepplan failed");
	pfree(sql.data);
	return plan;
}

/* Forget the saved plans, e.g. because the schema was renamed */
static void
free_plans(void)
{
	for (int i = 0; i < NUM_CHECKOUT_STATEMENTS; i++)
	{
		if (plans[i] != NULL)
			SPI_freeplan(plans[i]);
		plans[i] = NULL;
	}
	if (plans_nspname != NULL)
		pfree(plans_nspname);
	plans_nspname = NULL;
	plans_nspoid = InvalidOid;
}

/* The orders' id sequence of schema qschema, as a quoted literal */
static const char *
orders_sequence(const char *qschema)
{
	char	   *sql = psprintf("SELECT pg_catalog.quote_literal(pg_catalog.pg_get_serial_sequence(%s, 'id'))",
							   quote_literal_cstr(psprintf("%s.orders", qschema)));

	if (SPI_execute(sql, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "checkout: finding the sequence of the orders' ids failed");
	return TextDatumGetCString(spi_value(0, 1));
}

/*
 * The pieces "%3$s" to "%6$s" of the statements, which differ between
 * versions: whether placed orders past their payment window hold units of
 * product p.id, whether the product of cart line c has a purchase limit,
 * and a new order's expires_at column and value (each with a comma before
 * it, or empty).  Version 1.0 has no payment window and no limits; the
 * plain statements are prepared with its pieces.
 */
static void
version_pieces(bool is_1_0, const char *qschema, const char **pieces)
{
	if (is_1_0)
	{
		pieces[0] = "false";
		pieces[1] = "false";
		pieces[2] = "";
		pieces[3] = "";
		return;
	}

	/*
	 * Driven by the placed orders past their window (a partial index), each
	 * probing its line of the product by primary key (OFFSET 0: never a scan
	 * of the product's every sale)
	 */
	pieces[0] = psprintf("EXISTS (SELECT FROM %1$s.orders AS o"
						 LEFT_OVER_OF_LINE("p.id")
						 "         WHERE o.status OPERATOR(pg_catalog.=) 'placed'"
						 "           AND o.expires_at OPERATOR(pg_catalog.<=) pg_catalog.now()"
						 "           AND x.left_over OPERATOR(pg_catalog.>) 0)",
						 qschema);
	pieces[1] = psprintf("EXISTS (SELECT FROM %1$s.purchase_limits AS l"
						 "         WHERE l.product_id OPERATOR(pg_catalog.=) c.product_id)",
						 qschema);
	pieces[2] = ", expires_at";
	pieces[3] = ", CASE WHEN $11 OPERATOR(pg_catalog.>) 0"
		"       THEN pg_catalog.now() OPERATOR(pg_catalog.+)"
		"            pg_catalog.make_interval(secs => $11)"
		"  END";
}

/*
 * Whether schema nspname has shop_feature_used() (since 1.3), so that the
 * feature tables have the triggers that let features.c cache what the shop
 * uses
 */
static bool
has_feature_trigger(const char *nspname)
{
	return OidIsValid(LookupFuncName(list_make2(makeString(pstrdup(nspname)),
												makeString("shop_feature_used")),
									 0, NULL, true));
}

/* A schema, a relation or a function changed: check the plans again at the next call */
static void
catalog_changed(Datum arg, int cacheid, uint32 hashvalue)
{
	plans_checked = false;
}

/* Watch the catalogs the plans depend on (from _PG_init) */
void
checkout_statements_init(void)
{
	CacheRegisterSyscacheCallback(NAMESPACEOID, catalog_changed, (Datum) 0);
	CacheRegisterSyscacheCallback(RELNAMENSP, catalog_changed, (Datum) 0);
	CacheRegisterSyscacheCallback(PROCNAMEARGSNSP, catalog_changed, (Datum) 0);
}

/*
 * Ensure the saved plans name the tables of schema nspoid (the schema
 * shop_checkout() lives in), and fit the extension's version there: the
 * statements since a later version are not prepared for a 1.0 install.
 * Looks at the catalogs only when they changed since the last call.  Must
 * be called while connected to SPI.
 */
void
checkout_prepare_statements(Oid nspoid)
{
	char	   *nspname;
	bool		is_1_0;
	bool		has_vouchers;
	bool		is_1_3;
	const char *pieces[NUM_PIECES];
	const char *plain_pieces[NUM_PIECES];

	checkout_features_check();
	if (plans_checked && plans_nspoid == nspoid)
		return;

	nspname = get_namespace_name(nspoid);
	if (nspname == NULL)
		elog(ERROR, "checkout: schema with OID %u does not exist", nspoid);
	is_1_0 = !OidIsValid(get_relname_relid("purchase_limits", nspoid));
	has_vouchers = OidIsValid(get_relname_relid("voucher_slots", nspoid));
	is_1_3 = has_feature_trigger(nspname);
	checkout_features_reset(nspoid, is_1_0, is_1_3);
	plans_checked = true;

	if (plans_nspoid == nspoid && plans_nspname != NULL &&
		strcmp(plans_nspname, nspname) == 0 && plans_for_1_0 == is_1_0 &&
		plans_for_vouchers == has_vouchers && plans_for_1_3 == is_1_3)
		return;

	free_plans();
	plans_for_1_0 = is_1_0;
	plans_for_vouchers = has_vouchers;
	plans_for_1_3 = is_1_3;
	pieces[0] = plain_pieces[0] = quote_identifier(nspname);
	pieces[1] = plain_pieces[1] = orders_sequence(pieces[0]);
	version_pieces(is_1_0, pieces[0], &pieces[2]);
	version_pieces(true, pieces[0], &plain_pieces[2]);
	for (int i = 0; i < NUM_CHECKOUT_STATEMENTS; i++)
		if (strcmp(statements[i].since, "1.0") == 0 ||
			(strcmp(statements[i].since, "1.1") == 0 && !is_1_0) ||
			(strcmp(statements[i].since, "1.2") == 0 && has_vouchers) ||
			(strcmp(statements[i].since, "1.3") == 0 && is_1_3))
			plans[i] = keep_plan(&statements[i],
								 statements[i].plain ? plain_pieces : pieces);
	plans_nspname = MemoryContextStrdup(TopMemoryContext, nspname);
	plans_nspoid = nspoid;
}

/* Whether statement stmt is prepared: of a version this install has */
bool
checkout_prepared(CheckoutStatement stmt)
{
	return plans[stmt] != NULL;
}

/*
 * Run statement stmt with these arguments (nulls as SPI takes them), for at
 * most count rows (0: all); return the number of rows it processed.  Any
 * other result than the statement's own is an error that cannot happen.
 */
uint64
checkout_execute(CheckoutStatement stmt, Datum *values, const char *nulls,
				 long count)
{
	const CheckoutStatementDef *def = &statements[stmt];
	int			rc;

	if (plans[stmt] == NULL)
		elog(ERROR, "checkout: statement \"%s\" (since %s) is not prepared for this install",
			 def->what, def->since);
	rc = SPI_execute_plan(plans[stmt], values, nulls, def->read_only, count);
	if (rc != def->ok)
		elog(ERROR, "checkout: %s failed: %s", def->what, SPI_result_code_string(rc));
	return SPI_processed;
}

/*
 * shop_reclaim_expired(bigint[]) of the schema the plans are for, the
 * checkout's last resort before SH001 (not cached: the extension may have
 * been dropped and created again in that schema); InvalidOid before 1.1
 */
Oid
checkout_reclaim_function(void)
{
	Oid			argtypes[1] = {INT8ARRAYOID};

	if (plans_for_1_0)
		return InvalidOid;
	return LookupFuncName(list_make2(makeString(plans_nspname),
									 makeString("shop_reclaim_expired")),
						  1, argtypes, false);
}

/* Fetch column col of row row of the last SPI result, which must not be NULL */
Datum
spi_value(int row, int col)
{
	bool		isnull;
	Datum		value;

	value = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc,
						  col, &isnull);
	if (isnull)
		elog(ERROR, "checkout: unexpected NULL in column %d", col);
	return value;
}

/* A bigint[] of n values, for an SPI parameter */
Datum
bigint_array(Datum *values, int n)
{
	return PointerGetDatum(construct_array(values, n, INT8OID, sizeof(int64),
										   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/* An integer[] of n values, for an SPI parameter */
Datum
int_array(Datum *values, int n)
{
	return PointerGetDatum(construct_array(values, n, INT4OID, sizeof(int32),
										   true, TYPALIGN_INT));
}

/* A tid[] of n values (pointers to ItemPointerData), for an SPI parameter */
Datum
tid_array(Datum *values, int n)
{
	return PointerGetDatum(construct_array(values, n, TIDOID,
										   sizeof(ItemPointerData), false,
										   TYPALIGN_SHORT));
}
