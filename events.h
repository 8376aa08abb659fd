/*-------------------------------------------------------------------------
 *
 * events.h
 *		events.c: order events, to PgQ or logical decoding (checkout.events).
 *
 *-------------------------------------------------------------------------
 */
#ifndef EVENTS_H
#define EVENTS_H

#include "call.h"

/* The prefix of the logical decoding messages of order events */
#define CHECKOUT_EVENTS_PREFIX "checkout.order_event"

extern void events_init(void);
extern bool events_on(void);
extern void events_order_placed(Oid nspoid, int64 order_id, int64 customer_id,
								text *key, const CartLine *lines, int nlines,
								const CartLine *stock, int nstock,
								const BundleParts *parts, int64 subtotal,
								const Voucher *voucher, int payment_window);

#endif							/* EVENTS_H */
