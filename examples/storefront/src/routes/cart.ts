// GET /api/cart: the stored cart as shop_cart_status() shows it.
// PUT /api/cart {lines: [{productId, quantity}]}: set it (one statement).
import type { FastifyPluginAsync } from "fastify";
import type { Line } from "../db.js";
import { linesSchema } from "../schemas.js";

const cart: FastifyPluginAsync = async (app) => {
  app.addHook("onRequest", app.requireShopper);

  app.get("/api/cart", async (req) => app.shop.cart(req.customerId));

  app.put<{ Body: { lines: Line[] } }>(
    "/api/cart",
    { schema: { body: { type: "object", required: ["lines"], properties: { lines: linesSchema } } } },
    async (req) => {
      await app.shop.setCart(req.customerId, req.body.lines);
      return { lines: req.body.lines };
    },
  );
};

export default cart;
