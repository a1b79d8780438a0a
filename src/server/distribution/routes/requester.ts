/**
 * Who the caller is registered as: its name and the fingerprint of the public key registered with
 * its credential. `requester login` checks that fingerprint against its own key before it keeps a
 * credential, so a credential issued for another key is refused at once instead of costing an OTP
 * its holder cannot decrypt. Public facts only (the fingerprint is of a public key).
 */
import type { FastifyInstance } from "fastify";
import { answers } from "../answers.js";
import type { RouteContext } from "../app.js";
import { RequesterRegistration } from "../schemas.js";

export function registerRequesterRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.get(
    "/v1/requester",
    {
      onRequest: ctx.authenticate,
      schema: {
        tags: ["requester"],
        summary: "The caller's registration: its name and its registered key's fingerprint.",
        security: [{ credential: [] }],
        response: answers({
          ok: [
            RequesterRegistration,
            "The caller's registration: its name and the SHA-256 fingerprint of its registered key.",
          ],
          authenticated: true,
        }),
      },
    },
    async (request) => {
      const { name, fingerprint } = request.requester!;
      return { name, fingerprint };
    },
  );
}
