/*-------------------------------------------------------------------------
 *
 * call.h
 *		The state of one checkout call, which the driver (checkout.c) and every
 *		feature share: the SQLSTATEs, the cart line, the call, the slot takes,
 *		the voucher; and the helpers below the features, which they may all
 *		call (refusal.c, lockstep.c, features.c, stock.c).  No feature
 *		includes checkout.h: a feature's own header says what the driver may
 *		call of it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CALL_H
#define CALL_H

#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "portability/instr_time.h"
#include "storage/itemptr.h"
#include "storage/lock.h"

/*
 * Every SQLSTATE this extension raises, documented in README.md.  Its own
 * class SH; the others are PostgreSQL's, listed so that this file is the
 * one place to read them all.
 *
 *	SH001	insufficient stock (shop_checkout)
 *	SH002	empty cart (shop_checkout)
 *	SH003	unknown customer (shop_checkout, shop_cart_status, shop_place_order)
 *	SH004	unknown product (stock functions in the install script,
 *			shop_place_order)
 *	SH005	a purchase limit exceeded (shop_checkout)
 *	SH006	unknown order (shop_pay, shop_cancel_order, shop_cancel_items)
 *	SH007	an order that cannot be paid: cancelled, expired, paid already
 *			with another reference (shop_pay)
 *	SH008	a shard that cannot be reached (sharding/checkout_proxy--1.1.sql: the
 *			proxy of a sharded shop, docs/scale-out.md)
 *	SH009	a voucher code that cannot be used: unknown, not valid yet,
 *			expired, single-use and used, or the cart under its smallest
 *			subtotal (shop_checkout, shop_cart_status)
 *	SH010	a voucher's usage limit reached (shop_checkout)
 *	SH011	a voucher's limit per customer reached (shop_checkout)
 *	SH012	unknown voucher (the voucher functions in the install script)
 *	SH015	an idempotency key used before for another request (another
 *			voucher code, other lines: shop_checkout, shop_place_order)
 *	SH016	stock given to a bundle, which has none of its own (a restock,
 *			an adjustment, a split, a location's stock or a preorder of a
 *			bundle: triggers in the install script)
 *	22004	a NULL argument
 *	22003	an order total or a stock out of range
 *	22023	an invalid argument value (an idempotency key empty or over 255
 *			characters; stock and order functions)
 *	2BP01	DROP EXTENSION checkout, or DROP SCHEMA of its schema, while
 *			orders has a row and checkout.allow_drop is off (guard.c)
 *	55000	statistics asked for without shared_preload_libraries
 *	55P03	a lock wait longer than checkout.lock_timeout (PostgreSQL's own
 *			error, with a context line naming what was being locked)
 *	40001, 40P01	serialization failure, deadlock (PostgreSQL's own)
 *
 * The case of a message.  A refusal a buyer may be shown (stock SH001,
 * purchase limit SH005, voucher SH009, SH010, SH011) is a sentence for the
 * buyer and starts with a capital letter, as SH001's documented text has
 * since 1.0; every other message (a program's mistake, a setting, the
 * server's state) follows PostgreSQL's style: lower case first, no final
 * period.  A count that decides a word takes errmsg_plural.
 * tools/check-messages checks it (make test).
 */
#define ERRCODE_CHECKOUT_INSUFFICIENT_STOCK	MAKE_SQLSTATE('S','H','0','0','1')
#define ERRCODE_CHECKOUT_EMPTY_CART			MAKE_SQLSTATE('S','H','0','0','2')
#define ERRCODE_CHECKOUT_UNKNOWN_CUSTOMER	MAKE_SQLSTATE('S','H','0','0','3')
#define ERRCODE_CHECKOUT_UNKNOWN_PRODUCT	MAKE_SQLSTATE('S','H','0','0','4')
#define ERRCODE_CHECKOUT_PURCHASE_LIMIT	MAKE_SQLSTATE('S','H','0','0','5')
#define ERRCODE_CHECKOUT_UNKNOWN_ORDER	MAKE_SQLSTATE('S','H','0','0','6')
#define ERRCODE_CHECKOUT_ORDER_STATE		MAKE_SQLSTATE('S','H','0','0','7')
#define ERRCODE_CHECKOUT_VOUCHER_INVALID	MAKE_SQLSTATE('S','H','0','0','9')
#define ERRCODE_CHECKOUT_VOUCHER_LIMIT	MAKE_SQLSTATE('S','H','0','1','0')
#define ERRCODE_CHECKOUT_VOUCHER_CUSTOMER_LIMIT	MAKE_SQLSTATE('S','H','0','1','1')
#define ERRCODE_CHECKOUT_KEY_REUSED		MAKE_SQLSTATE('S','H','0','1','5')

/* The longest idempotency key, in characters */
#define CHECKOUT_MAX_KEY_LENGTH 255

/* The most slots a product's stock can be split into (stock_slots.slot < 64) */
#define CHECKOUT_MAX_SLOTS 64

/* The longest voucher code, in characters */
#define CHECKOUT_MAX_CODE_LENGTH 255

/* The most lines shop_place_order() takes */
#define CHECKOUT_MAX_LINES 1000

/*
 * The lines of a shop_place_order() call, sorted by product id, distinct
 * (placeorder.c parses them; checkout.c sets the cart to them)
 */
typedef struct CheckoutLines
{
	int			n;
	int64	   *product_ids;
	int32	   *quantities;
	bool	   *accept_preorder;
} CheckoutLines;

/*
 * The row and slots of a line's product, locked together and read
 * (stock.c's stock_lock_row_and_slots: the path of a line no single slot
 * serves, and of every located line); only stock.c writes it, the
 * features that serve from them (locations.c, preorders.c) read it
 */
typedef struct HeldStock
{
	int32		row_stock;		/* the row's stock */
	int64		default_stock;	/* the row's and the slots' together: the
								 * default location's */
	int32		nslot_rows;
	ItemPointerData *slot_ctids;
	int32	   *slot_stock;
} HeldStock;

/*
 * A line of a product stocked in other locations too (locations.c, which
 * alone writes it; the driver reads located): the other locations' rows,
 * locked, and what the allocation takes from each and from the default
 */
typedef struct LocatedStock
{
	bool		located;
	bool		maybe_located;	/* served as if not, unless short (see
								 * locations_find_lines) */
	int32		nlocations;
	int64	   *location_ids;
	int32	   *location_stock;
	int32	   *location_priority;
	ItemPointerData *location_ctids;
	int32	   *location_take;
	int32		default_take;

	/*
	 * The locations' stock slots (1.3), locked with the rows: each slot's
	 * location (an index into the arrays above), row and stock;
	 * location_stock counts them, location_row_stock is the rows' own
	 */
	int32	   *location_row_stock;
	int32		nslot_rows;
	int32	   *slot_location;
	ItemPointerData *slot_ctids;
	int32	   *slot_stock;

	/*
	 * The located hot product's fast path: the location strictly preferred to
	 * every other, whose slot_count slots the line may take one of (0: none),
	 * and whether one did (its units are taken already)
	 */
	int64		slot_location_id;
	int32		slot_count;
	bool		slot_served;
	uint64		slot_generation;	/* checkout_features_generation() before
									 * the location was chosen */
} LocatedStock;

/*
 * Preorders (preorders.c, which alone writes it): the buyer accepted one
 * and the product has a cap (preorderable), the room left under it, and the
 * units preordered (the line's units beyond its stock on hand)
 */
typedef struct PreorderState
{
	bool		preorderable;
	int32		preorder_room;
	int32		preordered;
} PreorderState;

/*
 * One line of the cart, completed from its locked product row.  The core
 * line is the driver's (checkout.c reads the cart, locks the rows, checks
 * the stock, writes the order); the features that serve a line set its
 * stock, ctid and row_take (slots.c, stock.c, locations.c, preorders.c),
 * and each keeps its own state in its part, which only it writes.
 */
typedef struct CartLine
{
	int64		product_id;
	int32		quantity;
	int32		nslots;			/* its stock slots, as read with the cart (0:
								 * none, or not looked for: a shop that never
								 * split, CHECKOUT_SLOTS) */
	bool		limited;		/* its product has a purchase limit */
	char	   *name;			/* product name */
	int64		unit_price_cents;
	int64		stock;			/* stock on sale before this checkout (of a
								 * slotted line served by one slot: that
								 * slot's) */
	ItemPointerData ctid;		/* the locked product row, if locked */
	int32		row_take;		/* how much of it comes from that row */

	/*
	 * Bundles (bundles.c, and fail fast's read in stock.c, write it): a line
	 * of the cart that is a bundle (its units are its parts'), or the stock
	 * line of a part, with the first bundle of the cart that needs it (for
	 * SH001's message; a part is never preordered, preorders.c)
	 */
	struct
	{
		bool		is_bundle;
		const char *of;			/* a part's bundle, NULL: none */
		int32		keep;		/* a part: the most a bundle takes of it, so
								 * that less left sells its bundles out; 0: no
								 * part */
	}			bundle;

	HeldStock	held;			/* stock.c's */
	LocatedStock loc;			/* locations.c's */
	PreorderState pre;			/* preorders.c's */
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
 * The parts the cart's bundles take (bundles.c), for the order's write and
 * its event: a row per bundle and part
 */
typedef struct BundleParts
{
	int			n;
	Datum	   *bundle_ids;
	Datum	   *product_ids;
	Datum	   *quantities;		/* per unit of the bundle */
} BundleParts;

/*
 * Why a voucher's code cannot serve a checkout, as read on the snapshot
 * (STMT_VOUCHER's verdict column)
 */
typedef enum VoucherVerdict
{
	VOUCHER_OK,
	VOUCHER_NOT_YET_VALID,
	VOUCHER_EXPIRED,
	VOUCHER_CODE_USED,			/* a single-use code an order holds */
	VOUCHER_BELOW_MIN_TOTAL,
	VOUCHER_USED_UP,			/* no use left (SH010) */
	VOUCHER_UNKNOWN
} VoucherVerdict;

/*
 * The voucher a checkout uses, read with its code (voucher_find), and the
 * use it takes: the slot row locked for it (invalid: none, the voucher has
 * no usage limit) and the discount
 */
typedef struct Voucher
{
	text	   *code;			/* as the buyer typed it */
	char	   *code_cstr;
	int64		code_id;
	bool		single_use;
	int64		id;
	int32		percent_off;	/* 0: an amount off */
	int64		amount_off_cents;
	int32		usage_limit;	/* 0: none */
	int32		per_customer_limit; /* 0: none */
	int32		use_slots;
	int64		min_total_cents;
	int64		subtotal_cents; /* on the snapshot, when min_total_cents > 0 */
	VoucherVerdict verdict;
	ItemPointerData use_ctid;	/* the voucher_slots row its use comes from */
	int64		discount_cents;
	Datum		discount_shares;	/* int8[]: each line's share of it, in the
									 * cart's order */
} Voucher;

/*
 * The running call of shop_checkout(), the argument of its error context
 * callback: its customer, what it is locking now (a phrase, NULL when it is
 * not waiting for anything, and the ids that follow it: formatted only if
 * an error needs them), when it started locking products and how long that
 * took, the units it sold, and whether it returned a key's order again.
 */
typedef struct CheckoutCall
{
	int64		customer_id;
	Oid			nspoid;			/* the extension's schema */
	const char *step;
	const int64 *step_ids;		/* valid until SPI_finish */
	int			step_nids;
	int64		step_id;		/* step_ids of a step with one id */
	bool		in_lock_wait;
	instr_time	lock_wait_start;
	int64		lock_wait_us;
	int64		items_sold;
	bool		replayed;

	/*
	 * shop_place_order() only: its lines (NULL: the stored cart), and where a
	 * refusal's figures go (refusal.c; NULL: nobody asks for them)
	 */
	const CheckoutLines *lines;
	StringInfo	refusal;

	/* What a key's call asks for (idempotency_keys.request), with a key */
	Datum		request;
} CheckoutCall;

/* refusal.c */
extern void checkout_refuse_line(CheckoutCall *call, bool first, int64 product_id,
								 const char *name, int64 available, int32 requested,
								 int32 preorderable, const char *bundle);
extern void checkout_refuse_limit(CheckoutCall *call, bool first, int64 product_id,
								  const char *name, int32 limit, int64 bought,
								  int32 requested);
extern void checkout_refusal_end(CheckoutCall *call);
extern void checkout_refuse_voucher(CheckoutCall *call, const char *code,
									int64 voucher_id, const char *fields);

/* lockstep.c: what the call locks now, for its error context */
extern void checkout_lock_step(CheckoutCall *call, const char *what, int64 id);
extern void checkout_lock_products_step(CheckoutCall *call, const int64 *ids, int n);
extern void checkout_error_context(void *arg);
extern void checkout_queue_lock_tag(LOCKTAG *tag, int64 product_id);

/* What a shop may never have used, so that a checkout need not look for it */
typedef enum CheckoutFeature
{
	CHECKOUT_EXPIRY,			/* orders with a payment window */
	CHECKOUT_LIMITS,			/* purchase limits */
	CHECKOUT_LOCATIONS,			/* stock in locations other than the default */
	CHECKOUT_PREORDERS,			/* products sold before they arrive */
	CHECKOUT_VOUCHERS,			/* voucher codes */
	CHECKOUT_BUNDLES,			/* products sold as bundles of others */
	CHECKOUT_SLOTS,				/* stock split into stock slots */
	CHECKOUT_LOCATION_SLOTS,	/* a location's stock split into slots */
	NUM_CHECKOUT_FEATURES
} CheckoutFeature;

/* features.c */
extern void checkout_features_init(void);
extern void checkout_features_reset(Oid nspoid, bool is_1_0, bool cache);
extern void checkout_features_check(void);
extern bool checkout_shop_uses(CheckoutFeature feature);
extern bool checkout_shop_uses_now(CheckoutFeature feature);
extern bool checkout_may_cache(void);
extern uint64 checkout_features_generation(void);
extern void checkout_order_written(bool windowed);

/*
 * A search for one stock slot that holds a line's whole quantity, served
 * by stock_take_one_slot: the statements of the file that owns the slots
 * (slots.c, the default's; locations.c, a location's), each read with
 * product $1, quantity $2, slot numbers from $3 up to below $4 and, for a
 * location's, location $5; take takes $2 from the slot locked at ctid $1
 */
typedef struct SlotSearch
{
	struct Statement *find_free;	/* SKIP LOCKED */
	struct Statement *wait_for; /* the same, waiting for a slot */
	struct Statement *take;
	int64		location_id;	/* $5 (0: the default's slots) */
	int32		nslots;
} SlotSearch;

/* stock.c: the stock helpers the features stand on */
extern bool stock_try_in_subtransaction(bool (*attempt) (void *arg), void *arg);
extern bool stock_take_one_slot(CheckoutCall *call, CartLine *line,
								const SlotSearch *search);
extern void stock_add_take(SlotTakes *takes, ItemPointer ctid, int32 amount);
extern void stock_lock_row_and_slots(CheckoutCall *call, CartLine *line, bool row_locked);
extern void stock_serve_from_row_and_slots(CartLine *line, int32 need, SlotTakes *takes);
extern void stock_lock_all(CheckoutCall *call, CartLine *line, bool row_locked,
						   SlotTakes *takes);
extern int32 stock_read_row_again(CartLine *line);
extern CartLine *stock_short_lines(uint64 nrows, int col, bool with_bundle,
								   int *nshort);
extern CartLine *stock_find_short_lines(int64 customer_id, int *nshort);
extern bool stock_short_lines_plain(void);

#endif							/* CALL_H */
