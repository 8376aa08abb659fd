/*-------------------------------------------------------------------------
 *
 * features.c
 *		What a shop uses, known per backend without a statement or a lock
 *		per checkout: orders with a payment window, purchase limits,
 *		locations other than the default, preorders, voucher codes,
 *		bundles, stock slots.
 *
 * A checkout of a shop that never used a feature runs the plain
 * statements, without the subqueries that could only find nothing
 * (statements.c), and skips the feature's steps.  "Never used" is that the
 * feature's relation never held a row (ever_had_rows: a heap with no
 * block, a B-tree with only its metapage).  Until 1.2 that was looked up on
 * every call: opening each relation (an AccessShareLock) and asking its
 * size (a system call).  Since 1.3 the answer is cached per backend and
 * dropped when the relation's relcache entry is invalidated:
 *
 *	- purchase_limits, location_stock, preorders, voucher_codes,
 *	  bundle_parts, stock_slots and location_stock_slots (since 1.3) have an
 *	  AFTER INSERT statement trigger (shop_feature_used()) that queues an
 *	  invalidation of the table, sent at commit to every backend; TRUNCATE,
 *	  VACUUM's truncation and any DDL invalidate it too;
 *	- orders with a payment window are written only by shop_checkout(),
 *	  which queues an invalidation of orders_expires_at_idx when it writes
 *	  one while its backend does not know the index used (so once per
 *	  backend, not per order).  Should that transaction or subtransaction
 *	  abort, the entry it made stays in the index but the message is
 *	  dropped: the backend then sends it again with its next checkout.
 *
 * How far a backend can trust a cached "never used".  A backend caches it
 * after finding the relation empty; the row or entry that first makes it
 * used is written after that, by a transaction that sends the invalidation
 * when it commits (every transaction start, and every lock taken on a
 * relation, reads the invalidation queue; checkout_features_check() reads
 * it again at each call).  PostgreSQL sends a transaction's invalidations
 * just after it has made the transaction visible, so for a moment a
 * snapshot can show the first row while the backend still trusts "never
 * used".  A limit, a voucher, a preorder or a windowed order in that moment
 * is treated as made after the checkout, as one made while it runs is.
 * Stock slots must not be missed: a checkout that read no slot finds a
 * split product short on its row and then locks its slots (lock_products),
 * and fail fast looks at stock_slots again before it refuses
 * (checkout_shop_uses_now()).  Stock moved to a new location in that
 * moment is found by the same second look (locations.c).
 * A cached "used" is always safe: the full statements find nothing where
 * there is nothing.
 *
 * Before 1.3 (a newer library serving objects not yet updated) there are
 * no triggers: then nothing is cached and every call looks, as 1.2 did.
 *
 * Memory rules.  The state is static; nothing is allocated.
 *
 * Locking rules.  Looking takes AccessShareLock on the relation for the
 * rest of the transaction, once per backend per invalidation.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/xact.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "storage/bufmgr.h"
#include "storage/sinval.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "call.h"


PG_FUNCTION_INFO_V1(shop_feature_used);

/* What the backend knows of a feature's relation */
typedef enum FeatureState
{
	FEATURE_UNKNOWN = 0,		/* look at the relation */
	FEATURE_UNUSED,				/* it never held a row */
	FEATURE_USED				/* it did, or it is not there (1.0) */
} FeatureState;

/*
 * The relation of each feature, its size when it never held a row, whether
 * the feature is unused where the relation is not there (one of 1.2, on an
 * install of 1.1) rather than used, whether 1.0 had it, and what is known
 * of it
 */
typedef struct Feature
{
	const char *relname;
	BlockNumber empty;
	bool		since_1_2;
	bool		in_1_0;
	Oid			relid;
	FeatureState state;
} Feature;

static Feature features[NUM_CHECKOUT_FEATURES] = {
	[CHECKOUT_EXPIRY] = {"orders_expires_at_idx", 1, false},
	[CHECKOUT_LIMITS] = {"purchase_limits", 0, false},
	[CHECKOUT_LOCATIONS] = {"location_stock", 0, true},
	[CHECKOUT_PREORDERS] = {"preorders", 0, true},
	[CHECKOUT_VOUCHERS] = {"voucher_codes", 0, true},
	[CHECKOUT_BUNDLES] = {"bundle_parts", 0, true},
	[CHECKOUT_SLOTS] = {"stock_slots", 0, false, true},
	[CHECKOUT_LOCATION_SLOTS] = {"location_stock_slots", 0, true},
};

/* Whether the schema's objects have the triggers (1.3 on): cache then */
static bool cache_features = false;

/* Whether the objects are of 1.0, which has none of these */
static bool features_for_1_0 = false;

/*
 * Whether this transaction queued an invalidation of the expiry index, and
 * whether one was dropped by an abort and must be sent again
 */
static bool expiry_sent_in_xact = false;
static bool expiry_resend = false;

/*
 * The locations table (its changes: a priority, a retirement), and a count
 * of the invalidations of it and of the features' relations: how old what
 * a feature caches of the shop's rows may be (checkout_features_generation)
 */
static Oid	locations_relid = InvalidOid;
static uint64 generation = 0;

/* A relation's relcache entry was invalidated (InvalidOid: all of them) */
static void
relation_changed(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || relid == locations_relid)
		generation++;
	for (int f = 0; f < NUM_CHECKOUT_FEATURES; f++)
		if (!OidIsValid(relid) || features[f].relid == relid)
		{
			features[f].state = FEATURE_UNKNOWN;
			generation++;
		}
}

/* An invalidation queued for the expiry index is lost when its (sub)transaction aborts */
static void
xact_ended(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		expiry_resend |= expiry_sent_in_xact;
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_PREPARE)
		expiry_sent_in_xact = false;
}

static void
subxact_ended(SubXactEvent event, SubTransactionId mySubid,
			  SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		expiry_resend |= expiry_sent_in_xact;
}

/* Watch the relations' invalidations (from _PG_init) */
void
checkout_features_init(void)
{
	CacheRegisterRelcacheCallback(relation_changed, (Datum) 0);
	RegisterXactCallback(xact_ended, NULL);
	RegisterSubXactCallback(subxact_ended, NULL);
}

/*
 * The features' relations are those of schema nspoid; is_1_0 says the
 * objects are of 1.0; cache says they have the triggers.  Forgets what was
 * known (called when the catalogs changed).
 */
void
checkout_features_reset(Oid nspoid, bool is_1_0, bool cache)
{
	for (int f = 0; f < NUM_CHECKOUT_FEATURES; f++)
	{
		features[f].relid = get_relname_relid(features[f].relname, nspoid);
		features[f].state = FEATURE_UNKNOWN;
	}
	locations_relid = get_relname_relid("locations", nspoid);
	features_for_1_0 = is_1_0;
	cache_features = cache;
	generation++;
}

/*
 * A number that changes whenever a feature's relation or locations is
 * invalidated (their triggers do at commit: a first row, a location's
 * stock split or merged, a priority changed, a location retired), or the
 * schema changed: what a feature caches of the shop's rows (locations.c's
 * located hot products) is as old as it.  Only objects that have the
 * triggers (checkout_may_cache()) may cache anything.
 */
uint64
checkout_features_generation(void)
{
	return generation;
}

/*
 * Take in the invalidations other backends sent (a checkout's first step,
 * so that its answers are as of the call, even in a transaction that
 * started before a feature was first used)
 */
void
checkout_features_check(void)
{
	AcceptInvalidationMessages();
}

/*
 * Whether relation relid has more than `empty` blocks: false only when it
 * has never held a row since it was created (neither VACUUM nor deletes
 * give a B-tree its pages back).  True when it is not there: then the full
 * statements are used.
 */
static bool
ever_had_rows(Oid relid, BlockNumber empty)
{
	Relation	rel;
	BlockNumber nblocks;

	if (!OidIsValid(relid) ||
		(rel = try_relation_open(relid, AccessShareLock)) == NULL)
		return true;
	nblocks = RelationGetNumberOfBlocks(rel);
	relation_close(rel, NoLock);
	return nblocks > empty;
}

/*
 * Whether what a backend knows of the shop's tables may be cached: the
 * install has the triggers that invalidate it (since 1.3)
 */
bool
checkout_may_cache(void)
{
	return cache_features;
}

/*
 * Whether the shop may have used feature: CHECKOUT_EXPIRY, an order with a
 * payment window (the partial index of placed orders with one has had an
 * entry: every order that can be past its window is in it);
 * CHECKOUT_LIMITS, a purchase limit; CHECKOUT_LOCATIONS, stock in another
 * location than the default (never before 1.2); CHECKOUT_PREORDERS, a
 * product sold before it arrives (never before 1.2); CHECKOUT_VOUCHERS, a
 * voucher code (never before 1.2); CHECKOUT_BUNDLES, a bundle (never before
 * 1.3); CHECKOUT_SLOTS, a stock slot (cached since 1.3);
 * CHECKOUT_LOCATION_SLOTS, a slot of a location's stock (never before
 * 1.3).  On 1.0, which
 * has none of the others, only stock slots are looked for.
 */
bool
checkout_shop_uses(CheckoutFeature feature)
{
	Feature    *f = &features[feature];

	if (features_for_1_0 && !f->in_1_0)
		return false;
	if (f->state == FEATURE_UNKNOWN || !cache_features)
	{
		bool		used;

		if (f->since_1_2 && !OidIsValid(f->relid))
			used = false;		/* an install of 1.1 has no such feature */
		else
			used = ever_had_rows(f->relid, f->empty);

		/*
		 * Opening the relation read the invalidations queued so far, and its
		 * size was read after: any later row comes with a later one
		 */
		f->state = used ? FEATURE_USED : FEATURE_UNUSED;
	}
	return f->state == FEATURE_USED;
}

/*
 * Whether the shop may have used feature, a cached "never used" looked at
 * again now: for a step about to act on it on a snapshot that may be newer
 * than the invalidations the backend took in (a transaction's rows are
 * visible to others a moment before its invalidations are sent; the rows
 * it inserted had extended the relation before it committed).  A cached
 * "used" is kept: it is always safe.
 */
bool
checkout_shop_uses_now(CheckoutFeature feature)
{
	if (checkout_shop_uses(feature))
		return true;
	features[feature].state = FEATURE_UNKNOWN;
	return checkout_shop_uses(feature);
}

/*
 * shop_checkout() wrote an order, with a payment window when windowed:
 * then, when this backend does not know the expiry index used, queue its
 * invalidation, so that every backend that knew it unused looks again; and
 * whatever the order, queue again one that an abort dropped
 */
void
checkout_order_written(bool windowed)
{
	Feature    *f = &features[CHECKOUT_EXPIRY];

	if (!expiry_resend && (!windowed || f->state == FEATURE_USED))
		return;
	if (!cache_features || !OidIsValid(f->relid))
		return;
	CacheInvalidateRelcacheByRelid(f->relid);
	expiry_sent_in_xact = true;
	expiry_resend = false;
}

/*
 * shop_feature_used(): an AFTER trigger of the features' tables and the
 * vouchers' (since 1.3).  Queues an invalidation of the table, sent to
 * every backend when the transaction commits, so that a backend that knew
 * the shop did not use the feature looks again at its next checkout, and
 * one that knew a voucher used up forgets it (voucher.c).
 */
Datum
shop_feature_used(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_AFTER(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("shop_feature_used() must be called as an AFTER trigger"),
				 errhint("It is the trigger the extension puts on its feature tables; do not call it directly.")));
	CacheInvalidateRelcache(trigdata->tg_relation);
	return PointerGetDatum(NULL);
}
