/**
 * A reference server for the distribution benchmark: fastify, configured as the distribution
 * server is (no logger, a body schema, a response schema), answering a constant JSON object of the
 * same size as an OTP delivery. It shows what the framework alone costs against bare node:http,
 * apart from the work an OTP request does. Prints "listening URL" when ready.
 */
import Fastify from "fastify";

const app = Fastify({ logger: false });
const payload = {
  requestId: "3f1c2a4e-8b7d-4c6a-9e2f-0123456789ab",
  otpId: "01M86MVCHH2S3Y5K1BD73BT3PB",
  subject: "bench",
  digits: 6,
  expiresAt: "2026-11-24T10:00:00.000Z",
  envelope: {
    alg: "RSA-OAEP-256/A256GCM",
    kid: "A".repeat(22),
    ek: "B".repeat(512),
    iv: "C".repeat(16),
    ct: "D".repeat(160),
    tag: "E".repeat(22),
  },
};
const str = { type: "string" } as const;
app.post(
  "/v1/otp/request",
  {
    schema: {
      body: {
        type: "object",
        properties: { subject: str },
        additionalProperties: false,
      },
      response: {
        200: {
          type: "object",
          properties: {
            requestId: str,
            otpId: str,
            subject: str,
            digits: { type: "integer" },
            expiresAt: str,
            envelope: {
              type: "object",
              properties: { alg: str, kid: str, ek: str, iv: str, ct: str, tag: str },
            },
          },
        },
      },
    },
  },
  async () => payload,
);
const url = await app.listen({ host: "127.0.0.1", port: 0 });
process.stdout.write(`listening ${url}\n`);
