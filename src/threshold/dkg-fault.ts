/** A DKG or refresh that cannot go on, and whom to blame for it (docs/PROTOCOL.md §16.3). */
import { DkeygenError, ErrorCodes } from "../errors.js";

export type FaultKind =
  | "signature"
  | "proof"
  | "commitment"
  | "encryption-key"
  | "share"
  | "equivocation"
  | "certificate"
  | "missing"
  | "replay"
  | "parameters"
  | "protocol";

/** The evidence of a share complaint: the one share's key, so anyone can open it. */
export interface ShareEvidence {
  from: number;
  to: number;
  key: Uint8Array;
}

/** A DKG that cannot go on, and whom to blame for it. */
export class DkgFault extends DkeygenError {
  readonly culpritIndex: number | "coordinator";
  readonly kind: FaultKind;
  readonly evidence: ShareEvidence | undefined;

  constructor(
    culprit: number | "coordinator",
    kind: FaultKind,
    message: string,
    evidence?: ShareEvidence,
  ) {
    super(ErrorCodes.ROUND_ABORTED, message);
    this.name = "DkgFault";
    this.culpritIndex = culprit;
    this.kind = kind;
    this.evidence = evidence;
  }
}
