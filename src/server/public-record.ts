/** A stored record's public face on the wire (admin.round, GET /v1/keys/{id}). */
import type { PublicRecordWire } from "../protocol/messages.js";
import type { KeyRecord } from "../store/types.js";

/**
 * The record's public fields. `owner` is shown as given (a requester name, or "@admin"); the
 * store's owner value — a registration id — is not shown, so callers pass the name they know.
 */
export function toPublicRecord(record: KeyRecord, owner?: string): PublicRecordWire {
  return {
    id: record.id,
    purpose: record.purpose,
    createdAt: record.createdAt,
    roundId: record.roundId,
    participants: record.participants,
    algorithm: record.algorithm,
    public: record.public,
    ...(owner === undefined ? {} : { owner }),
  };
}
