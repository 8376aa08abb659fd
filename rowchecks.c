/*-------------------------------------------------------------------------
 *
 * rowchecks.c
 *		The CHECK constraints of orders and order_items as one C function
 *		per table (since 1.3).
 *
 * PostgreSQL 15 to 18 rebuild every CHECK expression of a table from its
 * stored text, plan it and compile it, for every statement that writes the
 * table (ExecRelCheck fills a per-execution ResultRelInfo; the relcache
 * keeps only the text).  1.2 had three CHECKs on orders and four on
 * order_items, and rebuilding them was a sixth of a checkout's CPU.  Since
 * 1.3 orders has one, orders_row_check, and order_items two,
 * order_items_quantity_check (as in 1.0) and order_items_row_check: each
 * row check is a call of an immutable C function of the columns, a tree of
 * a few nodes to rebuild.  The rules are those of the constraints they
 * replace, and a row that breaks one is refused with SQLSTATE 23514 naming
 * that constraint (orders_status_check, orders_discount_cents_check,
 * orders_voucher_code_check, order_items_check,
 * order_items_discount_cents_check, order_items_preorder_check), as
 * before; like a CHECK, a NULL passes (the columns are NOT NULL anyway).
 *
 * Memory rules.  None allocated but the error's.
 *
 * Locking rules.  None.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "checkout.h"

PG_FUNCTION_INFO_V1(shop_order_row_check);
PG_FUNCTION_INFO_V1(shop_order_item_row_check);

/*
 * Raise 23514 as PostgreSQL would for constraint `name` of table `table`
 * in the schema of the function called (fcinfo), with detail
 */
static void
violated(FunctionCallInfo fcinfo, const char *table, const char *name,
		 const char *detail)
{
	char	   *schema = get_namespace_name(get_func_namespace(fcinfo->flinfo->fn_oid));

	ereport(ERROR,
			(errcode(ERRCODE_CHECK_VIOLATION),
			 errmsg("new row for relation \"%s\" violates check constraint \"%s\"",
					table, name),
			 errdetail("%s", detail),
			 err_generic_string(PG_DIAG_SCHEMA_NAME, schema),
			 err_generic_string(PG_DIAG_TABLE_NAME, table),
			 err_generic_string(PG_DIAG_CONSTRAINT_NAME, name)));
}

/*
 * shop_order_row_check(status text, discount_cents bigint, voucher_id bigint,
 * voucher_code_id bigint) RETURNS boolean: orders_row_check.  Raises for a
 * row that breaks one of 1.2's rules; true otherwise.
 */
Datum
shop_order_row_check(PG_FUNCTION_ARGS)
{
	bool		has_voucher = !PG_ARGISNULL(2);
	bool		has_code = !PG_ARGISNULL(3);

	/* orders_status_check: status IN ('placed', 'paid', 'cancelled') */
	if (!PG_ARGISNULL(0))
	{
		text	   *status = PG_GETARG_TEXT_PP(0);
		const char *s = VARDATA_ANY(status);
		int			len = VARSIZE_ANY_EXHDR(status);

		if (!((len == 6 && memcmp(s, "placed", 6) == 0) ||
			  (len == 4 && memcmp(s, "paid", 4) == 0) ||
			  (len == 9 && memcmp(s, "cancelled", 9) == 0)))
			violated(fcinfo, "orders", "orders_status_check",
					 psprintf("Status \"%s\" is none of placed, paid and cancelled.",
							  text_to_cstring(status)));
	}

	/*
	 * orders_discount_cents_check: discount_cents >= 0 AND (discount_cents =
	 * 0 OR voucher_id IS NOT NULL)
	 */
	if (!PG_ARGISNULL(1))
	{
		int64		discount = PG_GETARG_INT64(1);

		if (discount < 0 || (discount != 0 && !has_voucher))
			violated(fcinfo, "orders", "orders_discount_cents_check",
					 psprintf("A discount of %lld cents%s.", (long long) discount,
							  discount < 0 ? " is negative" : " without a voucher"));
	}

	/*
	 * orders_voucher_code_check: (voucher_id IS NULL) = (voucher_code_id IS
	 * NULL)
	 */
	if (has_voucher != has_code)
		violated(fcinfo, "orders", "orders_voucher_code_check",
				 has_voucher ? "A voucher without its code." : "A voucher code without its voucher.");
	PG_RETURN_BOOL(true);
}

/*
 * shop_order_item_row_check(quantity integer, cancelled_quantity integer,
 * discount_cents bigint, preordered_quantity integer,
 * preorder_filled_quantity integer, preorder_released_quantity integer)
 * RETURNS boolean: order_items_row_check.  Raises for a row that breaks one
 * of 1.2's rules; true otherwise.  A NULL argument skips the rules that
 * read it, as a CHECK whose result is NULL passes.
 */
Datum
shop_order_item_row_check(PG_FUNCTION_ARGS)
{
	bool		have_quantities = !PG_ARGISNULL(0) && !PG_ARGISNULL(1);
	bool		have_preorders = !PG_ARGISNULL(0) && !PG_ARGISNULL(3) &&
	!PG_ARGISNULL(4) && !PG_ARGISNULL(5);

	/*
	 * order_items_check: cancelled_quantity >= 0 AND cancelled_quantity <=
	 * quantity
	 */
	if (have_quantities)
	{
		int32		quantity = PG_GETARG_INT32(0);
		int32		cancelled = PG_GETARG_INT32(1);

		if (cancelled < 0 || cancelled > quantity)
			violated(fcinfo, "order_items", "order_items_check",
					 psprintf("%d of %d units cancelled.", cancelled, quantity));
	}

	/* order_items_discount_cents_check: discount_cents >= 0 */
	if (!PG_ARGISNULL(2) && PG_GETARG_INT64(2) < 0)
		violated(fcinfo, "order_items", "order_items_discount_cents_check",
				 psprintf("A discount of %lld cents is negative.",
						  (long long) PG_GETARG_INT64(2)));

	/*
	 * order_items_preorder_check: 0 <= preordered_quantity <= quantity, the
	 * filled and released units not negative, and together at most the
	 * preordered ones
	 */
	if (have_preorders)
	{
		int32		quantity = PG_GETARG_INT32(0);
		int64		preordered = PG_GETARG_INT32(3);
		int64		filled = PG_GETARG_INT32(4);
		int64		released = PG_GETARG_INT32(5);

		if (preordered < 0 || preordered > quantity || filled < 0 || released < 0 ||
			filled + released > preordered)
			violated(fcinfo, "order_items", "order_items_preorder_check",
					 psprintf("%lld of %d units preordered, %lld filled, %lld released.",
							  (long long) preordered, quantity, (long long) filled,
							  (long long) released));
	}
	PG_RETURN_BOOL(true);
}
