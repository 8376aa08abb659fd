/*-------------------------------------------------------------------------
 *
 * voucher.c
 *		A checkout with a voucher's code (shop_checkout(customer_id,
 *		idempotency_key, voucher_code), since 1.2): the code read and judged
 *		on the snapshot, a single-use code's turn, the limit per customer,
 *		the use taken from the voucher's slots, and the discount spread over
 *		the order's lines.
 *
 * Order of the checks, each raising before anything is written: the code
 * (SH009: unknown, not valid yet, expired, a single-use code used, the
 * cart under the voucher's smallest subtotal), then the cart (SH001,
 * SH005, checkout.c), then the voucher's limits (SH010, then SH011).  A
 * limit reached never falls back to full price: the call fails.
 *
 * Why the snapshot may refuse.  What voucher_find reads is committed data
 * as of a moment within this call, as checkout.c's fail fast: a code
 * unknown, a window closed, a single-use code held by a committed order
 * not cancelled, or no use left in any slot were all true at that moment.
 * What passes is checked again under locks: a single-use code under its
 * row's turn (voucher_lock_code), the uses under the slot's row lock and
 * the limit per customer under the customer's turn (voucher_take_use).
 *
 * Locking rules.  A voucher with a usage limit keeps its remaining uses in
 * voucher_slots rows (up to 64), as a hot product keeps its stock in stock
 * slots: a checkout locks one free slot with a use left (SKIP LOCKED, from
 * a random slot on) and takes its use at once, in a subtransaction rolled
 * back when no slot served (a row changed since the snapshot stays locked
 * when passed over: see take_free_use); only when every such slot is busy
 * does it wait for the first of them in slot order from slot 0; once its
 * holder ends, the row is read again and passed over (still locked) if its
 * last use was taken.  Waiters thus lock slots in one order (no ring), and a
 * checkout holding a slot it took without waiting waits for no other.
 * Finding no slot with a use left proves that committed orders not
 * cancelled hold every use (SH010).  A waiter's use is taken by the order's
 * write, by the slot row's ctid.  The voucher's slots are the last rows a checkout locks, after its
 * products and their stock slots; a single-use code's row is locked right
 * after the idempotency key, before the customer's turn and the products.
 * Cancels and expiries give a use back (the orders_release_voucher_use
 * trigger) after locking the order and its products, so they follow the
 * same order.  A voucher without a usage limit has no slot: redeeming it
 * writes nothing but the order.
 *
 * Memory rules.  Everything lives in the SPI procedure context of the call.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "statements.h"
#include "voucher.h"

/* The columns of a voucher in STMT_VOUCHER's result */
#define VOUCHER_COLUMNS 13

/*
 * A voucher's code $2 and its voucher, for customer $1's cart (see
 * STMT_VOUCHER): VOUCHER_COLUMNS columns
 */
#define VOUCHER_SQL \
	"SELECT vc.id, vc.single_use, v.id, COALESCE(v.percent_off, 0)," \
	"       COALESCE(v.amount_off_cents, 0), COALESCE(v.usage_limit, 0)," \
	"       COALESCE(v.per_customer_limit, 0), v.use_slots, v.min_total_cents," \
	"       COALESCE(t.subtotal, 0)," \
	"       CASE WHEN v.starts_at OPERATOR(pg_catalog.>) pg_catalog.now() THEN 1" \
	"            WHEN v.ends_at OPERATOR(pg_catalog.<=) pg_catalog.now() THEN 2" \
	"            WHEN vc.single_use AND EXISTS (" \
	"                 SELECT FROM %1$s.orders AS o" \
	"                  WHERE o.voucher_code_id OPERATOR(pg_catalog.=) vc.id" \
	"                    AND o.status OPERATOR(pg_catalog.<>) 'cancelled') THEN 3" \
	"            WHEN t.subtotal OPERATOR(pg_catalog.<) v.min_total_cents THEN 4" \
	"            WHEN v.usage_limit IS NOT NULL AND NOT EXISTS (" \
	"                 SELECT FROM %1$s.voucher_slots AS s" \
	"                  WHERE s.voucher_id OPERATOR(pg_catalog.=) v.id" \
	"                    AND s.remaining OPERATOR(pg_catalog.>) 0) THEN 5" \
	"            ELSE 0 END AS verdict," \
	"       v.starts_at, v.ends_at" \
	"  FROM %1$s.voucher_codes AS vc" \
	"  JOIN %1$s.vouchers AS v ON v.id OPERATOR(pg_catalog.=) vc.voucher_id" \
	" CROSS JOIN LATERAL (" \
	"       SELECT CASE WHEN v.min_total_cents OPERATOR(pg_catalog.>) 0 THEN (" \
	"              SELECT LEAST(COALESCE(pg_catalog.sum(c.quantity::pg_catalog.numeric" \
	"                                       OPERATOR(pg_catalog.*) p.price_cents), 0)," \
	"                           9223372036854775807::pg_catalog.numeric)::pg_catalog.int8" \
	"                FROM %1$s.cart_items AS c" \
	"                JOIN %1$s.products AS p ON p.id OPERATOR(pg_catalog.=) c.product_id" \
	"               WHERE c.customer_id OPERATOR(pg_catalog.=) $1) END AS subtotal" \
	"       OFFSET 0) AS t" \
	" WHERE pg_catalog.upper(vc.code COLLATE \"C\")" \
	"       OPERATOR(pg_catalog.=) pg_catalog.upper($2 COLLATE \"C\")"

/*
 * The voucher's columns and then the short lines' (SHORT_LINES_SQL), or
 * NULLs: at least one row, whether the code exists or not and whether a
 * line is short or not
 */
#define VOUCHER_SHORT_LINES_SQL \
	"SELECT v.*, s.*" \
	"  FROM (SELECT) AS one" \
	"  LEFT JOIN (" VOUCHER_SQL ") AS v ON true" \
	"  LEFT JOIN LATERAL (" SHORT_LINES_SQL ") AS s ON true" \
	" ORDER BY s.product_id"

/*
 * A slot of voucher $1 with a use left, numbered from $2 up to below $3, in
 * the primary key's order (the caller starts at a random slot, so that
 * buyers spread over them, and then wraps around)
 */
#define VOUCHER_SLOT_QUERY \
	"SELECT s.ctid FROM %1$s.voucher_slots AS s" \
	" WHERE s.voucher_id OPERATOR(pg_catalog.=) $1" \
	"   AND s.slot OPERATOR(pg_catalog.>=) $2" \
	"   AND s.slot OPERATOR(pg_catalog.<) $3" \
	"   AND s.remaining OPERATOR(pg_catalog.>) 0" \
	" ORDER BY s.slot" \
	" LIMIT 1" \
	"   FOR NO KEY UPDATE"

/* The statements of voucher (statements.h), each run by the function that needs it */
typedef enum VoucherStatementId
{
	STMT_VOUCHER,
	STMT_VOUCHER_SHORT_LINES,
	STMT_VOUCHER_SHORT_LINES_PLAIN,
	STMT_LOCK_CODE,
	STMT_CODE_USED,
	STMT_CUSTOMER_USES,
	STMT_FREE_USE,
	STMT_WAIT_FOR_USE,
	STMT_TAKE_USE,
	NUM_STATEMENTS
} VoucherStatementId;

static Statement statements[NUM_STATEMENTS] = {
	/*
	 * Before any lock, on the snapshot: the code $1 (matched as its unique
	 * index does: upper() under "C" changes ASCII letters only), its voucher,
	 * and its verdict (VoucherVerdict): not valid yet, expired, a single-use
	 * code an order not cancelled holds, the subtotal of customer $2's cart
	 * under the voucher's smallest (read only when it has one: the CASE runs
	 * the subquery only then, OFFSET 0 runs it once), or no use left in any
	 * slot (only whether any slot has one: EXISTS stops at the first).  The
	 * dates are compared with the transaction's now().
	 */
	[STMT_VOUCHER] = {
		.what = "reading the voucher",
		.since = SINCE_1_2,
		.ok = SPI_OK_SELECT,
		.read_only = true,
		.nargs = 2,
		.argtypes = {INT8OID, TEXTOID},
		.sql = VOUCHER_SQL
	},

	/*
	 * The same and fail fast (STMT_SHORT_LINES) in one statement, for a
	 * rejection to cost one statement as a sold-out one does: one row of the
	 * voucher's columns (NULL: an unknown code) per short line of customer
	 * $1's cart, or one with NULL short line when none is short
	 */
	[STMT_VOUCHER_SHORT_LINES] = {
		.what = "reading the voucher and the stock",
		.since = SINCE_1_2,
		.ok = SPI_OK_SELECT,
		.read_only = true,
		.nargs = 2,
		.argtypes = {INT8OID, TEXTOID},
		.sql = VOUCHER_SHORT_LINES_SQL
	},

	/* The same where no order had a payment window */
	[STMT_VOUCHER_SHORT_LINES_PLAIN] = {
		.what = "reading the voucher and the stock",
		.since = SINCE_1_2,
		.ok = SPI_OK_SELECT,
		.read_only = true,
		.plain = true,
		.nargs = 2,
		.argtypes = {INT8OID, TEXTOID},
		.sql = VOUCHER_SHORT_LINES_SQL
	},

	/*
	 * A single-use code's turn ($1, its id): an update of its row, so that a
	 * second checkout with it waits for the first, then (READ COMMITTED) sees
	 * its order, or (REPEATABLE READ, SERIALIZABLE) gets 40001 ...
	 */
	[STMT_LOCK_CODE] = {
		.what = "locking the voucher code",
		.since = SINCE_1_2,
		.ok = SPI_OK_UPDATE,
		.nargs = 1,
		.argtypes = {INT8OID},
		.sql = "UPDATE %1$s.voucher_codes AS vc SET single_use = vc.single_use"
		" WHERE vc.id OPERATOR(pg_catalog.=) $1"
	},

	/* ... and whether an order not cancelled holds it */
	[STMT_CODE_USED] = {
		.what = "reading the voucher code's orders",
		.since = SINCE_1_2,
		.ok = SPI_OK_SELECT,
		.nargs = 1,
		.argtypes = {INT8OID},
		.sql = "SELECT FROM %1$s.orders AS o"
		" WHERE o.voucher_code_id OPERATOR(pg_catalog.=) $1"
		"   AND o.status OPERATOR(pg_catalog.<>) 'cancelled'"
		" LIMIT 1"
	},

	/*
	 * The orders not cancelled of customer $2 with voucher $1, under the
	 * customer's turn (check_limits)
	 */
	[STMT_CUSTOMER_USES] = {
		.what = "counting the customer's uses of the voucher",
		.since = SINCE_1_2,
		.ok = SPI_OK_SELECT,
		.nargs = 2,
		.argtypes = {INT8OID, INT8OID},
		.sql = "SELECT pg_catalog.count(*) FROM %1$s.orders AS o"
		" WHERE o.voucher_id OPERATOR(pg_catalog.=) $1"
		"   AND o.customer_id OPERATOR(pg_catalog.=) $2"
		"   AND o.status OPERATOR(pg_catalog.<>) 'cancelled'"
	},

	/*
	 * A free slot of voucher $1 with a use left, starting at slot $2 of $3 (a
	 * random one, so that buyers spread over the slots), its use taken at
	 * once (STMT_TAKE_USE, in the same subtransaction: voucher.c) ...
	 */
	[STMT_FREE_USE] = {
		.what = "taking a use of the voucher",
		.since = SINCE_1_2,
		.ok = SPI_OK_SELECT,
		.nargs = 3,
		.argtypes = {INT8OID, INT4OID, INT4OID},
		.sql = VOUCHER_SLOT_QUERY " SKIP LOCKED"
	},

	/*
	 * ... or, when every slot with a use left is busy, the same waiting for
	 * the first such slot, from slot 0 (voucher.c: one order for waiters):
	 * once its holder ends, the slot is read again and passed over if its
	 * holder took its last use (then the next one is tried); none means every
	 * use is taken (SH010)
	 */
	[STMT_WAIT_FOR_USE] = {
		.what = "waiting for a use of the voucher",
		.since = SINCE_1_2,
		.ok = SPI_OK_SELECT,
		.nargs = 3,
		.argtypes = {INT8OID, INT4OID, INT4OID},
		.sql = VOUCHER_SLOT_QUERY
	},

	/* A use taken from the free voucher slot locked at ctid $1 */
	[STMT_TAKE_USE] = {
		.what = "taking a use of the voucher",
		.since = SINCE_1_2,
		.ok = SPI_OK_UPDATE,
		.nargs = 1,
		.argtypes = {TIDOID},
		.sql = "UPDATE %1$s.voucher_slots AS vs"
		"   SET remaining = vs.remaining OPERATOR(pg_catalog.-) 1"
		" WHERE vs.ctid OPERATOR(pg_catalog.=) $1"
	},
};

/*
 * The codes this backend saw used up: when a crowd keeps trying a voucher
 * whose every use is held (SH010), each try then costs what a sold-out
 * rejection does, one statement that reads the cart's stock (SH001 comes
 * first), instead of the voucher's statement.  Only a code that nothing
 * else can refuse is kept: not single-use, no smallest subtotal; its
 * voucher's dates are checked at each call.  Kept in TopMemoryContext, at
 * most USED_UP_CODES of them (the oldest replaced).
 *
 * Why a backend can trust it.  What makes a used-up voucher usable again is
 * a change of the voucher tables: a use given back (voucher_slots'
 * remaining grows), slots added or removed, the voucher or the code
 * changed.  Each queues an invalidation of its table (the triggers
 * *_vouchers_changed and voucher_slots_use_back, since 1.3, with
 * shop_feature_used()), sent to every backend at commit; a backend takes
 * it in at the start of its next call (checkout_features_check()) and
 * forgets every code (voucher_tables_changed).  A use given back after that
 * is as if given back after the call.  Before 1.3 (no triggers) nothing is
 * kept.
 */
#define USED_UP_CODES 16

typedef struct UsedUpCode
{
	char	   *code;			/* its letters a to z in upper case, as the
								 * code's unique index compares them */
	int64		code_id;
	int64		voucher_id;
	int32		usage_limit;
	int32		use_slots;
	int32		percent_off;
	int64		amount_off_cents;
	int32		per_customer_limit;
	bool		has_starts;
	bool		has_ends;
	TimestampTz starts_at;
	TimestampTz ends_at;
} UsedUpCode;

static UsedUpCode used_up_codes[USED_UP_CODES];
static int	n_used_up_codes = 0;
static int	next_used_up_code = 0;

/* The voucher tables whose invalidation makes the backend forget them */
static Oid	voucher_relids[3];

/* A relcache entry was invalidated: forget every code if it is a voucher table's */
static void
voucher_tables_changed(Datum arg, Oid relid)
{
	for (int i = 0; i < lengthof(voucher_relids); i++)
		if (!OidIsValid(relid) || voucher_relids[i] == relid)
		{
			for (int k = 0; k < n_used_up_codes; k++)
				pfree(used_up_codes[k].code);
			n_used_up_codes = 0;
			next_used_up_code = 0;
			return;
		}
}

/* Watch the voucher tables' invalidations (from _PG_init) */
void
voucher_init(void)
{
	CacheRegisterRelcacheCallback(voucher_tables_changed, (Datum) 0);
}

/* A code as its unique index compares it: ASCII letters in upper case */
static char *
code_key(const char *code)
{
	char	   *key = pstrdup(code);

	for (char *p = key; *p; p++)
		*p = pg_ascii_toupper((unsigned char) *p);
	return key;
}

/* The code this backend knows used up under that key, or NULL */
static UsedUpCode *
find_used_up(const char *key)
{
	for (int i = 0; i < n_used_up_codes; i++)
		if (strcmp(used_up_codes[i].code, key) == 0)
			return &used_up_codes[i];
	return NULL;
}

/*
 * Remember the voucher just read as used up (voucher, from the first row of
 * the last SPI result), when nothing but its uses can refuse it: not
 * single-use, no smallest subtotal
 */
static void
remember_used_up(Oid nspoid, const char *key, const Voucher *voucher)
{
	UsedUpCode *entry;
	bool		isnull;
	Datum		value;

	if (!checkout_may_cache() || voucher->single_use || voucher->min_total_cents > 0 ||
		find_used_up(key) != NULL)
		return;
	voucher_relids[0] = get_relname_relid("vouchers", nspoid);
	voucher_relids[1] = get_relname_relid("voucher_codes", nspoid);
	voucher_relids[2] = get_relname_relid("voucher_slots", nspoid);
	if (n_used_up_codes < USED_UP_CODES)
		entry = &used_up_codes[n_used_up_codes++];
	else
	{
		entry = &used_up_codes[next_used_up_code];
		next_used_up_code = (next_used_up_code + 1) % USED_UP_CODES;
		pfree(entry->code);
	}
	entry->code = MemoryContextStrdup(TopMemoryContext, key);
	entry->code_id = voucher->code_id;
	entry->voucher_id = voucher->id;
	entry->usage_limit = voucher->usage_limit;
	entry->use_slots = voucher->use_slots;
	entry->percent_off = voucher->percent_off;
	entry->amount_off_cents = voucher->amount_off_cents;
	entry->per_customer_limit = voucher->per_customer_limit;
	value = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 12, &isnull);
	entry->has_starts = !isnull;
	entry->starts_at = isnull ? 0 : DatumGetTimestampTz(value);
	value = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 13, &isnull);
	entry->has_ends = !isnull;
	entry->ends_at = isnull ? 0 : DatumGetTimestampTz(value);
}

/*
 * Whether a code known used up still is, as far as this call can tell
 * without a statement: its voucher's dates hold now (the transaction's
 * start, as now() in SQL); if so, fill voucher as its statement would
 */
static bool
known_used_up(const UsedUpCode *entry, Voucher *voucher)
{
	TimestampTz now = GetCurrentTransactionStartTimestamp();

	if ((entry->has_starts && entry->starts_at > now) ||
		(entry->has_ends && entry->ends_at <= now))
		return false;
	voucher->code_id = entry->code_id;
	voucher->single_use = false;
	voucher->id = entry->voucher_id;
	voucher->percent_off = entry->percent_off;
	voucher->amount_off_cents = entry->amount_off_cents;
	voucher->usage_limit = entry->usage_limit;
	voucher->per_customer_limit = entry->per_customer_limit;
	voucher->use_slots = entry->use_slots;
	voucher->min_total_cents = 0;
	voucher->subtotal_cents = 0;
	voucher->verdict = VOUCHER_USED_UP;
	return true;
}

#ifndef HAVE_INT128
#error "checkout needs a 128-bit integer type to spread a discount"
#endif

/*
 * The voucher code argument number argno: NULL when absent or NULL (no
 * code); 22023 when empty or longer than CHECKOUT_MAX_CODE_LENGTH
 * characters
 */
text *
voucher_code_argument(FunctionCallInfo fcinfo, int argno)
{
	text	   *code;
	int			length;

	if (PG_NARGS() <= argno || PG_ARGISNULL(argno))
		return NULL;
	code = PG_GETARG_TEXT_PP(argno);
	length = pg_mbstrlen_with_len(VARDATA_ANY(code), VARSIZE_ANY_EXHDR(code));
	if (length == 0 || length > CHECKOUT_MAX_CODE_LENGTH)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("voucher code must be 1 to %d characters long",
						CHECKOUT_MAX_CODE_LENGTH),
				 errdetail("Got a code of %d characters.", length),
				 errhint("Pass the code as the buyer typed it, or NULL for none.")));
	return code;
}

/*
 * Read the code and its voucher on the snapshot, with its verdict (see
 * STMT_VOUCHER); an unknown code's is VOUCHER_UNKNOWN.  With
 * fail_fast, in the same statement (or after it, in a shop with bundles:
 * stock_short_lines_plain), the cart's lines the stock cannot serve
 * (SHORT_LINES_SQL): *nshort of them, in *short_lines (product id,
 * quantity, name and stock of each).  Raises nothing: the caller looks for
 * an idempotent replay first.
 */
void
voucher_find(CheckoutCall *call, int64 customer_id, text *code, bool fail_fast,
			 Voucher *voucher, CartLine **short_lines, int *nshort)
{
	Datum		args[2] = {Int64GetDatum(customer_id), PointerGetDatum(code)};
	uint64		nrows;
	bool		unknown;
	char	   *key;
	UsedUpCode *used_up;

	memset(voucher, 0, sizeof(Voucher));
	voucher->code = code;
	voucher->code_cstr = text_to_cstring(code);
	ItemPointerSetInvalid(&voucher->use_ctid);
	*short_lines = NULL;
	*nshort = 0;
	if (!checkout_shop_uses(CHECKOUT_VOUCHERS))
	{
		/* no code was ever created: the code is unknown, whatever the cart */
		voucher->verdict = VOUCHER_UNKNOWN;
		return;
	}
	key = code_key(voucher->code_cstr);
	if (fail_fast && (used_up = find_used_up(key)) != NULL &&
		known_used_up(used_up, voucher))
	{
		/* used up when last seen: only the cart's stock is read */
		*short_lines = stock_find_short_lines(customer_id, nshort);
		return;
	}
	if (!fail_fast || !stock_short_lines_plain())
		nrows = stmt_execute(&statements[STMT_VOUCHER], args, NULL, 1);
	else
	{
		nrows = stmt_execute(&statements[checkout_shop_uses(CHECKOUT_EXPIRY) ?
										 STMT_VOUCHER_SHORT_LINES :
										 STMT_VOUCHER_SHORT_LINES_PLAIN], args, NULL, 0);
		*short_lines = stock_short_lines(nrows, VOUCHER_COLUMNS + 1, false, nshort);
	}
	if (nrows == 0)
		unknown = true;
	else
		(void) SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &unknown);
	if (unknown)
	{
		voucher->verdict = VOUCHER_UNKNOWN;
		return;
	}
	voucher->code_id = DatumGetInt64(stmt_value(0, 1));
	voucher->single_use = DatumGetBool(stmt_value(0, 2));
	voucher->id = DatumGetInt64(stmt_value(0, 3));
	voucher->percent_off = DatumGetInt32(stmt_value(0, 4));
	voucher->amount_off_cents = DatumGetInt64(stmt_value(0, 5));
	voucher->usage_limit = DatumGetInt32(stmt_value(0, 6));
	voucher->per_customer_limit = DatumGetInt32(stmt_value(0, 7));
	voucher->use_slots = DatumGetInt32(stmt_value(0, 8));
	voucher->min_total_cents = DatumGetInt64(stmt_value(0, 9));
	voucher->subtotal_cents = DatumGetInt64(stmt_value(0, 10));
	voucher->verdict = (VoucherVerdict) DatumGetInt32(stmt_value(0, 11));
	if (voucher->verdict == VOUCHER_USED_UP)
		remember_used_up(call->nspoid, key, voucher);

	/* a read of the stock that no statement joins: after the voucher's */
	if (fail_fast && !stock_short_lines_plain())
		*short_lines = stock_find_short_lines(customer_id, nshort);
}

/* Raise SH009: the code cannot serve this checkout (verdict says why) */
static void
reject_code(CheckoutCall *call, const Voucher *voucher)
{
	static const char *const reasons[] = {
		[VOUCHER_NOT_YET_VALID] = "not_yet_valid",
		[VOUCHER_EXPIRED] = "expired",
		[VOUCHER_CODE_USED] = "code_used",
		[VOUCHER_BELOW_MIN_TOTAL] = "below_min_total",
		[VOUCHER_UNKNOWN] = "unknown",
	};
	const char *code = voucher->code_cstr;

	if (voucher->verdict != VOUCHER_OK && voucher->verdict != VOUCHER_USED_UP)
		checkout_refuse_voucher(call, voucher->code_cstr,
								voucher->verdict == VOUCHER_UNKNOWN ? 0 : voucher->id,
								psprintf("\"reason\": \"%s\", \"min_total_cents\": %lld, \"subtotal_cents\": %lld",
										 reasons[voucher->verdict],
										 (long long) voucher->min_total_cents,
										 (long long) voucher->subtotal_cents));
	switch (voucher->verdict)
	{
		case VOUCHER_UNKNOWN:
			ereport(ERROR,
					(errcode(ERRCODE_CHECKOUT_VOUCHER_INVALID),
					 errmsg("Voucher %s does not exist", code),
					 errdetail("No voucher code matches %s, whatever the case of its letters A to Z.",
							   code),
					 errhint("Check the code, or check out without it.")));
			break;
		case VOUCHER_NOT_YET_VALID:
			ereport(ERROR,
					(errcode(ERRCODE_CHECKOUT_VOUCHER_INVALID),
					 errmsg("Voucher %s is not valid yet", code),
					 errdetail("Code %lld of voucher %lld: the voucher starts later.",
							   (long long) voucher->code_id, (long long) voucher->id),
					 errhint("Check out without it, or wait until it starts.")));
			break;
		case VOUCHER_EXPIRED:
			ereport(ERROR,
					(errcode(ERRCODE_CHECKOUT_VOUCHER_INVALID),
					 errmsg("Voucher %s has expired", code),
					 errdetail("Code %lld of voucher %lld: the voucher has ended.",
							   (long long) voucher->code_id, (long long) voucher->id),
					 errhint("Check out without it.")));
			break;
		case VOUCHER_CODE_USED:
			ereport(ERROR,
					(errcode(ERRCODE_CHECKOUT_VOUCHER_INVALID),
					 errmsg("Voucher %s has already been used", code),
					 errdetail("Code %lld of voucher %lld is single-use, and an order not cancelled holds it.",
							   (long long) voucher->code_id, (long long) voucher->id),
					 errhint("Check out without it.")));
			break;
		case VOUCHER_BELOW_MIN_TOTAL:
			ereport(ERROR,
					(errcode(ERRCODE_CHECKOUT_VOUCHER_INVALID),
					 errmsg("Voucher %s needs a subtotal of at least %lld cents (cart: %lld)",
							code, (long long) voucher->min_total_cents,
							(long long) voucher->subtotal_cents),
					 errdetail("Code %lld of voucher %lld: min_total_cents is %lld.",
							   (long long) voucher->code_id, (long long) voucher->id,
							   (long long) voucher->min_total_cents),
					 errhint("Add to the cart, or check out without the code.")));
			break;
		case VOUCHER_OK:
		case VOUCHER_USED_UP:
			elog(ERROR, "checkout: voucher verdict %d is not SH009", voucher->verdict);
	}
}

/* Raise SH010: the voucher's usage limit is reached */
static void
reject_used_up(CheckoutCall *call, const Voucher *voucher, int32 used)
{
	checkout_refuse_voucher(call, voucher->code_cstr, voucher->id,
							psprintf("\"limit\": %d, \"used\": %d", voucher->usage_limit, used));
	ereport(ERROR,
			(errcode(ERRCODE_CHECKOUT_VOUCHER_LIMIT),
			 errmsg("Voucher %s has reached its usage limit (limit: %d, used: %d)",
					voucher->code_cstr, voucher->usage_limit, used),
			 errdetail("Voucher %lld: orders not cancelled hold all of its %d uses.",
					   (long long) voucher->id, voucher->usage_limit),
			 errhint("Check out without the code; a use comes back only when one of its orders is cancelled or expires.")));
}

/*
 * Raise the error of a verdict read on the snapshot: SH009, or SH010 when
 * no use is left
 */
void
voucher_reject(CheckoutCall *call, const Voucher *voucher)
{
	if (voucher->verdict == VOUCHER_USED_UP)
		reject_used_up(call, voucher, voucher->usage_limit);
	reject_code(call, voucher);
}

/*
 * A single-use code: take its turn (an update of its row: see
 * STMT_LOCK_CODE), then raise SH009 if an order not cancelled holds it
 */
void
voucher_lock_code(CheckoutCall *call, Voucher *voucher)
{
	Datum		args[1] = {Int64GetDatum(voucher->code_id)};

	if (!voucher->single_use)
		return;
	checkout_lock_step(call, "locking voucher code", voucher->code_id);
	(void) stmt_execute(&statements[STMT_LOCK_CODE], args, NULL, 0);
	checkout_lock_step(call, NULL, 0);
	if (stmt_execute(&statements[STMT_CODE_USED], args, NULL, 1) > 0)
	{
		voucher->verdict = VOUCHER_CODE_USED;
		reject_code(call, voucher);
	}
}

/* What take_free_use asks of its attempt */
typedef struct UseAttempt
{
	Voucher    *voucher;
	int32		start;
} UseAttempt;

/*
 * Find a free slot of the voucher with a use left (SKIP LOCKED) from slot
 * number a->start on (then from slot 0 up to it), and take a use from it;
 * return whether one did
 */
static bool
take_use_from_free_slot(void *arg)
{
	UseAttempt *a = (UseAttempt *) arg;
	Datum		args[3] = {Int64GetDatum(a->voucher->id), Int32GetDatum(a->start),
	Int32GetDatum(a->voucher->use_slots)};
	uint64		found = stmt_execute(&statements[STMT_FREE_USE], args, NULL, 1);
	ItemPointerData ctid;
	Datum		take_args[1];

	if (found == 0 && a->start > 0)
	{
		args[1] = Int32GetDatum(0);
		args[2] = Int32GetDatum(a->start);
		found = stmt_execute(&statements[STMT_FREE_USE], args, NULL, 1);
	}
	if (found == 0)
		return false;
	ctid = *(ItemPointer) DatumGetPointer(stmt_value(0, 1));
	take_args[0] = PointerGetDatum(&ctid);
	if (stmt_execute(&statements[STMT_TAKE_USE], take_args, NULL, 0) != 1)
		elog(ERROR, "checkout: updating a slot of voucher %lld found no row",
			 (long long) a->voucher->id);
	return true;
}

/*
 * Take a use from a free voucher slot, from slot number start on, in a
 * subtransaction rolled back when none served
 * (stock_try_in_subtransaction): a locking read that finds a row changed
 * since its snapshot locks the row's newest version even when that no
 * longer qualifies (its last use taken), and a checkout that goes on to
 * wait for a use must hold no slot out of the waiters' order.  Return
 * whether a slot served.
 */
static bool
take_free_use(Voucher *voucher, int32 start)
{
	UseAttempt	attempt = {voucher, start};

	return stock_try_in_subtransaction(take_use_from_free_slot, &attempt);
}

/*
 * Take a use of a limited voucher for this checkout: from a free slot, from
 * a random slot on (taken at once), else lock the first slot with a use
 * left, waiting for it (read again once free; the order's write takes the
 * use, by voucher->use_ctid); raise SH010 when no slot has a use left
 */
static void
lock_use(CheckoutCall *call, Voucher *voucher)
{
	int32		start = (int32) pg_prng_uint64_range(&pg_global_prng_state, 0,
													 voucher->use_slots - 1);
	Datum		all[3] = {Int64GetDatum(voucher->id), Int32GetDatum(0),
	Int32GetDatum(voucher->use_slots)};

	checkout_lock_step(call, "taking a use of voucher", voucher->id);
	if (take_free_use(voucher, start))
	{
		checkout_lock_step(call, NULL, 0);
		return;
	}

	/*
	 * Wait in slot order from slot 0, never from a random start: a slot read
	 * again and passed over stays locked, so waiters that wrapped around from
	 * different starts could wait for each other in a ring
	 */
	checkout_lock_step(call, "waiting for a use of voucher", voucher->id);
	if (stmt_execute(&statements[STMT_WAIT_FOR_USE], all, NULL, 1) == 0)
		reject_used_up(call, voucher, voucher->usage_limit);
	checkout_lock_step(call, NULL, 0);
	voucher->use_ctid = *(ItemPointer) DatumGetPointer(stmt_value(0, 1));
}

/*
 * Under the checkout's locks, once its stock is proven and its subtotal
 * known: raise SH009 when the subtotal is under the voucher's smallest
 * (prices read under the locks), lock a use of a limited voucher (SH010),
 * count the customer's uses under its turn (SH011), and compute the
 * discount: floor(subtotal * percent / 100), or the amount, at most the
 * subtotal.
 */
void
voucher_take_use(CheckoutCall *call, int64 customer_id, int64 subtotal,
				 Voucher *voucher)
{
	if (subtotal < voucher->min_total_cents)
	{
		voucher->subtotal_cents = subtotal;
		voucher->verdict = VOUCHER_BELOW_MIN_TOTAL;
		reject_code(call, voucher);
	}
	if (voucher->usage_limit > 0)
		lock_use(call, voucher);
	if (voucher->per_customer_limit > 0)
	{
		Datum		args[2] = {Int64GetDatum(voucher->id), Int64GetDatum(customer_id)};
		int64		uses;

		(void) stmt_execute(&statements[STMT_CUSTOMER_USES], args, NULL, 1);
		uses = DatumGetInt64(stmt_value(0, 1));
		if (uses >= voucher->per_customer_limit)
			checkout_refuse_voucher(call, voucher->code_cstr, voucher->id,
									psprintf("\"limit\": %d, \"already_used\": %lld",
											 voucher->per_customer_limit, (long long) uses));
		if (uses >= voucher->per_customer_limit)
			ereport(ERROR,
					(errcode(ERRCODE_CHECKOUT_VOUCHER_CUSTOMER_LIMIT),
					 errmsg_plural("Voucher %s can be used %d time per customer (already used: %lld)",
								   "Voucher %s can be used %d times per customer (already used: %lld)",
								   voucher->per_customer_limit,
								   voucher->code_cstr, voucher->per_customer_limit,
								   (long long) uses),
					 errdetail("Voucher %lld: customer %lld has %lld orders not cancelled with it.",
							   (long long) voucher->id, (long long) customer_id,
							   (long long) uses),
					 errhint("Check out without the code.")));
	}

	if (voucher->percent_off > 0)
		voucher->discount_cents = (int64) ((int128) subtotal * voucher->percent_off / 100);
	else
		voucher->discount_cents = Min(voucher->amount_off_cents, subtotal);
}

/*
 * Each line's share of the discount, as a bigint[] in the lines' order:
 * in proportion to the line's total, rounded down, and the cents left
 * over one each to the lines with the largest remainders (the first line
 * of equal ones), so that the shares add up to the discount and no share
 * exceeds its line's total.
 */
Datum
voucher_spread_discount(const CartLine *lines, int nlines, int64 subtotal, int64 discount)
{
	Datum	   *shares = palloc(sizeof(Datum) * nlines);
	int64	   *share = palloc(sizeof(int64) * nlines);
	int128	   *remainder = palloc(sizeof(int128) * nlines);
	bool	   *bumped = palloc0(sizeof(bool) * nlines);
	int64		left = discount;

	for (int i = 0; i < nlines; i++)
	{
		int128		part = (int128) discount *
		(lines[i].unit_price_cents * (int64) lines[i].quantity);

		share[i] = subtotal > 0 ? (int64) (part / subtotal) : 0;
		remainder[i] = subtotal > 0 ? part % subtotal : 0;
		left -= share[i];
	}
	while (left-- > 0)
	{
		int			best = -1;

		for (int i = 0; i < nlines; i++)
			if (!bumped[i] && (best < 0 || remainder[i] > remainder[best]))
				best = i;
		bumped[best] = true;
		share[best]++;
	}
	for (int i = 0; i < nlines; i++)
		shares[i] = Int64GetDatum(share[i]);
	return stmt_bigint_array(shares, nlines);
}
