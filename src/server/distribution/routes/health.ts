/** Liveness and readiness, unauthenticated, for load balancers and orchestrators. */
import type { FastifyInstance } from "fastify";
import { answers, orErrorBody } from "../answers.js";
import type { RouteContext } from "../app.js";
import { Health, Readiness } from "../schemas.js";

export function registerHealthRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.get(
    "/v1/health",
    {
      schema: {
        tags: ["operations"],
        summary: "The process is up.",
        response: answers({ ok: [Health, "The process is up."] }),
      },
    },
    async () => ({ status: "ok" as const }),
  );

  app.get(
    "/v1/ready",
    {
      schema: {
        tags: ["operations"],
        summary: "Ready to hand out OTPs: the store is open and OTPs are ready or can be made.",
        response: answers({
          ok: [Readiness, "Ready: OTPs are ready, or can be made."],
          errors: {
            503: "or degraded: no OTP is ready and none can be made now (a Readiness body with the problem)",
          },
          bodies: { 503: orErrorBody(Readiness) },
        }),
      },
    },
    async (_request, reply) => {
      const available = await ctx.pool.available();
      const contributors = ctx.rounds.connectedContributors.length;
      const problem =
        available > 0
          ? undefined
          : (ctx.pool.lastError ?? (contributors === 0 ? "no contributors connected" : undefined));
      const body = {
        status: problem === undefined ? ("ready" as const) : ("degraded" as const),
        store: ctx.store.kind,
        otpPool: { available, target: ctx.pool.size },
        contributors,
        ...(problem === undefined ? {} : { problem }),
      };
      return reply.status(problem === undefined ? 200 : 503).send(body);
    },
  );
}
