/*-------------------------------------------------------------------------
 *
 * statements.h
 *		The engine that runs a checkout's SQL statements (statements.c):
 *		each file keeps a table of the statements it runs, next to the code
 *		that runs them; the engine prepares each once per backend, for the
 *		extension's schema and version, keeps its plan and runs it.  Also
 *		the SPI helpers the files share, and the SQL pieces that statements
 *		of more than one file embed.
 *
 * A statement's SQL names the extension's objects with numbered pieces the
 * engine fills in when it prepares it: "%1$s" is the quoted schema name,
 * "%2$s" the orders' id sequence (a quoted literal, for nextval()), "%3$s"
 * to "%6$s" the expressions that differ between versions: whether placed
 * orders past their payment window hold units of product p.id, whether
 * the product of cart line c has a purchase limit, and a new order's
 * expires_at column and value (each with a comma before it, or empty).  A
 * plain statement is prepared with 1.0's pieces (false, false, nothing).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STATEMENTS_H
#define STATEMENTS_H

#include "executor/spi.h"

/* The first version of the extension whose tables a statement reads */
typedef enum StatementSince
{
	SINCE_1_0,
	SINCE_1_1,					/* idempotency keys, purchase limits, expiry */
	SINCE_1_2,					/* vouchers, locations, preorders */
	SINCE_1_3,					/* keys that keep their request, place order */
} StatementSince;

#define STATEMENT_MAX_ARGS 20

/*
 * One statement, defined with designated initializers in the table of the
 * file that runs it.  plan and generation are the engine's: zero in a
 * definition, then the saved plan and the schema it was prepared for.
 */
typedef struct Statement
{
	const char *what;			/* what it does, for an error that cannot
								 * happen */
	StatementSince since;
	int			ok;				/* the SPI result code it returns */
	bool		read_only;		/* runs on the statement's snapshot, no locks */
	bool		plain;			/* prepared without the payment window and
								 * limits, as for 1.0 (a shop that has never
								 * used them: checkout_shop_uses()) */
	int			nargs;
	Oid			argtypes[STATEMENT_MAX_ARGS];
	const char *sql;

	SPIPlanPtr	plan;
	uint32		generation;
} Statement;

/* What the extension's schema holds, as stmt_use_schema() found it */
typedef struct StatementSchema
{
	Oid			nspoid;
	bool		is_1_0;			/* no purchase_limits: still at 1.0 */
	bool		is_1_3;			/* shop_feature_used() is there */
} StatementSchema;

extern void stmt_init(void);
extern bool stmt_use_schema(Oid nspoid, StatementSchema *schema);
extern bool stmt_available(const Statement *stmt);
extern uint64 stmt_execute(Statement *stmt, Datum *values, const char *nulls,
						   long count);
extern Oid	stmt_reclaim_function(void);
extern Datum stmt_value(int row, int col);
extern Datum stmt_bigint_array(Datum *values, int n);
extern Datum stmt_int_array(Datum *values, int n);
extern Datum stmt_tid_array(Datum *values, int n);

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
 * Fail fast (checkout.c, and voucher.c's statement that reads a code with
 * it): the lines of customer $1's cart the snapshot's stock on sale (the
 * product's row plus its slots) cannot serve, no locks: product id,
 * quantity, name, stock.  Lateral a is computed only for a line its row
 * cannot serve (the join's filter runs first): NULL when one slot can,
 * else the row plus all its slots; OFFSET 0 keeps it from being flattened
 * into the filter, where it would be evaluated for every line and twice
 * for a short one.  Its held says whether placed orders past their payment
 * window hold units of the product: then the line is not rejected here,
 * and the checkout takes those units back under its locks before it can
 * say "sold out".  Only whether, not how many: an EXISTS costs the
 * executor far less to start than a sum, and a rejection here must only
 * never be wrong.
 */
#define SHORT_LINES_SQL \
	SHORT_LINES_OF("", "%1$s.cart_items AS c", "c.customer_id OPERATOR(pg_catalog.=) $1")

/*
 * The same over other lines (lines: a relation c with product_id and
 * quantity) that filter keeps, with columns after stock
 */
#define SHORT_LINES_OF(columns, lines, filter) \
	"SELECT c.product_id, c.quantity, p.name, a.stock" columns \
	"  FROM " lines \
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
	" WHERE " filter \
	"   AND p.stock OPERATOR(pg_catalog.<) c.quantity" \
	"   AND a.stock OPERATOR(pg_catalog.<) c.quantity" \
	"   AND NOT a.held" \
	" ORDER BY c.product_id"

#endif							/* STATEMENTS_H */
