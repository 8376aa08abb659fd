// GET /api/orders/latest: the shopper's latest order (404 when none).
import type { FastifyPluginAsync } from "fastify";

const orders: FastifyPluginAsync = async (app) => {
  app.get("/api/orders/latest", { onRequest: app.requireShopper }, async (req, reply) => {
    const order = await app.shop.latestOrder(req.customerId);
    if (order === null) return reply.code(404).send({ code: "no_order", message: "No order yet." });
    return { order };
  });
};

export default orders;
