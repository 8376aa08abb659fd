// GET /api/health: the breaker's state, the pool, the stock listener, counters.
import type { FastifyPluginAsync } from "fastify";

const health: FastifyPluginAsync = async (app) => {
  app.get("/api/health", async () => {
    const pool = app.shop.pool;
    return {
      breaker: app.checkout.state,
      pool: { total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount },
      stock: { listening: app.hub.listening, pages: app.hub.pageCount, ...app.hub.stats },
      checkouts: app.counts,
    };
  });
};

export default health;
