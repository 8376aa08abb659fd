/*-------------------------------------------------------------------------
 *
 * statements.c
 *		The SQL statements of a checkout, prepared once per backend and
 *		kept, and the small helpers that pass them parameters and read
 *		their results.
 *
 * Memory rules.  Each statement is prepared with SPI_prepare_cursor as a
 * generic plan and kept (SPI_keepplan) in a static variable for the life of
 * the backend; they are all prepared again when the extension's schema
 * changes (its OID or its name: a schema renamed, or the extension dropped
 * and created again).  The schema's name is kept in TopMemoryContext.
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

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "checkout.h"

/* Saved plans, valid for the schema named in plans_nspoid/plans_nspname */
static Oid	plans_nspoid = InvalidOid;
static char *plans_nspname = NULL;
SPIPlanPtr	short_plan = NULL;
SPIPlanPtr	cart_plan = NULL;
SPIPlanPtr	customer_plan = NULL;
SPIPlanPtr	lock_plan = NULL;
SPIPlanPtr	slot_plan = NULL;
SPIPlanPtr	slot_wait_plan = NULL;
SPIPlanPtr	slot_take_plan = NULL;
SPIPlanPtr	product_plan = NULL;
SPIPlanPtr	all_slots_plan = NULL;
SPIPlanPtr	write_plan = NULL;

/*
 * Prepare one statement and keep its plan for the life of the backend.
 * The statement's "%1$s" stands for the quoted schema name.
 */
static SPIPlanPtr
keep_plan(const char *sql_template, const char *qschema,
		  int nargs, Oid *argtypes)
{
	StringInfoData sql;
	SPIPlanPtr	plan;

	initStringInfo(&sql);
	appendStringInfo(&sql, sql_template, qschema);

	/*
	 * Generic plans: the statements are simple lookups by key, so there is
	 * nothing a custom plan could do better, and planning each call costs
	 * more than running it.
	 */
	plan = SPI_prepare_cursor(sql.data, nargs, argtypes, CURSOR_OPT_GENERIC_PLAN);
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
	SPIPlanPtr *plans[] = {&short_plan, &cart_plan, &customer_plan, &lock_plan,
		&slot_plan, &slot_wait_plan, &slot_take_plan, &product_plan,
	&all_slots_plan, &write_plan};

	for (int i = 0; i < lengthof(plans); i++)
	{
		if (*plans[i] != NULL)
			SPI_freeplan(*plans[i]);
		*plans[i] = NULL;
	}
	if (plans_nspname != NULL)
		pfree(plans_nspname);
	plans_nspname = NULL;
	plans_nspoid = InvalidOid;
}

/*
 * Ensure the saved plans name the tables of schema nspoid (the schema
 * shop_checkout() lives in).  Must be called while connected to SPI.
 */
void
checkout_prepare_plans(Oid nspoid)
{
	char	   *nspname = get_namespace_name(nspoid);
	const char *qschema;
	Oid			one_bigint[1] = {INT8OID};
	Oid			one_bigint_array[1] = {INT8ARRAYOID};
	Oid			slot_quantity[2] = {TIDOID, INT4OID};
	Oid			slot_search[4] = {INT8OID, INT4OID, INT4OID, INT4OID};
	Oid			write_args[9] = {INT8OID, INT8ARRAYOID, INT4ARRAYOID,
		INT8ARRAYOID, INT8OID, TIDARRAYOID, INT4ARRAYOID, TIDARRAYOID,
	INT4ARRAYOID};

	if (nspname == NULL)
		elog(ERROR, "checkout: schema with OID %u does not exist", nspoid);

	if (plans_nspoid == nspoid && plans_nspname != NULL &&
		strcmp(plans_nspname, nspname) == 0)
		return;

	free_plans();
	qschema = quote_identifier(nspname);

	/*
	 * 0. Fail fast: the lines the snapshot's stock on sale (the product's
	 * row plus its slots) cannot serve, no locks
	 */
	short_plan = keep_plan(
						   "SELECT c.product_id, c.quantity, p.name, a.stock"
						   "  FROM %1$s.cart_items AS c"
						   "  JOIN %1$s.products AS p"
						   "    ON p.id OPERATOR(pg_catalog.=) c.product_id"
	/*
	 * Only for a line its row cannot serve (the join's filter runs first):
	 * NULL when one slot can, else the row plus all its slots.  OFFSET 0
	 * keeps the subquery from being flattened into the filter, where it
	 * would be evaluated for every line and twice for a short one.
	 */
						   " CROSS JOIN LATERAL ("
						   "  SELECT CASE"
						   "         WHEN EXISTS (SELECT FROM %1$s.stock_slots AS s"
						   "                       WHERE s.product_id OPERATOR(pg_catalog.=) p.id"
						   "                         AND s.stock OPERATOR(pg_catalog.>=) c.quantity)"
						   "         THEN NULL"
						   "         ELSE p.stock::pg_catalog.int8 OPERATOR(pg_catalog.+)"
						   "              COALESCE((SELECT pg_catalog.sum(s.stock)"
						   "                          FROM %1$s.stock_slots AS s"
						   "                         WHERE s.product_id OPERATOR(pg_catalog.=) p.id), 0)"
						   "         END AS stock"
						   "  OFFSET 0) AS a"
						   " WHERE c.customer_id OPERATOR(pg_catalog.=) $1"
						   "   AND p.stock OPERATOR(pg_catalog.<) c.quantity"
						   "   AND a.stock OPERATOR(pg_catalog.<) c.quantity"
						   " ORDER BY c.product_id",
						   qschema, 1, one_bigint);

	/*
	 * 1. The cart, read once and held: its lines are locked.  Which products
	 * have slots, and their last slot's number (slots are numbered from 0),
	 * is read on the snapshot (see lock_products for a product split
	 * meanwhile).
	 */
	cart_plan = keep_plan(
						  "SELECT c.product_id, c.quantity,"
						  "       (SELECT pg_catalog.max(s.slot) FROM %1$s.stock_slots AS s"
						  "         WHERE s.product_id OPERATOR(pg_catalog.=) c.product_id)"
						  "  FROM %1$s.cart_items AS c"
						  " WHERE c.customer_id OPERATOR(pg_catalog.=) $1"
						  " ORDER BY c.product_id"
						  "   FOR UPDATE OF c",
						  qschema, 1, one_bigint);

	/* Tells an unknown customer from an empty cart */
	customer_plan = keep_plan(
							  "SELECT 1 FROM %1$s.customers AS c"
							  " WHERE c.id OPERATOR(pg_catalog.=) $1",
							  qschema, 1, one_bigint);

	/* 3. The cart's products without slots, locked in ascending id order */
	lock_plan = keep_plan(
						  "SELECT p.id, p.name, p.price_cents, p.stock, p.ctid"
						  "  FROM %1$s.products AS p"
						  " WHERE p.id OPERATOR(pg_catalog.=) ANY ($1)"
						  " ORDER BY p.id"
						  "   FOR NO KEY UPDATE",
						  qschema, 1, one_bigint_array);

	/*
	 * 3b. A slot of product $1 that holds at least $2, numbered from $3 up to
	 * below $4 (the caller starts at a random slot, so that buyers spread
	 * over the slots): the first one free (SKIP LOCKED), or, in
	 * slot_wait_plan, the first one that still holds enough once this
	 * transaction has waited for it.  The product row is read, not locked.
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
	slot_plan = keep_plan(SLOT_QUERY " SKIP LOCKED", qschema, 4, slot_search);
	slot_wait_plan = keep_plan(SLOT_QUERY, qschema, 4, slot_search);
#undef SLOT_QUERY
	/* ... and take $2 from the slot locked at ctid $1 */
	slot_take_plan = keep_plan(
							   "UPDATE %1$s.stock_slots AS s"
							   "   SET stock = s.stock OPERATOR(pg_catalog.-) $2"
							   " WHERE s.ctid OPERATOR(pg_catalog.=) $1",
							   qschema, 2, slot_quantity);

	/* 3c. Combining slots: lock the product row, then all its slots */
	product_plan = keep_plan(
							 "SELECT p.name, p.price_cents, p.stock, p.ctid"
							 "  FROM %1$s.products AS p"
							 " WHERE p.id OPERATOR(pg_catalog.=) $1"
							 "   FOR NO KEY UPDATE",
							 qschema, 1, one_bigint);
	all_slots_plan = keep_plan(
							   "SELECT s.ctid, s.stock"
							   "  FROM %1$s.stock_slots AS s"
							   " WHERE s.product_id OPERATOR(pg_catalog.=) $1"
							   " ORDER BY s.slot"
							   "   FOR NO KEY UPDATE",
							   qschema, 1, one_bigint);

	/*
	 * 5. Every write in one statement: $1 customer, $2 product ids, $3
	 * quantities, $4 unit prices, $5 order total, $6 the locked product rows
	 * to take stock from (ctids) and $7 how much from each, $8 and $9 the
	 * same for stock slots.  Stock is updated by ctid (a TID scan, whatever
	 * the planner thinks of the table's size): the rows are locked by this
	 * transaction, so their ctids cannot change.
	 */
	write_plan = keep_plan(
						   "WITH line AS ("
						   "  SELECT l.product_id, l.quantity, l.unit_price_cents"
						   "    FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3),"
						   "                    pg_catalog.unnest($4))"
						   "         AS l(product_id, quantity, unit_price_cents)"
						   "), sold AS ("
						   "  UPDATE %1$s.products AS p"
						   "     SET stock = p.stock OPERATOR(pg_catalog.-)"
						   "         ($7)[pg_catalog.array_position($6, p.ctid)]"
						   "   WHERE p.ctid OPERATOR(pg_catalog.=) ANY ($6)"
						   "), slot_sold AS ("
						   "  UPDATE %1$s.stock_slots AS s"
						   "     SET stock = s.stock OPERATOR(pg_catalog.-)"
						   "         ($9)[pg_catalog.array_position($8, s.ctid)]"
						   "   WHERE s.ctid OPERATOR(pg_catalog.=) ANY ($8)"
						   "), new_order AS ("
						   "  INSERT INTO %1$s.orders (customer_id, total_cents)"
						   "  VALUES ($1, $5)"
						   "  RETURNING id"
						   "), new_lines AS ("
						   "  INSERT INTO %1$s.order_items"
						   "         (order_id, product_id, quantity, unit_price_cents)"
						   "  SELECT new_order.id, line.product_id, line.quantity,"
						   "         line.unit_price_cents"
						   "    FROM new_order, line"
						   "), ordered AS ("
						   "  DELETE FROM %1$s.cart_items AS c"
						   "   WHERE c.customer_id OPERATOR(pg_catalog.=) $1"
						   "     AND c.product_id OPERATOR(pg_catalog.=) ANY ($2)"
						   ")"
						   "SELECT new_order.id FROM new_order",
						   qschema, 9, write_args);

	plans_nspname = MemoryContextStrdup(TopMemoryContext, nspname);
	plans_nspoid = nspoid;
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
