// POST /api/checkout: one HTTP checkout, one statement.
//   headers  Idempotency-Key: 1 to 255 characters, one per logical checkout,
//            the same on every retry of it
//   body     {lines: [{productId, quantity}] (1 to 50), voucherCode?}
// The cart is set to the lines and checked out by shop_place_order in one
// autocommit statement (db.ts), behind the breaker (breaker.ts); the answer
// is outcomes.ts's: 201 placed, 200 + Idempotent-Replayed replayed, a
// refusal's status with its figures, 503 + Retry-After to retry.
import type { FastifyPluginAsync } from "fastify";
import type { Line } from "../db.js";
import { placeOrderOutcome } from "../outcomes.js";
import { linesSchema } from "../schemas.js";

const schema = {
  headers: {
    type: "object",
    required: ["idempotency-key"],
    properties: { "idempotency-key": { type: "string", minLength: 1, maxLength: 255 } },
  },
  body: {
    type: "object",
    required: ["lines"],
    additionalProperties: false,
    properties: {
      lines: linesSchema,
      voucherCode: { type: "string", minLength: 1, maxLength: 255 },
    },
  },
} as const;

type Checkout = {
  Headers: { "idempotency-key": string };
  Body: { lines: Line[]; voucherCode?: string };
};

const checkout: FastifyPluginAsync = async (app) => {
  app.addHook("onResponse", async (_req, reply) => {
    const s = reply.statusCode;
    if (s === 201) app.counts.placed++;
    else if (s === 200) app.counts.replayed++;
    else if (s === 503) app.counts.retryLater++;
    else if (s < 500) app.counts.refused++;
  });

  app.post<Checkout>("/api/checkout", { schema, onRequest: app.requireShopper }, async (req, reply) => {
    const { lines, voucherCode } = req.body;
    const result = await app.checkout.placeOrder(req.customerId, lines, req.headers["idempotency-key"], voucherCode ?? null);
    if (result.outcome === "placed") app.hub.refresh(); // stock moved: every page hears of it within a read
    return reply.outcome(placeOrderOutcome(result));
  });
};

export default checkout;
