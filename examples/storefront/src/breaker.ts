// The checkout behind a circuit breaker (opossum): when checkouts fail
// because the database is down, unreachable or too slow (half of at least
// `volumeThreshold` calls in the rolling window), it opens and checkouts are
// answered 503 at once instead of piling onto a dying server; after
// `resetTimeout` ms one trial call goes through, and a success closes it.
// Only DatabaseUnavailable counts: the shop's own answers (a refusal, a lock
// timeout under a crowd, a key reused) are a healthy database.
import CircuitBreaker from "opossum";
import { DatabaseUnavailable, type Line, type PlaceOrderResult, type ShopData } from "./db.js";
import { BreakerOpen } from "./outcomes.js";

export type BreakerOptions = { timeout?: number; resetTimeout?: number; volumeThreshold?: number };

export type GuardedCheckout = {
  placeOrder(customerId: number, lines: Line[], key: string, voucherCode: string | null): Promise<PlaceOrderResult>;
  readonly state: "open" | "half-open" | "closed";
};

export function checkoutBreaker(
  data: ShopData,
  { timeout = 12000, resetTimeout = 3000, volumeThreshold = 5 }: BreakerOptions = {},
): GuardedCheckout {
  const breaker = new CircuitBreaker(
    (customerId: number, lines: Line[], key: string, voucherCode: string | null) =>
      data.placeOrder(customerId, lines, key, voucherCode),
    {
      timeout,
      resetTimeout,
      volumeThreshold,
      errorThresholdPercentage: 50,
      errorFilter: (e: unknown) => !(e instanceof DatabaseUnavailable),
    },
  );
  let openedAt = 0;
  breaker.on("open", () => (openedAt = Date.now()));
  return {
    async placeOrder(customerId, lines, key, voucherCode) {
      try {
        return await breaker.fire(customerId, lines, key, voucherCode);
      } catch (e) {
        const code = (e as { code?: string }).code;
        if (code === "EOPENBREAKER") throw new BreakerOpen((resetTimeout - (Date.now() - openedAt)) / 1000);
        // the breaker's own timeout: the statement was sent and may still commit
        if (code === "ETIMEDOUT" && !(e instanceof DatabaseUnavailable)) throw new DatabaseUnavailable("timeout", true, e);
        throw e;
      }
    },
    get state() {
      return breaker.opened ? "open" : breaker.halfOpen ? "half-open" : "closed";
    },
  };
}
