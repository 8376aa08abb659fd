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

#include "slots.h"
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

};

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

	return stock_try_in_subtransaction(serve_from_one_slot, &attempt);
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
 *	   and combine them (stock_lock_all), so that no buyer is told "sold
 *	   out" while the stock on sale could serve them.
 */
void
slots_take(CheckoutCall *call, CartLine *line, SlotTakes *takes)
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
	stock_lock_all(call, line, false, takes);
}
