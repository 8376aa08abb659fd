/*-------------------------------------------------------------------------
 *
 * voucher.h
 *		voucher.c: a voucher's code checked, its limits, its use, its discount.
 *
 *-------------------------------------------------------------------------
 */
#ifndef VOUCHER_H
#define VOUCHER_H

#include "call.h"

extern text *voucher_code_argument(FunctionCallInfo fcinfo, int argno);
extern void voucher_init(void);
extern void voucher_find(CheckoutCall *call, int64 customer_id, text *code, bool fail_fast,
						 Voucher *voucher, CartLine **short_lines, int *nshort);
extern void voucher_reject(CheckoutCall *call, const Voucher *voucher);
extern void voucher_lock_code(CheckoutCall *call, Voucher *voucher);
extern void voucher_take_use(CheckoutCall *call, int64 customer_id,
							 int64 subtotal, Voucher *voucher);
extern Datum voucher_spread_discount(const CartLine *lines, int nlines, int64 subtotal,
									 int64 discount);

#endif							/* VOUCHER_H */
