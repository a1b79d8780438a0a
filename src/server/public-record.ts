/** A stored record's public face on the wire (admin.round, GET /v1/keys/{id}). */
import type { PublicRecordWire } from "../protocol/messages.js";
import type { KeyRecord } from "../store/types.js";

/**
 * The record's public fields, with `owner` as the caller decides to show it: the stored value (a
 * registration id or "@admin") to an admin, the requester's own name to its owner, or nothing;
 * likewise a split record's `holders`: as stored to an admin, by name to a holder, or nothing.
 */
export function toPublicRecord(
  record: KeyRecord,
  owner?: string,
  holders?: string[],
): PublicRecordWire {
  return {
    id: record.id,
    purpose: record.purpose,
    createdAt: record.createdAt,
    roundId: record.roundId,
    participants: record.participants,
    algorithm: record.algorithm,
    public: record.public,
    ...(owner === undefined ? {} : { owner }),
    ...(holders === undefined ? {} : { holders }),
  };
}
