/*-------------------------------------------------------------------------
 *
 * checkout.c
 *		shop_checkout(customer_id): turn a customer's cart into an order in
 *		one atomic, race-free step.
 *
 * The whole checkout runs inside the caller's transaction, through SPI:
 *
 *	0. fail fast: on the statement's snapshot, without taking any lock, look
 *	   for cart lines the stock on sale cannot serve; if there are any, raise
 *	   SH001 with those figures (checkout.fail_fast);
 *	1. read the customer's cart once, locking its lines (FOR UPDATE), and
 *	   work from that set from then on;
 *	2. queue for the cart's products without stock slots: one
 *	   transaction-level lock per product (checkout.queue_locks), in
 *	   ascending product id order;
 *	3. lock those products in ascending product id order with FOR NO KEY
 *	   UPDATE; then, in ascending product id order, serve each line of a
 *	   product with stock slots from its slots (take_from_slots);
 *	4. validate every line against the locked stock;
 *	5. in one statement: decrement the stock (rows and slots locked but not
 *	   yet decremented), insert the order (its total computed here,
 *	   overflow-checked) and its lines, and delete exactly the cart lines that
 *	   were ordered.
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
 * the queue, so a huge cart cannot exhaust the shared lock table.
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
 * Memory rules.  Plans are prepared once per backend and kept
 * (SPI_keepplan) in static variables; they are rebuilt when the function's
 * schema changes (its OID or its name).  Everything else lives in the SPI
 * procedure context and is freed by SPI_finish.  On an error SPI is cleaned
 * up by the transaction (or subtransaction) abort.
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
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "storage/itemptr.h"
#include "storage/lock.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "checkout.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/* checkout.lock_timeout: milliseconds a checkout waits for a lock; 0 = as the server does */
static int	checkout_lock_timeout = 0;

/* checkout.fail_fast: reject on the snapshot before taking any lock */
static bool checkout_fail_fast = true;

/* checkout.queue_locks: queue for each product before locking its row */
static bool checkout_queue_locks = true;

/* The fourth field of our queue locks' tags ("SH"); user advisory locks use 1 and 2 */
#define CHECKOUT_QUEUE_LOCK 0x5348

/* The most slots a product's stock can be split into (stock_slots.slot < 64) */
#define CHECKOUT_MAX_SLOTS 64

/* Carts with more lines than this skip the queue */
#define CHECKOUT_QUEUE_MAX_LINES 16

/* One line of the cart, completed from its locked product row */
typedef struct CartLine
{
	int64		product_id;
	int32		quantity;
	int32		nslots;			/* its stock slots, as read with the cart (0:
								 * none) */
	char	   *name;			/* product name */
	int64		unit_price_cents;
	int64		stock;			/* stock on sale before this checkout (of a
								 * slotted line served by one slot: that
								 * slot's) */
	ItemPointerData ctid;		/* the locked product row, if locked */
	int32		row_take;		/* how much of it comes from that row */
} CartLine;

/* The stock slots a checkout takes from, and how much from each */
typedef struct SlotTakes
{
	int			n;
	int			size;
	Datum	   *ctids;			/* ItemPointer of each locked slot row */
	Datum	   *amounts;		/* int4 */
} SlotTakes;

/*
 * What the running checkout is waiting for, to name it when a lock wait
 * times out (palloc'd in the SPI context, valid until the call ends), and
 * how long it has waited on product locks.
 */
static const char *checkout_waiting_for = NULL;
static int64 checkout_lock_wait_us = 0;
static bool checkout_in_lock_wait = false;
static instr_time checkout_lock_wait_start;
static int64 checkout_items_sold = 0;

/* Saved plans, valid for the schema named in plans_nspoid/plans_nspname */
static Oid	plans_nspoid = InvalidOid;
static char *plans_nspname = NULL;
static SPIPlanPtr short_plan = NULL;
static SPIPlanPtr cart_plan = NULL;
static SPIPlanPtr customer_plan = NULL;
static SPIPlanPtr lock_plan = NULL;
static SPIPlanPtr slot_plan = NULL;
static SPIPlanPtr slot_wait_plan = NULL;
static SPIPlanPtr slot_take_plan = NULL;
static SPIPlanPtr product_plan = NULL;
static SPIPlanPtr all_slots_plan = NULL;
static SPIPlanPtr write_plan = NULL;

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
 * Ensure the saved plans name the tables of schema nspoid.  Must be called
 * while connected to SPI.
 */
static void
prepare_plans(Oid nspoid)
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
static Datum
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

/*
 * Read and lock the customer's cart; return its line count and the lines,
 * in ascending product id order.
 */
static int
read_cart(int64 customer_id, CartLine **lines_out)
{
	Datum		args[1] = {Int64GetDatum(customer_id)};
	CartLine   *lines;
	int			nlines;
	Datum		last_slot;
	bool		no_slots;

	checkout_waiting_for = psprintf("the cart of customer %lld",
									(long long) customer_id);
	if (SPI_execute_plan(cart_plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "checkout: reading the cart failed");

	nlines = (int) SPI_processed;
	lines = palloc0(sizeof(CartLine) * Max(nlines, 1));
	for (int i = 0; i < nlines; i++)
	{
		lines[i].product_id = DatumGetInt64(spi_value(i, 1));
		lines[i].quantity = DatumGetInt32(spi_value(i, 2));
		last_slot = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
								  3, &no_slots);
		lines[i].nslots = no_slots ? 0 : DatumGetInt32(last_slot) + 1;
	}
	*lines_out = lines;
	return nlines;
}

static void check_stock(const CartLine *lines, int nlines);

/*
 * Fail fast: raise SH001 if, on the snapshot and without taking any lock,
 * the stock cannot serve some line of the cart.  See the header comment for
 * why that is correct.
 */
static void
reject_on_snapshot(int64 customer_id)
{
	Datum		args[1] = {Int64GetDatum(customer_id)};
	CartLine   *short_lines;
	int			nshort;

	if (SPI_execute_plan(short_plan, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "checkout: reading the stock failed");
	nshort = (int) SPI_processed;
	if (nshort == 0)
		return;

	short_lines = palloc0(sizeof(CartLine) * nshort);
	for (int i = 0; i < nshort; i++)
	{
		short_lines[i].product_id = DatumGetInt64(spi_value(i, 1));
		short_lines[i].quantity = DatumGetInt32(spi_value(i, 2));
		short_lines[i].name = TextDatumGetCString(spi_value(i, 3));
		short_lines[i].stock = DatumGetInt64(spi_value(i, 4));
	}
	check_stock(short_lines, nshort);
	elog(ERROR, "checkout: short lines passed the stock check");
}

/* The tag of a product's queue lock */
static void
queue_lock_tag(LOCKTAG *tag, int64 product_id)
{
	uint64		id = (uint64) product_id;

	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) (id >> 32),
						 (uint32) id, CHECKOUT_QUEUE_LOCK);
}

/*
 * Queue for each product of the cart without slots, in ascending id order:
 * wait for the product's queue lock, held until the transaction ends.
 * (Buyers of a product with slots do not herd on one row; they queue only
 * when every slot is busy, in take_from_slots.)
 */
static void
queue_for_products(const CartLine *lines, int nlines)
{
	if (!checkout_queue_locks || nlines > CHECKOUT_QUEUE_MAX_LINES)
		return;

	for (int i = 0; i < nlines; i++)
	{
		LOCKTAG		tag;

		if (lines[i].nslots > 0)
			continue;
		queue_lock_tag(&tag, lines[i].product_id);
		checkout_waiting_for = psprintf("product %lld",
										(long long) lines[i].product_id);
		(void) LockAcquire(&tag, ExclusiveLock, false, false);
	}
}

/* Report an empty cart, or an unknown customer when there is none */
static void
report_empty_cart(int64 customer_id)
{
	Datum		args[1] = {Int64GetDatum(customer_id)};

	if (SPI_execute_plan(customer_plan, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "checkout: looking up the customer failed");

	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_CHECKOUT_UNKNOWN_CUSTOMER),
				 errmsg("customer %lld does not exist",
						(long long) customer_id),
				 errdetail("There is no row with id %lld in table customers.",
						   (long long) customer_id),
				 errhint("Check the customer id passed to shop_checkout().")));

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

/* "products 1, 7 and 9" (at most the first ten ids), for messages */
static const char *
products_description(const CartLine *lines, int nlines)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, nlines == 1 ? "product " : "products ");
	for (int i = 0; i < nlines && i < 10; i++)
		appendStringInfo(&buf, "%s%lld",
						 i == 0 ? "" : (i == nlines - 1 ? " and " : ", "),
						 (long long) lines[i].product_id);
	if (nlines > 10)
		appendStringInfo(&buf, " and %d more", nlines - 10);
	return buf.data;
}

/* A bigint[] of n values, for an SPI parameter */
static Datum
bigint_array(Datum *values, int n)
{
	return PointerGetDatum(construct_array(values, n, INT8OID, sizeof(int64),
										   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/* An integer[] of n values, for an SPI parameter */
static Datum
int_array(Datum *values, int n)
{
	return PointerGetDatum(construct_array(values, n, INT4OID, sizeof(int32),
										   true, TYPALIGN_INT));
}

/* A tid[] of n values (pointers to ItemPointerData), for an SPI parameter */
static Datum
tid_array(Datum *values, int n)
{
	return PointerGetDatum(construct_array(values, n, TIDOID,
										   sizeof(ItemPointerData), false,
										   TYPALIGN_SHORT));
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
		if (!unslotted_only || lines[i].nslots == 0)
			ids[(*n)++] = Int64GetDatum(lines[i].product_id);
	return bigint_array(ids, *n);
}

static void lock_all_stock(CartLine *line, bool row_locked, SlotTakes *takes);

/*
 * Lock the cart's products that have no slots, in ascending id order, and
 * complete each of their lines with the product's name, price, stock and
 * row.  A product found short here may have been split into slots after the
 * cart was read: its slots are then locked too and counted (rare; see
 * lock_all_stock).
 */
static void
lock_products(CartLine *lines, int nlines, SlotTakes *takes)
{
	int			nids;
	Datum		args[1];
	int			row = 0;

	args[0] = product_id_array(lines, nlines, true, &nids);
	if (nids == 0)
		return;
	checkout_waiting_for = products_description(lines, nlines);
	if (SPI_execute_plan(lock_plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "checkout: locking the products failed");

	/* Both lists are in ascending product id; the foreign key pairs them */
	if (SPI_processed != (uint64) nids)
		elog(ERROR, "checkout: %d cart lines but " UINT64_FORMAT " products",
			 nids, SPI_processed);
	for (int i = 0; i < nlines; i++)
	{
		if (lines[i].nslots > 0)
			continue;
		if (DatumGetInt64(spi_value(row, 1)) != lines[i].product_id)
			elog(ERROR, "checkout: product %lld of the cart was not found",
				 (long long) lines[i].product_id);
		lines[i].name = TextDatumGetCString(spi_value(row, 2));
		lines[i].unit_price_cents = DatumGetInt64(spi_value(row, 3));
		lines[i].stock = DatumGetInt32(spi_value(row, 4));
		lines[i].ctid = *(ItemPointer) DatumGetPointer(spi_value(row, 5));
		lines[i].row_take = lines[i].quantity;
		row++;
	}

	/* SPI_tuptable is not used beyond this point: the checks may query */
	for (int i = 0; i < nlines; i++)
		if (lines[i].nslots == 0 && lines[i].stock < lines[i].quantity)
			lock_all_stock(&lines[i], true, takes);
}

/* Record that amount is taken from the locked slot row at ctid */
static void
add_slot_take(SlotTakes *takes, ItemPointer ctid, int32 amount)
{
	ItemPointer copy = palloc(sizeof(ItemPointerData));

	if (takes->n == takes->size)
	{
		takes->size = Max(8, takes->size * 2);
		if (takes->ctids == NULL)
		{
			takes->ctids = palloc(sizeof(Datum) * takes->size);
			takes->amounts = palloc(sizeof(Datum) * takes->size);
		}
		else
		{
			takes->ctids = repalloc(takes->ctids, sizeof(Datum) * takes->size);
			takes->amounts = repalloc(takes->amounts, sizeof(Datum) * takes->size);
		}
	}
	ItemPointerCopy(ctid, copy);
	takes->ctids[takes->n] = PointerGetDatum(copy);
	takes->amounts[takes->n] = Int32GetDatum(amount);
	takes->n++;
}

/*
 * Serve a line from one slot that holds the whole quantity, found with
 * plan (slot_plan or slot_wait_plan) from slot number start on, and take
 * the quantity from it.  All in
 * a subtransaction, kept when a slot served the line and rolled back when
 * none did: a locking read that finds a row changed meanwhile keeps that
 * row locked even when the new version no longer qualifies, and a checkout
 * that goes on to wait for the product's queue lock or for its slots must
 * not hold such locks (the queue's holder may be waiting for them).  The
 * stock is taken within the subtransaction too, so the row's lock and its
 * update are by one transaction id (no MultiXact).  Return whether a slot
 * served the line.
 */
static bool
take_one_slot(SPIPlanPtr plan, CartLine *line, int32 start)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	Datum		args[4] = {Int64GetDatum(line->product_id),
		Int32GetDatum(line->quantity), Int32GetDatum(start),
	Int32GetDatum(CHECKOUT_MAX_SLOTS)};
	bool		served = false;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		/* From slot start up, then from slot 0 up to start */
		if (SPI_execute_plan(plan, args, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "checkout: taking a stock slot failed");
		if (SPI_processed == 0 && start > 0)
		{
			args[2] = Int32GetDatum(0);
			args[3] = Int32GetDatum(start);
			if (SPI_execute_plan(plan, args, NULL, false, 1) != SPI_OK_SELECT)
				elog(ERROR, "checkout: taking a stock slot failed");
		}
		if (SPI_processed == 1)
		{
			ItemPointerData ctid = *(ItemPointer) DatumGetPointer(spi_value(0, 1));
			Datum		take_args[2] = {PointerGetDatum(&ctid),
			Int32GetDatum(line->quantity)};

			line->stock = DatumGetInt32(spi_value(0, 2));
			line->name = TextDatumGetCString(spi_value(0, 3));
			line->unit_price_cents = DatumGetInt64(spi_value(0, 4));
			line->row_take = 0;
			if (SPI_execute_plan(slot_take_plan, take_args, NULL, false, 0) != SPI_OK_UPDATE ||
				SPI_processed != 1)
				elog(ERROR, "checkout: updating a stock slot of product %lld failed",
					 (long long) line->product_id);
			served = true;
		}
		if (served)
			ReleaseCurrentSubTransaction();
		else
			RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		ReThrowError(edata);
	}
	PG_END_TRY();
	return served;
}

/*
 * Lock a product's row (unless row_locked: then line->ctid and line->stock
 * are that row's) and then all its slots, in slot order, and serve the line
 * from them together: from the row first, then slot after slot.  Set
 * line->stock to the stock on sale they hold, so that check_stock reports a
 * line they cannot serve with the true figure.
 *
 * A product with slots normally has nothing in its row; this is the path of
 * a line no single slot can serve, or of a product split into slots after
 * this checkout read the cart (row_locked; then a checkout that combines
 * slots of it may wait for this one's row lock while this one waits for its
 * slots: the deadlock detector breaks that rare cycle with 40P01).
 */
static void
lock_all_stock(CartLine *line, bool row_locked, SlotTakes *takes)
{
	Datum		args[1] = {Int64GetDatum(line->product_id)};
	int64		total;
	int32		need;

	if (!row_locked)
	{
		if (SPI_execute_plan(product_plan, args, NULL, false, 1) != SPI_OK_SELECT ||
			SPI_processed != 1)
			elog(ERROR, "checkout: locking product %lld failed",
				 (long long) line->product_id);
		line->name = TextDatumGetCString(spi_value(0, 1));
		line->unit_price_cents = DatumGetInt64(spi_value(0, 2));
		line->stock = DatumGetInt32(spi_value(0, 3));
		line->ctid = *(ItemPointer) DatumGetPointer(spi_value(0, 4));
	}

	if (SPI_execute_plan(all_slots_plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "checkout: locking the stock slots of product %lld failed",
			 (long long) line->product_id);
	total = line->stock;
	for (uint64 i = 0; i < SPI_processed; i++)
		total += DatumGetInt32(spi_value(i, 2));

	/* From the row first, then slot after slot; nothing if short */
	line->row_take = 0;
	need = line->quantity;
	if (total >= need)
	{
		line->row_take = (int32) Min(line->stock, (int64) need);
		need -= line->row_take;
		for (uint64 i = 0; need > 0 && i < SPI_processed; i++)
		{
			int32		take = Min(DatumGetInt32(spi_value(i, 2)), need);

			if (take > 0)
				add_slot_take(takes,
							  (ItemPointer) DatumGetPointer(spi_value(i, 1)),
							  take);
			need -= take;
		}
	}
	line->stock = total;
}

/*
 * Serve a line of a product with stock slots, taking as few locks, and
 * waiting as little, as can be:
 *
 *	1. a free slot that holds the whole quantity, without waiting (SKIP
 *	   LOCKED, slots tried in random order);
 *	2. when every such slot is busy: queue for the product (its queue lock,
 *	   so that such buyers come one at a time), look for a free slot again,
 *	   then wait for one (the queue lock is let go as soon as one is had).
 *	   This queue is taken whatever checkout.queue_locks says: the wait for
 *	   a slot may keep a slot it found drained locked while it waits for the
 *	   next, so two such waiters must never wait at once;
 *	3. when no slot holds the whole quantity: lock the row and every slot
 *	   and combine them (lock_all_stock), so that no buyer is told "sold
 *	   out" while the stock on sale could serve them.
 */
static void
take_from_slots(CartLine *line, SlotTakes *takes)
{
	LOCKTAG		tag;
	int32		start = (int32) pg_prng_uint64_range(&pg_global_prng_state, 0,
													 line->nslots - 1);

	checkout_waiting_for = psprintf("product %lld", (long long) line->product_id);
	if (take_one_slot(slot_plan, line, start))
		return;

	queue_lock_tag(&tag, line->product_id);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
	if (take_one_slot(slot_plan, line, start) ||
		take_one_slot(slot_wait_plan, line, start))
	{
		LockRelease(&tag, ExclusiveLock, false);
		return;
	}
	lock_all_stock(line, false, takes);
}

/*
 * Ensure every line's quantity is in stock.  Otherwise report the first
 * short line in the message and every short line in the detail.
 */
static void
check_stock(const CartLine *lines, int nlines)
{
	const CartLine *first = NULL;
	StringInfoData detail;

	initStringInfo(&detail);
	for (int i = 0; i < nlines; i++)
	{
		if (lines[i].stock >= lines[i].quantity)
			continue;
		if (first == NULL)
			first = &lines[i];
		else
			appendStringInfoChar(&detail, '\n');
		appendStringInfo(&detail,
						 "Product %lld \"%s\": available %lld, requested %d.",
						 (long long) lines[i].product_id, lines[i].name,
						 (long long) lines[i].stock, lines[i].quantity);
	}

	if (first != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CHECKOUT_INSUFFICIENT_STOCK),
				 errmsg("Insufficient stock for %s (available: %lld, requested: %d)",
						first->name, (long long) first->stock, first->quantity),
				 errdetail("%s", detail.data),
				 errhint("Lower the quantity of each product listed to what is available, or remove it from the cart, then check out again.")));
	pfree(detail.data);
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
 * Decrement the stock, insert the order and its lines, and delete the
 * ordered cart lines, in one statement.  Return the new order's id.
 */
static int64
write_order(int64 customer_id, const CartLine *lines, int nlines,
			const SlotTakes *takes, int64 total)
{
	Datum	   *quantities = palloc(sizeof(Datum) * nlines);
	Datum	   *prices = palloc(sizeof(Datum) * nlines);
	Datum	   *row_ctids = palloc(sizeof(Datum) * nlines);
	Datum	   *row_takes = palloc(sizeof(Datum) * nlines);
	int			nrows = 0;
	int			nids;
	Datum		args[9];

	for (int i = 0; i < nlines; i++)
	{
		quantities[i] = Int32GetDatum(lines[i].quantity);
		prices[i] = Int64GetDatum(lines[i].unit_price_cents);
		if (lines[i].row_take > 0)
		{
			row_ctids[nrows] = PointerGetDatum(&lines[i].ctid);
			row_takes[nrows++] = Int32GetDatum(lines[i].row_take);
		}
	}
	args[0] = Int64GetDatum(customer_id);
	args[1] = product_id_array(lines, nlines, false, &nids);
	args[2] = int_array(quantities, nlines);
	args[3] = bigint_array(prices, nlines);
	args[4] = Int64GetDatum(total);
	args[5] = tid_array(row_ctids, nrows);
	args[6] = int_array(row_takes, nrows);
	args[7] = tid_array(takes->ctids, takes->n);
	args[8] = int_array(takes->amounts, takes->n);

	checkout_waiting_for = "the rows the order writes or references";
	if (SPI_execute_plan(write_plan, args, NULL, false, 0) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "checkout: writing the order failed");

	return DatumGetInt64(spi_value(0, 1));
}

/*
 * Settings for the rest of this call, at a new GUC nesting level, which the
 * caller pops with AtEOXact_GUC() (or the transaction abort does); returns
 * the level.
 *
 * enable_seqscan = off: every statement here finds rows by key or by ctid,
 * and a generic plan must not pick a sequential scan because a table looks
 * small or because it cannot know how many ids or ctids an array parameter
 * holds (it guesses 10: on a catalog of a thousand products, a TID scan of
 * 10 rows then costs more than reading the table).  Plans are built, and
 * rebuilt after an invalidation, only while a call runs, so they are always
 * built with this setting; it covers the foreign key checks the writes fire.
 *
 * lock_timeout = checkout.lock_timeout, when that is set: bounds lock waits.
 */
static int
set_call_settings(void)
{
	int			nestlevel = NewGUCNestLevel();

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

/*
 * The checkout itself: validate the argument, then read, lock, validate and
 * write.  Returns the new order's id; raises every error the README lists.
 */
static int64
checkout(FunctionCallInfo fcinfo)
{
	int64		customer_id;
	CartLine   *lines;
	int			nlines;
	SlotTakes	takes = {0};
	int64		order_id;
	int			nestlevel;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("customer id must not be NULL"),
				 errhint("Pass the id of an existing customer to shop_checkout().")));
	customer_id = PG_GETARG_INT64(0);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "checkout: SPI_connect failed");

	prepare_plans(get_func_namespace(fcinfo->flinfo->fn_oid));

	/*
	 * The settings come before fail fast too: left to itself its plan would
	 * scan the (small) stock_slots table, and starting a sequential scan
	 * costs a file-size system call, more than the GUC work
	 */
	nestlevel = set_call_settings();
	if (checkout_fail_fast)
		reject_on_snapshot(customer_id);

	nlines = read_cart(customer_id, &lines);
	if (nlines == 0)
		report_empty_cart(customer_id);

	/*
	 * Queue and lock, timed for the statistics: the rows of products without
	 * slots, then the slots of the others, in ascending product id order
	 */
	INSTR_TIME_SET_CURRENT(checkout_lock_wait_start);
	checkout_in_lock_wait = true;
	queue_for_products(lines, nlines);
	lock_products(lines, nlines, &takes);
	for (int i = 0; i < nlines; i++)
		if (lines[i].nslots > 0 && !ItemPointerIsValid(&lines[i].ctid))
			take_from_slots(&lines[i], &takes);
	checkout_in_lock_wait = false;
	checkout_lock_wait_us = elapsed_us(checkout_lock_wait_start);

	check_stock(lines, nlines);
	order_id = write_order(customer_id, lines, nlines, &takes,
						   order_total(lines, nlines));

	for (int i = 0; i < nlines; i++)
		checkout_items_sold += lines[i].quantity;
	AtEOXact_GUC(true, nestlevel);
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
		case ERRCODE_LOCK_NOT_AVAILABLE:
			return CHECKOUT_LOCK_TIMEOUT;
		case ERRCODE_T_R_SERIALIZATION_FAILURE:
			return CHECKOUT_SERIALIZATION_FAILURE;
		default:
			return CHECKOUT_OTHER_FAILURE;
	}
}

PG_FUNCTION_INFO_V1(shop_checkout);

/*
 * shop_checkout(customer_id bigint) RETURNS bigint
 *
 * Not STRICT: a NULL customer id raises 22004 rather than returning NULL.
 * Counts every call in the statistics (when preloaded), and turns a lock
 * wait that timed out into an error that names what was busy.
 */
Datum
shop_checkout(PG_FUNCTION_ARGS)
{
	instr_time	start;
	int64		order_id;

	INSTR_TIME_SET_CURRENT(start);
	checkout_waiting_for = NULL;
	checkout_lock_wait_us = 0;
	checkout_in_lock_wait = false;
	checkout_items_sold = 0;

	PG_TRY();
	{
		order_id = checkout(fcinfo);
	}
	PG_CATCH();
	{
		int			sqlerrcode = geterrcode();

		if (checkout_in_lock_wait)
			checkout_lock_wait_us += elapsed_us(checkout_lock_wait_start);
		checkout_stats_count(outcome_of(sqlerrcode), 0, elapsed_us(start),
							 checkout_lock_wait_us);
		if (sqlerrcode != ERRCODE_LOCK_NOT_AVAILABLE ||
			checkout_waiting_for == NULL)
			PG_RE_THROW();

		/* Replace the lock timeout with one that says what was busy */
		FlushErrorState();
		if (checkout_lock_timeout > 0)
			ereport(ERROR,
					(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
					 errmsg("checkout timed out: %s is busy", checkout_waiting_for),
					 errdetail("Another transaction held a lock the checkout needed for longer than checkout.lock_timeout (%d ms). Nothing was changed.",
							   checkout_lock_timeout),
					 errhint("Retry the checkout.")));
		else
			ereport(ERROR,
					(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
					 errmsg("checkout timed out: %s is busy", checkout_waiting_for),
					 errdetail("Another transaction held a lock the checkout needed for longer than lock_timeout (%s). Nothing was changed.",
							   GetConfigOption("lock_timeout", false, false)),
					 errhint("Retry the checkout.")));
	}
	PG_END_TRY();

	checkout_stats_count(CHECKOUT_SUCCESS, checkout_items_sold,
						 elapsed_us(start), checkout_lock_wait_us);
	PG_RETURN_INT64(order_id);
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
	MarkGUCPrefixReserved("checkout");

	checkout_stats_init();
}
