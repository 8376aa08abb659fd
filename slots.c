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
 * so a checkout that goes on to wait holds no slot of that product.  The
 * search is stock.c's (stock_take_one_slot), which a location's slots share
 * (locations.c); the statements are this file's.
 *
 * Memory rules.  Everything is allocated in the SPI procedure context of
 * the call (the ctid copies of SlotTakes included) and freed by SPI_finish;
 * a subtransaction leaves the caller's memory context as it found it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"

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

/*
 * Serve a line of a product with stock slots, taking as few locks, and
 * waiting as little, as can be: one slot that holds the whole quantity,
 * free or, when every such slot is busy, after a wait for one
 * (stock_take_one_slot); when no slot holds it, the row and every slot
 * locked and combined (stock_lock_all), so that no buyer is told "sold
 * out" while the stock on sale could serve them.
 */
void
slots_take(CheckoutCall *call, CartLine *line, SlotTakes *takes)
{
	SlotSearch	search = {
		.find_free = &statements[STMT_FREE_SLOT],
		.wait_for = &statements[STMT_WAIT_FOR_SLOT],
		.take = &statements[STMT_TAKE_FROM_SLOT],
		.nslots = line->nslots
	};

	if (!stock_take_one_slot(call, line, &search))
		stock_lock_all(call, line, false, takes);
}
