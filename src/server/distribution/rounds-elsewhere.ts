/**
 * The round service of a `dkeygen distributor` (distributor.ts): it runs no rounds, so whatever
 * needs one (a TOTP or HOTP enrollment; a threshold signature is not coordinated either) is refused
 * with E_UNAVAILABLE naming the key generation server, which serves those on its own HTTP address.
 * Its OTP pool only claims (otp-pool.ts without `rounds`): the server refills it.
 */
import { DkeygenError, ErrorCodes } from "../../errors.js";
import type { KeyRecord } from "../../store/types.js";
import type { RoundService } from "./app.js";

export const NO_ROUNDS_HERE =
  "This is a dkeygen distributor: it runs no rounds. Send TOTP/HOTP enrollments to the " +
  "distribution address of the dkeygen server on the same store.";

export const roundsElsewhere: RoundService = {
  connectedContributors: [],
  async runRound(): Promise<KeyRecord> {
    throw new DkeygenError(ErrorCodes.UNAVAILABLE, NO_ROUNDS_HERE);
  },
};
