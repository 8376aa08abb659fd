/*-------------------------------------------------------------------------
 *
 * refusal.c
 *		A refusal's figures as data: what shop_place_order() returns in its
 *		refusal column instead of a message a program would have to parse.
 *
 * The checkout's steps raise their refusals (SH001, SH005, SH009, SH010,
 * SH011) as errors whose messages are a documented contract; just before
 * raising one, a step hands its figures here.  When the call was made by
 * shop_place_order() (call->refusal set), they are written as one JSON
 * object, which that function returns beside the error's SQLSTATE and
 * message:
 *
 *	SH001	{"lines": [{"product_id", "name", "available", "requested",
 *			"preorderable" (null unless the buyer accepted a preorder),
 *			and for a bundle's part "bundle" (the bundle's name)}]}
 *	SH005	{"lines": [{"product_id", "name", "limit", "already_bought",
 *			"requested"}]}
 *	SH009	{"voucher_code", "voucher_id" (null: unknown), "reason",
 *			"min_total_cents", "subtotal_cents"}
 *	SH010	{"voucher_code", "voucher_id", "limit", "used"}
 *	SH011	{"voucher_code", "voucher_id", "limit", "already_used"}
 *
 * For shop_checkout() (call->refusal NULL) nothing is written: the
 * functions return at once.
 *
 * Memory rules.  call->refusal is a StringInfo its caller allocated in a
 * context that outlives the checkout's subtransaction; appending to it
 * grows it in that context.
 *
 * Locking rules.  None.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/json.h"

#include "call.h"


/*
 * Open a line of a refusal's "lines" (the refusal itself when first): its
 * product id and name, the line's object left open for its figures
 */
static void
begin_refused_line(CheckoutCall *call, bool first, int64 product_id, const char *name)
{
	if (first)
	{
		resetStringInfo(call->refusal);
		appendStringInfoString(call->refusal, "{\"lines\": [");
	}
	else
		appendStringInfoString(call->refusal, ", ");
	appendStringInfo(call->refusal, "{\"product_id\": " INT64_FORMAT ", \"name\": ", product_id);
	escape_json(call->refusal, name);
}

/*
 * A line the stock cannot serve (first: the first of the refusal):
 * preorderable is -1 unless its buyer accepted a preorder; bundle names
 * the first bundle of the cart a part is of (NULL: the line is no part)
 */
void
checkout_refuse_line(CheckoutCall *call, bool first, int64 product_id,
					 const char *name, int64 available, int32 requested,
					 int32 preorderable, const char *bundle)
{
	if (call->refusal == NULL)
		return;
	begin_refused_line(call, first, product_id, name);
	appendStringInfo(call->refusal, ", \"available\": " INT64_FORMAT ", \"requested\": %d, \"preorderable\": ",
					 available, requested);
	if (preorderable >= 0)
		appendStringInfo(call->refusal, "%d", preorderable);
	else
		appendStringInfoString(call->refusal, "null");
	if (bundle != NULL)
	{
		appendStringInfoString(call->refusal, ", \"bundle\": ");
		escape_json(call->refusal, bundle);
	}
	appendStringInfoChar(call->refusal, '}');
}

/* A line past its product's purchase limit */
void
checkout_refuse_limit(CheckoutCall *call, bool first, int64 product_id,
					  const char *name, int32 limit, int64 bought, int32 requested)
{
	if (call->refusal == NULL)
		return;
	begin_refused_line(call, first, product_id, name);
	appendStringInfo(call->refusal, ", \"limit\": %d, \"already_bought\": " INT64_FORMAT ", \"requested\": %d}",
					 limit, bought, requested);
}

/* The lines of a refusal are all written */
void
checkout_refusal_end(CheckoutCall *call)
{
	if (call->refusal != NULL && call->refusal->len > 0)
		appendStringInfoString(call->refusal, "]}");
}

/*
 * A voucher's code refused: its code as typed, its voucher (0: none), and
 * the fields of the refusal (the inside of a JSON object)
 */
void
checkout_refuse_voucher(CheckoutCall *call, const char *code, int64 voucher_id,
						const char *fields)
{
	if (call->refusal == NULL)
		return;
	resetStringInfo(call->refusal);
	appendStringInfoString(call->refusal, "{\"voucher_code\": ");
	escape_json(call->refusal, code);
	if (voucher_id > 0)
		appendStringInfo(call->refusal, ", \"voucher_id\": " INT64_FORMAT ", %s}", voucher_id, fields);
	else
		appendStringInfo(call->refusal, ", \"voucher_id\": null, %s}", fields);
}
