/*-------------------------------------------------------------------------
 *
 * slots.c
 *		Serving a cart line of a product whose stock is split into stock
 *		slots (shop_split_stock): from one free slot, after a wait for one,
 *		or from the product's row and all its slots together.
 *
 * Locking rules.  A line takes one free slot that holds its whole quantity
 * without waiting (FOR NO KEY UPDATE SKIP LOCKED, from a random slot on);
 * when every such slot is busy it queues for the product (its queue lock,
 * whatever checkout.queue_locks says) and waits for one; when no slot holds
 * the quantity it locks the product's row and then every slot in slot order.
 * Products are served in ascending product id order (the caller's loop), so
 * these waits follow checkout.c's global lock order.  Looking for a slot
 * runs in a subtransaction that is rolled back when no slot served the line,
 * so a checkout that goes on to wait holds no slot of that product.
 *
 * Memory rules.  Everything is allocated in the SPI procedure context of
 * the call (the ctid copies of SlotTakes included) and freed by SPI_finish;
 * a subtransaction leaves the caller's memory context as it found it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "checkout.h"
#include "statements.h"

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

/* The statements of slots (statements.h), each run by the function that needs it */
typedef enum SlotsStatementId
{
	STMT_FREE_SLOT,
	STMT_WAIT_FOR_SLOT,
	STMT_TAKE_FROM_SLOT,
	STMT_LOCK_PRODUCT,
	STMT_LOCK_SLOTS,
	NUM_STATEMENTS
} SlotsStatementId;

static Statement statements[NUM_STATEMENTS] = {
	/* 3b. The first free slot that holds the line (SLOT_QUERY) ... */
	[STMT_FREE_SLOT] = {
		.what = "taking a stock slot",
		.since = SINCE_1_0,
		.ok = SPI_OK_SELECT,
		.nargs = 4,
		.argtypes = {INT8OID, INT4OID, INT4OID, INT4OID},
		.sql = SLOT_QUERY " SKIP LOCKED"
	},

	/* ... or the first that still holds it once this one waited for it ... */
	[STMT_WAIT_FOR_SLOT] = {
		.what = "waiting for a stock slot",
		.since = SINCE_1_0,
		.ok = SPI_OK_SELECT,
		.nargs = 4,
		.argtypes = {INT8OID, INT4OID, INT4OID, INT4OID},
		.sql = SLOT_QUERY
	},

	/* ... and take $2 from the slot locked at ctid $1 */
	[STMT_TAKE_FROM_SLOT] = {
		.what = "updating a stock slot",
		.since = SINCE_1_0,
		.ok = SPI_OK_UPDATE,
		.nargs = 2,
		.argtypes = {TIDOID, INT4OID},
		.sql = "UPDATE %1$s.stock_slots AS s"
		"   SET stock = s.stock OPERATOR(pg_catalog.-) $2"
		" WHERE s.ctid OPERATOR(pg_catalog.=) $1"
	},

	/* 3c. Combining slots: lock the product row, ... */
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
checkout_try_in_subtransaction(bool (*attempt) (void *arg), void *arg)
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

/* What take_one_slot asks of one attempt */
typedef struct SlotAttempt
{
	SlotsStatementId stmt;
	CartLine   *line;
	int32		start;
} SlotAttempt;

/*
 * Find, with a->stmt (STMT_FREE_SLOT or STMT_WAIT_FOR_SLOT), one
 * slot that holds the line's whole quantity, from slot number a->start on
 * (then from slot 0 up to it), and take the quantity from it; return
 * whether one did
 */
static bool
serve_from_one_slot(void *arg)
{
	SlotAttempt *a = (SlotAttempt *) arg;
	CartLine   *line = a->line;
	Datum		args[4] = {Int64GetDatum(line->product_id),
		Int32GetDatum(line->quantity), Int32GetDatum(a->start),
	Int32GetDatum(CHECKOUT_MAX_SLOTS)};
	uint64		found = stmt_execute(&statements[a->stmt], args, NULL, 1);
	ItemPointerData ctid;
	Datum		take_args[2];

	if (found == 0 && a->start > 0)
	{
		args[2] = Int32GetDatum(0);
		args[3] = Int32GetDatum(a->start);
		found = stmt_execute(&statements[a->stmt], args, NULL, 1);
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
	if (stmt_execute(&statements[STMT_TAKE_FROM_SLOT], take_args, NULL, 0) != 1)
		elog(ERROR, "checkout: updating a stock slot of product %lld found no row",
			 (long long) line->product_id);
	return true;
}

/*
 * Serve a line from one slot that holds the whole quantity, found with
 * stmt from slot number start on, taking the quantity from it, in a
 * subtransaction rolled back when no slot served (so that a checkout that
 * goes on to wait for the product's queue lock or for its slots holds no
 * slot it passed over: the queue's holder may be waiting for it).  Return
 * whether a slot served the line.
 */
static bool
take_one_slot(SlotsStatementId stmt, CartLine *line, int32 start)
{
	SlotAttempt attempt = {stmt, line, start};

	return checkout_try_in_subtransaction(serve_from_one_slot, &attempt);
}

/*
 * Lock a product's row (unless row_locked: then line->ctid and line->stock
 * are that row's) and then all its slots, in slot order, and keep what they
 * hold in the line (row_stock, slot_ctids, slot_stock); set
 * line->default_stock to the stock on sale of the row and the slots
 * together (the default location's).
 */
void
lock_row_and_slots(CheckoutCall *call, CartLine *line, bool row_locked)
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
	line->nslot_rows = (int32) nslots;
	line->slot_ctids = palloc(sizeof(ItemPointerData) * Max(nslots, 1));
	line->slot_stock = palloc(sizeof(int32) * Max(nslots, 1));
	line->row_stock = (int32) line->stock;
	line->default_stock = line->stock;
	for (uint64 i = 0; i < nslots; i++)
	{
		line->slot_ctids[i] = *(ItemPointer) DatumGetPointer(stmt_value(i, 1));
		line->slot_stock[i] = DatumGetInt32(stmt_value(i, 2));
		line->default_stock += line->slot_stock[i];
	}
	line->row_take = 0;
}

/*
 * Read again the product row this checkout holds locked (it waits for
 * nothing): the line's stock and ctid become the row's, which an update
 * since it was locked (a reclaim of expired orders) may have changed
 */
void
slots_read_row_again(CartLine *line)
{
	Datum		args[1] = {Int64GetDatum(line->product_id)};

	if (stmt_execute(&statements[STMT_LOCK_PRODUCT], args, NULL, 1) != 1)
		elog(ERROR, "checkout: reading product %lld again found no row",
			 (long long) line->product_id);
	line->stock = DatumGetInt32(stmt_value(0, 3));
	line->ctid = *(ItemPointer) DatumGetPointer(stmt_value(0, 4));
}

/*
 * Take need units from the row and slots lock_row_and_slots() locked: from
 * the row first (line->row_stock), then slot after slot
 */
void
serve_from_row_and_slots(CartLine *line, int32 need, SlotTakes *takes)
{
	line->row_take = Min(line->row_stock, need);
	need -= line->row_take;
	for (int i = 0; need > 0 && i < line->nslot_rows; i++)
	{
		int32		take = Min(line->slot_stock[i], need);

		if (take > 0)
			add_slot_take(takes, &line->slot_ctids[i], take);
		need -= take;
	}
}

/*
 * Lock a product's row (unless row_locked) and all its slots
 * (lock_row_and_slots), and serve the line from them together: from the
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
lock_all_stock(CheckoutCall *call, CartLine *line, bool row_locked,
			   SlotTakes *takes)
{
	lock_row_and_slots(call, line, row_locked);
	if (line->default_stock >= line->quantity)
		serve_from_row_and_slots(line, line->quantity, takes);
	line->stock = line->default_stock;
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
void
take_from_slots(CheckoutCall *call, CartLine *line, SlotTakes *takes)
{
	LOCKTAG		tag;
	int32		start = (int32) pg_prng_uint64_range(&pg_global_prng_state, 0,
													 line->nslots - 1);

	checkout_lock_step(call, "taking a stock slot of product", line->product_id);
	if (take_one_slot(STMT_FREE_SLOT, line, start))
	{
		checkout_lock_step(call, NULL, 0);
		return;
	}

	checkout_lock_step(call, "queueing for a stock slot of product", line->product_id);
	checkout_queue_lock_tag(&tag, line->product_id);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
	checkout_lock_step(call, "waiting for a stock slot of product", line->product_id);
	if (take_one_slot(STMT_FREE_SLOT, line, start) ||
		take_one_slot(STMT_WAIT_FOR_SLOT, line, start))
	{
		LockRelease(&tag, ExclusiveLock, false);
		checkout_lock_step(call, NULL, 0);
		return;
	}
	lock_all_stock(call, line, false, takes);
}
