/*-------------------------------------------------------------------------
 *
 * checkout.h
 *		The driver's header: what the call's forms (checkout.c's SQL entry
 *		points, placeorder.c) and the infrastructure (guard.c, stats.c)
 *		declare; the call's own types are in call.h, each feature's API in
 *		its header.
 *
 * checkout.c	shop_checkout(): the steps of a checkout, the settings, the
 *				error context and the statistics of each call
 * lockstep.c	what a running checkout is locking, for its error context
 * statements.c	the engine that prepares, keeps and runs each file's SQL
 *				statements (statements.h), and the SPI helpers
 * features.c	what a shop uses, cached per backend
 * stock.c		the stock helpers below the features: a product's row and
 *				slots locked and served together, the subtransaction
 * guard.c		the uninstall guard: no DROP EXTENSION of a shop with orders
 * rowchecks.c	the row checks of orders and order_items (CHECK constraints)
 * checks.c		the CHECK constraints of the shop's tables, compiled once per
 *				backend (an ExecutorStart_hook)
 * slots.c		serving a line from a product's stock slots
 * locations.c	stock in locations other than the default
 * preorders.c	units sold before they arrive
 * voucher.c	a voucher's code: checked, its limits, its use, its discount
 * bundles.c	a cart's bundles sold as their parts
 * placeorder.c	shop_place_order(): the web's checkout in one call
 * refusal.c	a refusal's figures as data, for shop_place_order()
 * events.c		order events: every change of an order, to PgQ or logical
 *				decoding (checkout.events)
 * stats.c		the live statistics in shared memory
 * compat.h		what differs between PostgreSQL majors
 *
 * Layers, each calling only those below it: the forms (checkout.c's entry
 * points, placeorder.c) call the driver (checkout_call); the driver calls
 * the features (slots.h, locations.h, preorders.h, voucher.h, events.h,
 * bundles.h),
 * which never call one another; all of them call the helpers of call.h
 * (refusal.c, lockstep.c, features.c, stock.c) and the statements engine
 * (statements.h).
 *
 * Names.  What a feature, the stock helpers and the engine export starts
 * with its file's concern (slots_, locations_, preorders_, voucher_,
 * events_, bundles_, stock_, stmt_); what the driver and the helpers of the whole
 * call export (refusal.c, lockstep.c, features.c, stats.c, guard.c) starts
 * with checkout_.  PostgreSQL 15 exports every symbol of the library into
 * the backend: make test checks that no name is one of the server's.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CHECKOUT_H
#define CHECKOUT_H

#include "call.h"

/* How one call of shop_checkout() ended, for the statistics */
typedef enum CheckoutOutcome
{
	CHECKOUT_SUCCESS,
	CHECKOUT_REPLAY,			/* an idempotency key's order, returned again */
	CHECKOUT_PURCHASE_LIMIT,
	CHECKOUT_INSUFFICIENT_STOCK,
	CHECKOUT_EMPTY_CART,
	CHECKOUT_UNKNOWN_CUSTOMER,
	CHECKOUT_LOCK_TIMEOUT,
	CHECKOUT_SERIALIZATION_FAILURE,
	CHECKOUT_OTHER_FAILURE,
	CHECKOUT_VOUCHER_INVALID,
	CHECKOUT_VOUCHER_LIMIT,
	CHECKOUT_VOUCHER_CUSTOMER_LIMIT
} CheckoutOutcome;

/*
 * checkout.c: a call of any form.  A form says its function's name (for
 * messages), where its key and voucher code arguments are, and what else
 * it reads of its arguments into the call (NULL: nothing)
 */
typedef struct CheckoutForm
{
	const char *function;
	int			key_argno;
	int			code_argno;
	void		(*arguments) (FunctionCallInfo fcinfo, CheckoutCall *call);
} CheckoutForm;

extern int64 checkout_call(CheckoutCall *call, FunctionCallInfo fcinfo,
						   const CheckoutForm *form);
extern int64 checkout_customer_argument(FunctionCallInfo fcinfo, const char *function);
extern void checkout_use_schema(Oid nspoid);

/* guard.c */
extern void checkout_guard_init(void);

/* checks.c */
extern void checkout_checks_init(void);
extern void checkout_checks_use_schema(Oid nspoid);

/* stats.c */
extern void checkout_stats_init(void);
extern void checkout_stats_count(CheckoutOutcome outcome, int64 items_sold,
								 int64 elapsed_us, int64 lock_wait_us);

#endif							/* CHECKOUT_H */
