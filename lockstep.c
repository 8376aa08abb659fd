/*-------------------------------------------------------------------------
 *
 * lockstep.c
 *		What a running checkout is locking, for its error context, and the
 *		tag of a product's queue lock.
 *
 * checkout.c drives a checkout; it and the feature modules (slots.c,
 * locations.c, preorders.c, voucher.c) say here what they lock next
 * (checkout_lock_step), so that an error raised while they wait (55P03,
 * 40P01, a cancel) names it: "while locking product 7 for the checkout of
 * customer 42".  No module calls back into checkout.c.
 *
 * Locking rules.  None taken here: checkout_queue_lock_tag only fills in
 * the tag of the advisory lock a caller takes (its fourth field "SH", which
 * user advisory locks, 1 and 2, never use; pg_locks shows objsubid 21320).
 *
 * Memory rules.  The step is a constant phrase and ids owned by the caller
 * (a CheckoutCall on shop_checkout()'s stack; the ids in the SPI procedure
 * context, valid until SPI_finish); nothing is formatted unless an error
 * context needs it, in the error's memory context.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/lock.h"

#include "call.h"


/* The fourth field of our queue locks' tags ("SH"); user advisory locks use 1 and 2 */
#define CHECKOUT_QUEUE_LOCK 0x5348

/*
 * Say what the call locks from now on: a phrase, and the id that follows
 * it ("queueing for product", 7; 0: none), or NULL once it waits for
 * nothing.  An error raised meanwhile names it; nothing is formatted unless
 * one is.
 */
void
checkout_lock_step(CheckoutCall *call, const char *what, int64 id)
{
	call->step = what;
	call->step_id = id;
	call->step_ids = id != 0 ? &call->step_id : NULL;
	call->step_nids = id != 0 ? 1 : 0;
}

/* The same for the rows of n products ("locking products 1, 7 and 9") */
void
checkout_lock_products_step(CheckoutCall *call, const int64 *ids, int n)
{
	call->step = n == 1 ? "locking product" : "locking products";
	call->step_ids = ids;
	call->step_nids = n;
}

/*
 * Error context callback, its argument the running call (CheckoutCall):
 * name what the checkout was locking, if anything, with at most the first
 * ten ids
 */
void
checkout_error_context(void *arg)
{
	const CheckoutCall *call = (const CheckoutCall *) arg;
	StringInfoData ids;

	if (call->step == NULL)
		return;
	initStringInfo(&ids);
	for (int i = 0; i < call->step_nids && i < 10; i++)
		appendStringInfo(&ids, "%s%lld",
						 i == 0 ? " " : (i == call->step_nids - 1 ? " and " : ", "),
						 (long long) call->step_ids[i]);
	if (call->step_nids > 10)
		appendStringInfo(&ids, " and %d more", call->step_nids - 10);
	errcontext("while %s%s for the checkout of customer %lld",
			   call->step, ids.data, (long long) call->customer_id);
}

/* The tag of a product's queue lock */
void
checkout_queue_lock_tag(LOCKTAG *tag, int64 product_id)
{
	uint64		id = (uint64) product_id;

	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) (id >> 32),
						 (uint32) id, CHECKOUT_QUEUE_LOCK);
}
