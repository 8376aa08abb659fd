/*-------------------------------------------------------------------------
 *
 * stock.c
 *		The stock helpers the features stand on (below the driver, slots.c,
 *		locations.c, preorders.c and voucher.c): a product's row and all its
 *		stock slots locked and read, a line served from one free slot (a
 *		default's or a location's), or from its row and slots together, the
 *		row read again, the units taken from slots recorded for the order's
 *		write, the short lines of fail fast read into cart lines, and the
 *		subtransaction a locking read that may pass over rows runs in (stock
 *		slots and voucher slots).
 *
 * Locking rules.  A product's row is locked before its slots, and its slots
 * in slot order (FOR NO KEY UPDATE); callers take products in ascending
 * product id order (checkout.c's global lock order).  Nothing here waits
 * for anything but those rows.
 *
 * Memory rules.  Everything is allocated in the SPI procedure context of
 * the call (the ctid copies of SlotTakes included) and freed by SPI_finish;
 * a subtransaction leaves the caller's memory context as it found it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "call.h"
#include "statements.h"


/* The statements of the stock helpers (statements.h) */
typedef enum StockStatementId
{
	STMT_LOCK_PRODUCT,
	STMT_LOCK_SLOTS,
	STMT_SHORT_LINES,
	STMT_SHORT_LINES_PLAIN,
	STMT_SHORT_LINES_UNSPLIT,
	STMT_SHORT_LINES_BUNDLES,
	NUM_STATEMENTS
} StockStatementId;

static Statement statements[NUM_STATEMENTS] = {
	/*
	 * 0. Fail fast: the cart's lines the snapshot's stock cannot serve, no
	 * locks (SHORT_LINES_SQL, statements.h); for the driver, and for a
	 * voucher code known used up (voucher.c)
	 */
	[STMT_SHORT_LINES] = {
		.what = "reading the stock",
		.since = SINCE_1_0,
		.ok = SPI_OK_SELECT,
		.read_only = true,
		.nargs = 1,
		.argtypes = {INT8OID},
		.sql = SHORT_LINES_SQL
	},

	/* The same where no order has ever had a payment window */
	[STMT_SHORT_LINES_PLAIN] = {
		.what = "reading the stock",
		.since = SINCE_1_0,
		.ok = SPI_OK_SELECT,
		.read_only = true,
		.plain = true,
		.nargs = 1,
		.argtypes = {INT8OID},
		.sql = SHORT_LINES_SQL
	},

	/*
	 * The same where, moreover, no product was ever split into slots (1.3): a
	 * line's stock is its product's row.  Its plan opens two tables, not
	 * four, and it has no subplan to start: about a tenth of a one-line
	 * checkout's own time.
	 */
	[STMT_SHORT_LINES_UNSPLIT] = {
		.what = "reading the stock",
		.since = SINCE_1_0,
		.ok = SPI_OK_SELECT,
		.read_only = true,
		.nargs = 1,
		.argtypes = {INT8OID},
		.sql = "SELECT c.product_id, c.quantity, p.name, p.stock::pg_catalog.int8"
		"  FROM %1$s.cart_items AS c"
		"  JOIN %1$s.products AS p ON p.id OPERATOR(pg_catalog.=) c.product_id"
		" WHERE c.customer_id OPERATOR(pg_catalog.=) $1"
		"   AND p.stock OPERATOR(pg_catalog.<) c.quantity"
		" ORDER BY c.product_id"
	},

	/*
	 * The same in a shop with bundles: the stock lines of the cart (each
	 * product once, what its own line and its bundles' parts need of it, as
	 * bundles.c makes them) and the first bundle, by id, a part is of; a part
	 * that placed orders past their window hold in their bundles is held too
	 * (driven by those orders, as the held piece is)
	 */
	[STMT_SHORT_LINES_BUNDLES] = {
		.what = "reading the stock",
		.since = SINCE_1_3,
		.ok = SPI_OK_SELECT,
		.read_only = true,
		.nargs = 1,
		.argtypes = {INT8OID},
		.sql = SHORT_LINES_OF(", c.bundle_name",
							  "(SELECT n.product_id,"
							  "        LEAST(pg_catalog.sum(n.quantity),"
							  "              2147483647::pg_catalog.numeric)::pg_catalog.int4 AS quantity,"
							  "        (pg_catalog.array_agg(n.bundle_name ORDER BY n.bundle_id)"
							  "           FILTER (WHERE n.bundle_id IS NOT NULL))[1] AS bundle_name"
							  "   FROM (SELECT ci.product_id, ci.quantity::pg_catalog.int8,"
							  "                NULL::pg_catalog.int8 AS bundle_id,"
							  "                NULL::pg_catalog.text AS bundle_name"
							  "           FROM %1$s.cart_items AS ci"
							  "          WHERE ci.customer_id OPERATOR(pg_catalog.=) $1"
							  "            AND NOT EXISTS (SELECT FROM %1$s.bundle_parts AS bp"
							  "                             WHERE bp.bundle_id OPERATOR(pg_catalog.=) ci.product_id)"
							  "         UNION ALL"
							  "         SELECT bp.product_id,"
							  "                ci.quantity::pg_catalog.int8 OPERATOR(pg_catalog.*) bp.quantity,"
							  "                bp.bundle_id, b.name"
							  "           FROM %1$s.cart_items AS ci"
							  "           JOIN %1$s.bundle_parts AS bp"
							  "             ON bp.bundle_id OPERATOR(pg_catalog.=) ci.product_id"
							  "           JOIN %1$s.products AS b ON b.id OPERATOR(pg_catalog.=) ci.product_id"
							  "          WHERE ci.customer_id OPERATOR(pg_catalog.=) $1) AS n"
							  "  GROUP BY n.product_id) AS c",
		/* nor a part that placed orders past their window hold in bundles */
							  "NOT EXISTS (SELECT FROM %1$s.orders AS o"
							  "             WHERE o.status OPERATOR(pg_catalog.=) 'placed'"
							  "               AND o.expires_at OPERATOR(pg_catalog.<=) pg_catalog.now()"
							  "               AND EXISTS (SELECT FROM %1$s.order_item_parts AS op"
							  "                             JOIN %1$s.order_items AS bl"
							  "                               ON bl.order_id OPERATOR(pg_catalog.=) op.order_id"
							  "                              AND bl.product_id OPERATOR(pg_catalog.=) op.bundle_id"
							  "                            WHERE op.order_id OPERATOR(pg_catalog.=) o.id"
							  "                              AND op.product_id OPERATOR(pg_catalog.=) c.product_id"
							  "                              AND bl.quantity OPERATOR(pg_catalog.>) bl.cancelled_quantity))")
	},

	/* 3c. Combining slots (and a located line): lock the product row, ... */
	[STMT_LOCK_PRODUCT] = {
		.what = "locking a product",
		.since = SINCE_1_0,
		.ok = SPI_OK_SELECT,
		.nargs = 1,
		.argtypes = {INT8OID},
		.sql = "SELECT p.name, p.price_cents, p.stock, p.ctid"
		"  FROM %1$s.products AS p"
		" WHERE p.id OPERATOR(pg_catalog.=) $1"
		"   FOR NO KEY UPDATE"
	},

	/* ... then all its slots, in slot order */
	[STMT_LOCK_SLOTS] = {
		.what = "locking the stock slots",
		.since = SINCE_1_0,
		.ok = SPI_OK_SELECT,
		.nargs = 1,
		.argtypes = {INT8OID},
		.sql = "SELECT s.ctid, s.stock"
		"  FROM %1$s.stock_slots AS s"
		" WHERE s.product_id OPERATOR(pg_catalog.=) $1"
		" ORDER BY s.slot"
		"   FOR NO KEY UPDATE"
	},

};

/* Record that amount is taken from the locked slot row at ctid */
void
stock_add_take(SlotTakes *takes, ItemPointer ctid, int32 amount)
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
 * Run attempt(arg) in a subtransaction, kept when it returns true and
 * rolled back when it returns false or raises (the error then goes on).
 * For a locking read that may pass over rows: one that finds a row changed
 * meanwhile keeps that row locked even when the new version no longer
 * qualifies, and a checkout that goes on to wait (for a queue lock, for a
 * slot) must not hold such locks out of the global lock order.  Whatever
 * attempt writes should be written within it, so that a row's lock and its
 * update are by one transaction id (no MultiXact).  Return what attempt
 * returned.
 */
bool
stock_try_in_subtransaction(bool (*attempt) (void *arg), void *arg)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	bool		kept;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		kept = attempt(arg);
		if (kept)
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
	return kept;
}

/* What one attempt of stock_take_one_slot asks */
typedef struct SlotAttempt
{
	const SlotSearch *search;
	Statement  *find;
	CartLine   *line;
	int32		start;
} SlotAttempt;

/*
 * Find, with a->find (the search's find_free or wait_for), one slot that
 * holds the line's whole quantity, from slot number a->start on (then from
 * slot 0 up to it), and take the quantity from it; return whether one did
 */
static bool
serve_from_one_slot(void *arg)
{
	SlotAttempt *a = (SlotAttempt *) arg;
	CartLine   *line = a->line;
	Datum		args[5] = {Int64GetDatum(line->product_id),
		Int32GetDatum(line->quantity), Int32GetDatum(a->start),
		Int32GetDatum(CHECKOUT_MAX_SLOTS),
	Int64GetDatum(a->search->location_id)};
	uint64		found = stmt_execute(a->find, args, NULL, 1);
	ItemPointerData ctid;
	Datum		take_args[2];

	if (found == 0 && a->start > 0)
	{
		args[2] = Int32GetDatum(0);
		args[3] = Int32GetDatum(a->start);
		found = stmt_execute(a->find, args, NULL, 1);
	}
	if (found == 0)
		return false;
	ctid = *(ItemPointer) DatumGetPointer(stmt_value(0, 1));
	line->stock = DatumGetInt32(stmt_value(0, 2));
	line->name = TextDatumGetCString(stmt_value(0, 3));
	line->unit_price_cents = DatumGetInt64(stmt_value(0, 4));
	line->row_take = 0;
	take_args[0] = PointerGetDatum(&ctid);
	take_args[1] = Int32GetDatum(line->quantity);
	if (stmt_execute(a->search->take, take_args, NULL, 0) != 1)
		elog(ERROR, "checkout: updating a stock slot of product %lld found no row",
			 (long long) line->product_id);
	return true;
}

/*
 * One attempt, in a subtransaction rolled back when no slot served (so
 * that a checkout that goes on to wait for the product's queue lock or for
 * its slots holds no slot it passed over: the queue's holder may be
 * waiting for it)
 */
static bool
take_one_slot(const SlotSearch *search, Statement *find, CartLine *line, int32 start)
{
	SlotAttempt attempt = {search, find, line, start};

	return stock_try_in_subtransaction(serve_from_one_slot, &attempt);
}

/*
 * Serve a line from one slot that holds its whole quantity, taking as few
 * locks, and waiting as little, as can be:
 *
 *	1. a free slot, without waiting (SKIP LOCKED, from a random slot on);
 *	2. when every such slot is busy: queue for the product (its queue lock,
 *	   so that such buyers come one at a time), look for a free slot again,
 *	   then wait for one (the queue lock is let go as soon as one is had).
 *	   This queue is taken whatever checkout.queue_locks says: the wait for
 *	   a slot may keep a slot it found drained locked while it waits for the
 *	   next, so two such waiters must never wait at once.
 *
 * The quantity is taken from the slot (search->take) before this returns
 * true.  False: no slot holds the whole quantity; the caller, still
 * holding the product's queue lock, serves the line otherwise (slots.c
 * locks the row and every slot, locations.c the product whole).
 */
bool
stock_take_one_slot(CheckoutCall *call, CartLine *line, const SlotSearch *search)
{
	LOCKTAG		tag;
	int32		start = (int32) pg_prng_uint64_range(&pg_global_prng_state, 0,
													 search->nslots - 1);
	bool		served;

	checkout_lock_step(call, "taking a stock slot of product", line->product_id);
	served = take_one_slot(search, search->find_free, line, start);
	if (!served)
	{
		checkout_lock_step(call, "queueing for a stock slot of product", line->product_id);
		checkout_queue_lock_tag(&tag, line->product_id);
		(void) LockAcquire(&tag, ExclusiveLock, false, false);
		checkout_lock_step(call, "waiting for a stock slot of product", line->product_id);
		served = take_one_slot(search, search->find_free, line, start) ||
			take_one_slot(search, search->wait_for, line, start);
		if (served)
			LockRelease(&tag, ExclusiveLock, false);
	}
	checkout_lock_step(call, NULL, 0);
	return served;
}

/*
 * Lock a product's row (unless row_locked: then line->ctid and line->stock
 * are that row's) and then all its slots, in slot order, and keep what they
 * hold in the line (row_stock, slot_ctids, slot_stock); set
 * line->held.default_stock to the stock on sale of the row and the slots
 * together (the default location's).
 */
void
stock_lock_row_and_slots(CheckoutCall *call, CartLine *line, bool row_locked)
{
	Datum		args[1] = {Int64GetDatum(line->product_id)};
	uint64		nslots;

	checkout_lock_step(call, row_locked ? "locking the stock slots of product" :
					   "locking the row and the stock slots of product", line->product_id);
	if (!row_locked)
	{
		if (stmt_execute(&statements[STMT_LOCK_PRODUCT], args, NULL, 1) != 1)
			elog(ERROR, "checkout: locking product %lld found no row",
				 (long long) line->product_id);
		line->name = TextDatumGetCString(stmt_value(0, 1));
		line->unit_price_cents = DatumGetInt64(stmt_value(0, 2));
		line->stock = DatumGetInt32(stmt_value(0, 3));
		line->ctid = *(ItemPointer) DatumGetPointer(stmt_value(0, 4));
	}

	nslots = stmt_execute(&statements[STMT_LOCK_SLOTS], args, NULL, 0);
	checkout_lock_step(call, NULL, 0);
	line->held.nslot_rows = (int32) nslots;
	line->held.slot_ctids = palloc(sizeof(ItemPointerData) * Max(nslots, 1));
	line->held.slot_stock = palloc(sizeof(int32) * Max(nslots, 1));
	line->held.row_stock = (int32) line->stock;
	line->held.default_stock = line->stock;
	for (uint64 i = 0; i < nslots; i++)
	{
		line->held.slot_ctids[i] = *(ItemPointer) DatumGetPointer(stmt_value(i, 1));
		line->held.slot_stock[i] = DatumGetInt32(stmt_value(i, 2));
		line->held.default_stock += line->held.slot_stock[i];
	}
	line->row_take = 0;
}

/*
 * Read again the product row this checkout holds locked (it waits for
 * nothing): the line's ctid becomes the row's, which an update since it
 * was locked (a reclaim of expired orders) may have moved; return the
 * row's stock, for the caller whose line takes from it anew
 */
int32
stock_read_row_again(CartLine *line)
{
	Datum		args[1] = {Int64GetDatum(line->product_id)};

	if (stmt_execute(&statements[STMT_LOCK_PRODUCT], args, NULL, 1) != 1)
		elog(ERROR, "checkout: reading product %lld again found no row",
			 (long long) line->product_id);
	line->ctid = *(ItemPointer) DatumGetPointer(stmt_value(0, 4));
	return DatumGetInt32(stmt_value(0, 3));
}

/*
 * Take need units from the row and slots stock_lock_row_and_slots() locked: from
 * the row first (line->held.row_stock), then slot after slot
 */
void
stock_serve_from_row_and_slots(CartLine *line, int32 need, SlotTakes *takes)
{
	line->row_take = Min(line->held.row_stock, need);
	need -= line->row_take;
	for (int i = 0; need > 0 && i < line->held.nslot_rows; i++)
	{
		int32		take = Min(line->held.slot_stock[i], need);

		if (take > 0)
			stock_add_take(takes, &line->held.slot_ctids[i], take);
		need -= take;
	}
}

/*
 * Lock a product's row (unless row_locked) and all its slots
 * (stock_lock_row_and_slots), and serve the line from them together: from the
 * row first, then slot after slot, nothing if they are short.  Set
 * line->stock to the stock on sale they hold, so that check_stock reports
 * a line they cannot serve with the true figure.
 *
 * A product with slots normally has nothing in its row; this is the path of
 * a line no single slot can serve, or of a product split into slots after
 * this checkout read the cart (row_locked; then a checkout that combines
 * slots of it may wait for this one's row lock while this one waits for its
 * slots: the deadlock detector breaks that rare cycle with 40P01).
 */
void
stock_lock_all(CheckoutCall *call, CartLine *line, bool row_locked,
			   SlotTakes *takes)
{
	stock_lock_row_and_slots(call, line, row_locked);
	if (line->held.default_stock >= line->quantity)
		stock_serve_from_row_and_slots(line, line->quantity, takes);
	line->stock = line->held.default_stock;
}

/*
 * The short lines of the last SPI result, nrows rows of SHORT_LINES_SQL's
 * columns (statements.h) from column col on: product id, quantity, name
 * and stock, and with_bundle, the bundle a part is of (NULL: none).  A row
 * whose product id is NULL (a statement that returns one row when no line
 * is short) is no line.  Sets *nshort; NULL when none.
 */
CartLine *
stock_short_lines(uint64 nrows, int col, bool with_bundle, int *nshort)
{
	CartLine   *lines = NULL;

	*nshort = 0;
	for (uint64 i = 0; i < nrows; i++)
	{
		bool		no_line;
		CartLine   *line;

		(void) SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, col, &no_line);
		if (no_line)
			continue;
		if (lines == NULL)
			lines = palloc0(sizeof(CartLine) * nrows);
		line = &lines[(*nshort)++];
		line->product_id = DatumGetInt64(stmt_value(i, col));
		line->quantity = DatumGetInt32(stmt_value(i, col + 1));
		line->name = TextDatumGetCString(stmt_value(i, col + 2));
		line->stock = DatumGetInt64(stmt_value(i, col + 3));
		if (with_bundle)
		{
			bool		no_bundle;
			Datum		bundle = SPI_getbinval(SPI_tuptable->vals[i],
											   SPI_tuptable->tupdesc, col + 4, &no_bundle);

			if (!no_bundle)
				line->bundle.of = TextDatumGetCString(bundle);
		}
	}
	return lines;
}

/*
 * Fail fast's read: the lines of customer_id's cart the snapshot's stock
 * cannot serve, no locks (SHORT_LINES_SQL); sets *nshort, NULL when none.
 *
 * In a shop that never had a payment window or a stock slot, the rows of
 * the products are the whole stock (STMT_SHORT_LINES_UNSPLIT).  Lines it
 * finds short are rejected only once stock_slots is seen empty now: the
 * snapshot may show slots whose invalidation this backend has not yet had
 * (a committing transaction's rows become visible a moment before its
 * invalidations are sent), but the slots it shows were inserted, so the
 * table had a block, before that transaction committed.  Then the lines are
 * read again with the slots.
 */
CartLine *
stock_find_short_lines(int64 customer_id, int *nshort)
{
	Datum		args[1] = {Int64GetDatum(customer_id)};
	uint64		nrows;
	bool		expiry;

	if (!stock_short_lines_plain())
	{
		nrows = stmt_execute(&statements[STMT_SHORT_LINES_BUNDLES], args, NULL, 0);
		return stock_short_lines(nrows, 1, true, nshort);
	}
	expiry = checkout_shop_uses(CHECKOUT_EXPIRY);
	if (!expiry && !checkout_shop_uses(CHECKOUT_SLOTS))
	{
		nrows = stmt_execute(&statements[STMT_SHORT_LINES_UNSPLIT], args, NULL, 0);
		if (nrows == 0 || !checkout_shop_uses_now(CHECKOUT_SLOTS))
			return stock_short_lines(nrows, 1, false, nshort);
	}
	nrows = stmt_execute(&statements[expiry ? STMT_SHORT_LINES : STMT_SHORT_LINES_PLAIN],
						 args, NULL, 0);
	return stock_short_lines(nrows, 1, false, nshort);
}

/*
 * Whether fail fast's read is SHORT_LINES_SQL over the cart's own lines,
 * which a statement may join (voucher.c); in a shop with bundles it reads
 * the stock lines of the cart's bundles (stock_find_short_lines) instead
 */
bool
stock_short_lines_plain(void)
{
	return !checkout_shop_uses(CHECKOUT_BUNDLES);
}
