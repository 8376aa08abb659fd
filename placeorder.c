/*-------------------------------------------------------------------------
 *
 * placeorder.c
 *		shop_place_order(customer_id, lines, idempotency_key, voucher_code):
 *		the web's checkout in one call and one round trip (since 1.3).
 *
 * A storefront's checkout used to be five round trips (BEGIN, set the
 * cart, shop_checkout, read the order back, COMMIT), told a replay from a
 * new order by the order row's xmin, and parsed SH001's English detail for
 * the short lines.  This call takes the request's lines, sets the
 * customer's cart to them and checks it out exactly as shop_checkout()
 * does (every lock, slot, limit, voucher, location, preorder, payment
 * window and statistic: checkout.c runs it), then returns one row:
 *
 *	outcome		'placed' (this call placed the order), 'replayed' (an
 *				earlier call with the key did), or 'refused';
 *	the order	order_id, status, total_cents, discount_cents,
 *				payment_deadline, order_lines (product, name, quantity, unit
 *				price, share of the discount, units preordered);
 *	a refusal	sqlstate, message (exactly the error's), refusal (its
 *				figures as JSON: refusal.c) for SH001, SH005, SH009, SH010
 *				and SH011.  Anything else (bad input, SH003, SH004, SH015, a
 *				lock timeout, a serialization failure) is raised as an error.
 *
 * The cart.  The call sets the stored cart to the lines (other lines
 * deleted) and checks it out: placed, the cart is empty; refused or
 * failed, nothing changed, the cart is as it was.  A key binds its request
 * (idempotency_keys.request): the same key with other lines or another
 * code is SH015, naming the earlier order.
 *
 * Why a subtransaction.  A refusal changes nothing, as its error would: the
 * call runs in an internal subtransaction, rolled back on any error (so a
 * caller's own subtransactions stay in order) and released on success.
 * Errors that are not refusals are raised again as they were, with their
 * SQLSTATE, detail, hint and context (ReThrowError), as PL/pgSQL's
 * exception blocks do.
 *
 * Memory rules.  The lines, the refusal's buffer and the result live in
 * the function's calling context, which outlives the subtransaction; the
 * checkout's own memory is its SPI procedure context, freed by SPI_finish
 * or by the subtransaction's abort.
 *
 * Locking rules.  Those of a checkout (checkout.c), and first the
 * customer's cart lock (an advisory lock in the lock manager: two calls of
 * one customer take turns) so that two tabs never lock cart rows crosswise.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/resowner.h"

#include "checkout.h"
#include "statements.h"


/* The statements of shop_place_order() (statements.h), each run by the function that needs it */
typedef enum PlaceOrderStatementId
{
	STMT_ORDER_RESULT,
	NUM_STATEMENTS
} PlaceOrderStatementId;

static Statement statements[NUM_STATEMENTS] = {
	/* shop_place_order(): order $1 as it returns it */
	[STMT_ORDER_RESULT] = {
		.what = "reading the order",
		.since = SINCE_1_3,
		.ok = SPI_OK_SELECT,
		.nargs = 1,
		.argtypes = {INT8OID},
		.sql = "SELECT o.status, o.total_cents, o.discount_cents, o.expires_at,"
		"       (SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object("
		"                 'product_id', i.product_id, 'name', p.name, 'quantity', i.quantity,"
		"                 'unit_price_cents', i.unit_price_cents, 'discount_cents', i.discount_cents,"
		"                 'preordered_quantity', i.preordered_quantity) ORDER BY i.product_id)"
		"          FROM %1$s.order_items AS i"
		"          JOIN %1$s.products AS p ON p.id OPERATOR(pg_catalog.=) i.product_id"
		"         WHERE i.order_id OPERATOR(pg_catalog.=) o.id)"
		"  FROM %1$s.orders AS o"
		" WHERE o.id OPERATOR(pg_catalog.=) $1"
	},

};

PG_FUNCTION_INFO_V1(shop_place_order);

/* The columns of shop_place_order()'s row */
enum
{
	RESULT_OUTCOME,
	RESULT_ORDER_ID,
	RESULT_STATUS,
	RESULT_TOTAL_CENTS,
	RESULT_DISCOUNT_CENTS,
	RESULT_PAYMENT_DEADLINE,
	RESULT_ORDER_LINES,
	RESULT_SQLSTATE,
	RESULT_MESSAGE,
	RESULT_REFUSAL,
	NUM_RESULT_COLUMNS
};

/* Raise 22023 for lines that are not what the function takes */
static void
bad_lines(const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("lines must be a JSON array of 1 to %d objects {\"product_id\", \"quantity\"}",
					CHECKOUT_MAX_LINES),
			 errdetail("%s", detail),
			 errhint("Pass e.g. '[{\"product_id\": 1, \"quantity\": 2}]'; \"accept_preorder\": true lets a line preorder.")));
}

/* A JSON number that is an integer in [min, max], or 22023 naming what */
static int64
integer_field(const JsonbValue *v, const char *what, int64 min, int64 max)
{
	char	   *digits;
	char	   *end;
	long long	value;

	if (v->type != jbvNumeric)
		bad_lines(psprintf("Field \"%s\" must be a number.", what));
	digits = DatumGetCString(DirectFunctionCall1(numeric_out,
												 NumericGetDatum(v->val.numeric)));
	errno = 0;
	value = strtoll(digits, &end, 10);
	if (*end != '\0' || errno != 0 || value < min || value > max)
		bad_lines(psprintf("Field \"%s\" must be an integer from " INT64_FORMAT " to " INT64_FORMAT ", not %s.",
						   what, min, max, digits));
	return (int64) value;
}

/* Order lines by product id, for the sort */
static int
compare_lines(const void *a, const void *b)
{
	int64		x = ((const int64 *) a)[0];
	int64		y = ((const int64 *) b)[0];

	return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * Parse the lines argument: an array of objects with an integer
 * "product_id" (> 0), an integer "quantity" (1 to 2^31-1) and an optional
 * boolean "accept_preorder", each product once; sorted by product id
 */
static void
parse_lines(Jsonb *jb, CheckoutLines *lines)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken token;
	int			n = JB_ROOT_COUNT(jb);
	int64	   *rows;			/* product id, quantity, accept, per line */
	int			i = -1;
	bool		has_product = false;
	bool		has_quantity = false;

	if (!JB_ROOT_IS_ARRAY(jb) || JB_ROOT_IS_SCALAR(jb))
		bad_lines("Got a JSON value that is not an array.");
	if (n < 1 || n > CHECKOUT_MAX_LINES)
		bad_lines(psprintf("Got %d lines.", n));
	rows = palloc0(sizeof(int64) * 3 * n);

	it = JsonbIteratorInit(&jb->root);
	while ((token = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		switch (token)
		{
			case WJB_BEGIN_OBJECT:
				i++;
				has_product = has_quantity = false;
				break;
			case WJB_ELEM:
				bad_lines(psprintf("Line %d is not an object.", i + 2));
				break;
			case WJB_KEY:
				{
					char	   *name = pnstrdup(v.val.string.val, v.val.string.len);

					if (JsonbIteratorNext(&it, &v, true) != WJB_VALUE)
						bad_lines(psprintf("Line %d: field \"%s\" must be a number or a boolean.",
										   i + 1, name));
					if (strcmp(name, "product_id") == 0)
					{
						rows[3 * i] = integer_field(&v, "product_id", 1, PG_INT64_MAX);
						has_product = true;
					}
					else if (strcmp(name, "quantity") == 0)
					{
						rows[3 * i + 1] = integer_field(&v, "quantity", 1, PG_INT32_MAX);
						has_quantity = true;
					}
					else if (strcmp(name, "accept_preorder") == 0)
					{
						if (v.type != jbvBool)
							bad_lines(psprintf("Line %d: field \"accept_preorder\" must be true or false.",
											   i + 1));
						rows[3 * i + 2] = v.val.boolean;
					}
					else
						bad_lines(psprintf("Line %d has an unknown field \"%s\".", i + 1, name));
					break;
				}
			case WJB_END_OBJECT:
				if (!has_product || !has_quantity)
					bad_lines(psprintf("Line %d lacks \"%s\".", i + 1,
									   has_product ? "quantity" : "product_id"));
				break;
			default:
				break;
		}
	}

	qsort(rows, n, sizeof(int64) * 3, compare_lines);
	lines->n = n;
	lines->product_ids = palloc(sizeof(int64) * n);
	lines->quantities = palloc(sizeof(int32) * n);
	lines->accept_preorder = palloc(sizeof(bool) * n);
	for (int k = 0; k < n; k++)
	{
		if (k > 0 && rows[3 * k] == rows[3 * (k - 1)])
			bad_lines(psprintf("Product " INT64_FORMAT " is on two lines.", rows[3 * k]));
		lines->product_ids[k] = rows[3 * k];
		lines->quantities[k] = (int32) rows[3 * k + 1];
		lines->accept_preorder[k] = rows[3 * k + 2] != 0;
	}
}

/* Whether an error's SQLSTATE is a refusal this function returns as data */
static bool
is_refusal(int sqlerrcode)
{
	return sqlerrcode == ERRCODE_CHECKOUT_INSUFFICIENT_STOCK ||
		sqlerrcode == ERRCODE_CHECKOUT_PURCHASE_LIMIT ||
		sqlerrcode == ERRCODE_CHECKOUT_VOUCHER_INVALID ||
		sqlerrcode == ERRCODE_CHECKOUT_VOUCHER_LIMIT ||
		sqlerrcode == ERRCODE_CHECKOUT_VOUCHER_CUSTOMER_LIMIT;
}

/*
 * The order's columns of the result (status to order_lines), read in the
 * caller's transaction and copied into the function's context
 */
static void
read_order(Oid nspoid, int64 order_id, Datum *values, bool *nulls,
		   MemoryContext result_cxt)
{
	Datum		args[1] = {Int64GetDatum(order_id)};
	MemoryContext spi_cxt;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "checkout: SPI_connect failed");
	checkout_use_schema(nspoid);
	if (stmt_execute(&statements[STMT_ORDER_RESULT], args, NULL, 1) != 1)
		elog(ERROR, "checkout: order %lld was not found", (long long) order_id);
	spi_cxt = MemoryContextSwitchTo(result_cxt);
	for (int col = 1; col <= 5; col++)
	{
		int			attr = RESULT_STATUS + col - 1;
		Datum		value = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
										  col, &nulls[attr]);
		Oid			type = SPI_gettypeid(SPI_tuptable->tupdesc, col);
		int16		typlen;
		bool		typbyval;

		get_typlenbyval(type, &typlen, &typbyval);
		values[attr] = nulls[attr] ? (Datum) 0 : datumCopy(value, typbyval, typlen);
	}
	MemoryContextSwitchTo(spi_cxt);
	SPI_finish();
}

/* shop_place_order's lines argument, read into the call (its form's arguments) */
static void
read_lines_argument(FunctionCallInfo fcinfo, CheckoutCall *call)
{
	CheckoutLines *lines = palloc0(sizeof(CheckoutLines));

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("lines must not be NULL"),
				 errhint("Pass e.g. '[{\"product_id\": 1, \"quantity\": 2}]'.")));
	parse_lines(PG_GETARG_JSONB_P(1), lines);
	call->lines = lines;
}

/* shop_place_order: the customer, the lines, the key, the voucher code */
static const CheckoutForm place_order_form = {"shop_place_order", 2, 3, read_lines_argument};

/*
 * shop_place_order(customer_id bigint, lines jsonb, idempotency_key text
 * DEFAULT NULL, voucher_code text DEFAULT NULL) RETURNS record, since 1.3
 */
Datum
shop_place_order(PG_FUNCTION_ARGS)
{
	MemoryContext outer_cxt = CurrentMemoryContext;
	ResourceOwner outer_owner = CurrentResourceOwner;
	TupleDesc	tupdesc;
	Datum		values[NUM_RESULT_COLUMNS] = {0};
	bool		nulls[NUM_RESULT_COLUMNS];
	StringInfoData refusal;
	CheckoutCall call = {0};
	Oid			nspoid = get_func_namespace(fcinfo->flinfo->fn_oid);
	int64		order_id = 0;
	ErrorData  *edata = NULL;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "checkout: shop_place_order must return a row");
	initStringInfo(&refusal);
	call.refusal = &refusal;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(outer_cxt);
	PG_TRY();
	{
		order_id = checkout_call(&call, fcinfo, &place_order_form);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(outer_cxt);
		CurrentResourceOwner = outer_owner;
	}
	PG_CATCH();
	{
		/* Undo the call whatever the error; keep a refusal, raise the rest */
		MemoryContextSwitchTo(outer_cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(outer_cxt);
		CurrentResourceOwner = outer_owner;
		if (!is_refusal(edata->sqlerrcode))
			ReThrowError(edata);
	}
	PG_END_TRY();

	memset(nulls, true, sizeof(nulls));
	if (edata != NULL)
	{
		values[RESULT_OUTCOME] = CStringGetTextDatum("refused");
		values[RESULT_SQLSTATE] = CStringGetTextDatum(unpack_sql_state(edata->sqlerrcode));
		values[RESULT_MESSAGE] = CStringGetTextDatum(edata->message);
		nulls[RESULT_OUTCOME] = nulls[RESULT_SQLSTATE] = nulls[RESULT_MESSAGE] = false;
		if (refusal.len > 0)
		{
			values[RESULT_REFUSAL] = DirectFunctionCall1(jsonb_in, CStringGetDatum(refusal.data));
			nulls[RESULT_REFUSAL] = false;
		}
	}
	else
	{
		values[RESULT_OUTCOME] = CStringGetTextDatum(call.replayed ? "replayed" : "placed");
		values[RESULT_ORDER_ID] = Int64GetDatum(order_id);
		nulls[RESULT_OUTCOME] = nulls[RESULT_ORDER_ID] = false;
		read_order(nspoid, order_id, values, nulls, outer_cxt);
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
