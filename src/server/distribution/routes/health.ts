/**
 * Liveness and readiness, unauthenticated, for load balancers and orchestrators. Readiness on the
 * key generation server: OTPs are ready or can be made. On a distributor (no rounds, a pool it
 * only claims from): its database answers. Either way a PostgreSQL store that cannot be reached
 * is 503, reported as `database: "unreachable"`.
 */
import type { FastifyInstance } from "fastify";
import { describeError, ErrorCodes, isDkeygenError } from "../../../errors.js";
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

  const postgres = ctx.store.kind === "postgres";
  const distributor = ctx.role === "distributor";
  app.get(
    "/v1/ready",
    {
      schema: {
        tags: ["operations"],
        summary:
          "Ready to hand out OTPs: the store is open (its database answers) and OTPs are ready or can be made; on a distributor, its database answers.",
        response: answers({
          ok: [
            Readiness,
            "Ready: OTPs are ready, or can be made (a distributor: its database answers).",
          ],
          errors: {
            503: "or degraded: the store's database cannot be reached, or no OTP is ready and none can be made now (a Readiness body with the problem)",
          },
          bodies: { 503: orErrorBody(Readiness) },
        }),
      },
    },
    async (_request, reply) => {
      const base = {
        store: ctx.store.kind,
        ...(distributor ? {} : { contributors: ctx.rounds.connectedContributors.length }),
      };
      const target = distributor ? 0 : ctx.pool.size;
      let available: number;
      try {
        available = await ctx.pool.available();
      } catch (error) {
        if (!postgres || !isDkeygenError(error, ErrorCodes.UNAVAILABLE)) throw error;
        // The details (host, driver message) go to the log, not to an unauthenticated caller.
        ctx.logger.warn(
          { err: describeError(error) },
          "not ready: the key store's database is unreachable",
        );
        return reply
          .status(503)
          .header("retry-after", "1")
          .send({
            status: "degraded" as const,
            ...base,
            database: "unreachable" as const,
            otpPool: { available: 0, target },
            problem: "the key store's database cannot be reached",
          });
      }
      const contributors = base.contributors ?? 0;
      const problem =
        distributor || available > 0
          ? undefined
          : (ctx.pool.lastError ?? (contributors === 0 ? "no contributors connected" : undefined));
      const body = {
        status: problem === undefined ? ("ready" as const) : ("degraded" as const),
        ...base,
        ...(postgres ? { database: "reachable" as const } : {}),
        otpPool: { available, target },
        ...(problem === undefined ? {} : { problem }),
      };
      return reply.status(problem === undefined ? 200 : 503).send(body);
    },
  );
}
