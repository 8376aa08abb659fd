/*-------------------------------------------------------------------------
 *
 * checkout.h
 *		Declarations shared by the checkout extension's C files.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CHECKOUT_H
#define CHECKOUT_H

/* SQLSTATEs of this extension, documented in README.md */
#define ERRCODE_CHECKOUT_INSUFFICIENT_STOCK	MAKE_SQLSTATE('S','H','0','0','1')
#define ERRCODE_CHECKOUT_EMPTY_CART			MAKE_SQLSTATE('S','H','0','0','2')
#define ERRCODE_CHECKOUT_UNKNOWN_CUSTOMER	MAKE_SQLSTATE('S','H','0','0','3')

/* How one call of shop_checkout() ended, for the statistics */
typedef enum CheckoutOutcome
{
	CHECKOUT_SUCCESS,
	CHECKOUT_INSUFFICIENT_STOCK,
	CHECKOUT_EMPTY_CART,
	CHECKOUT_UNKNOWN_CUSTOMER,
	CHECKOUT_LOCK_TIMEOUT,
	CHECKOUT_SERIALIZATION_FAILURE,
	CHECKOUT_OTHER_FAILURE
} CheckoutOutcome;

/* stats.c */
extern void checkout_stats_init(void);
extern bool checkout_stats_enabled(void);
extern void checkout_stats_count(CheckoutOutcome outcome, int64 items_sold,
								 int64 elapsed_us, int64 lock_wait_us);

#endif							/* CHECKOUT_H */
