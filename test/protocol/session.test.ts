/**
 * The session machines, without sockets: which message each state accepts, which states follow,
 * and which rejections end a session.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ErrorCodes } from "../../src/errors.js";
import {
  ADMIN_PHASES,
  CONTRIBUTOR_PHASES,
  PhaseMachine,
} from "../../src/protocol/client-session.js";
import { type MessageType, SCHEMAS } from "../../src/protocol/messages.js";
import {
  SESSION_ACCEPTS,
  SESSION_TRANSITIONS,
  SessionMachine,
  type SessionState,
} from "../../src/protocol/session.js";

const ALL_TYPES = Object.keys(SCHEMAS) as MessageType[];
const STATES = Object.keys(SESSION_TRANSITIONS) as SessionState[];

/** A machine brought to `state` through legal transitions. */
function machineIn(state: SessionState, maxErrors = 16): SessionMachine {
  const machine = new SessionMachine(maxErrors);
  const path: Record<SessionState, SessionState[]> = {
    handshake: [],
    joining: ["joining"],
    contributor: ["joining", "contributor"],
    admin: ["admin"],
    closed: ["closed"],
  };
  for (const step of path[state]) machine.transition(step);
  assert.equal(machine.state, state);
  return machine;
}

test("each state accepts exactly the messages of its table, and nothing from a closed session is answered", () => {
  const expected: Record<SessionState, MessageType[]> = {
    handshake: ["join", "admin.auth"],
    joining: [],
    contributor: [
      "commit",
      "reveal",
      "log.cosign",
      "log.conflict",
      "dkg.round1",
      "dkg.round2",
      "dkg.confirm",
      "dkg.stored",
      "dkg.fault",
      "sign.commit",
      "sign.share",
      "sign.refuse",
      "refresh.deal",
      "dkg.recovered",
    ],
    admin: ["admin.frame"],
    closed: [],
  };
  assert.deepEqual(SESSION_ACCEPTS, expected);
  for (const state of STATES) {
    for (const type of ALL_TYPES) {
      const verdict = machineIn(state).receive(type);
      if (state === "closed") assert.equal(verdict.kind, "ignore");
      else if (expected[state].includes(type)) assert.deepEqual(verdict, { kind: "handle", type });
      else {
        assert.equal(verdict.kind, "reject", `${type} in ${state}`);
        assert.equal(
          verdict.kind === "reject" && verdict.error.code,
          ErrorCodes.UNEXPECTED_MESSAGE,
        );
      }
    }
  }
});

test("only the transitions of the table are allowed", () => {
  for (const from of STATES) {
    for (const to of STATES) {
      const machine = machineIn(from);
      const legal =
        SESSION_TRANSITIONS[from].includes(to) || (from === "closed" && to === "closed");
      if (legal) machine.transition(to);
      else assert.throws(() => machine.transition(to), /illegal transition/, `${from} → ${to}`);
    }
  }
  // The admin and contributor roles never cross.
  assert.throws(() => machineIn("admin").transition("contributor"), /illegal/);
  assert.throws(() => machineIn("contributor").transition("admin"), /illegal/);
});

test("a rejection before the peer is authenticated ends the session", () => {
  for (const state of ["handshake", "joining"] as const) {
    assert.equal(machineIn(state).reject(ErrorCodes.MALFORMED_MESSAGE).fatal, true);
  }
  assert.equal(machineIn("contributor").reject(ErrorCodes.MALFORMED_MESSAGE).fatal, false);
  assert.equal(machineIn("admin").reject(ErrorCodes.INVALID_INPUT).fatal, false);
});

test("another protocol version or a failed admin frame check ends any session", () => {
  assert.equal(machineIn("contributor").reject(ErrorCodes.VERSION_MISMATCH).fatal, true);
  assert.equal(machineIn("admin").reject(ErrorCodes.BAD_SIGNATURE, true).fatal, true);
  assert.equal(machineIn("admin").reject(ErrorCodes.BAD_SIGNATURE).fatal, false);
});

test("the peer's maxErrors-th rejected message ends its session, not one before", () => {
  const machine = machineIn("contributor", 3);
  assert.equal(machine.reject(ErrorCodes.WRONG_ROUND).fatal, false);
  assert.equal(machine.reject(ErrorCodes.WRONG_ROUND).fatal, false);
  assert.equal(machine.reject(ErrorCodes.WRONG_ROUND).fatal, true);
  assert.equal(machine.errors, 3);
  assert.throws(() => new SessionMachine(0), TypeError);
});

test("a contributor expects hello, then welcome, then round messages; errors at any open phase", () => {
  const machine = new PhaseMachine(CONTRIBUTOR_PHASES, "hello");
  const accepted = (phase: string) =>
    `${ALL_TYPES.filter((t) => machine.accepts(t))
      .sort()
      .join(",")}@${phase}`;
  assert.equal(accepted("hello"), "error,hello@hello");
  machine.transition("welcome");
  assert.equal(accepted("welcome"), "error,welcome@welcome");
  machine.transition("ready");
  assert.equal(
    accepted("ready"),
    "dkg.aborted,dkg.certificate,dkg.open,dkg.recovery,dkg.round1s,dkg.shares,error,log.checkpoint,refresh.deals,refresh.open,round.closed,round.commits,round.open,round.receipt,sign.package,sign.request@ready",
  );
  assert.throws(() => machine.transition("hello"), /illegal/);
  machine.transition("closed");
  assert.equal(
    ALL_TYPES.some((t) => machine.accepts(t)),
    false,
  );
});

test("an admin client accepts nothing but MACed frames once its session is ready, not even an error", () => {
  const machine = new PhaseMachine(ADMIN_PHASES, "hello");
  assert.equal(machine.accepts("error"), true);
  assert.throws(() => machine.transition("ready"), /illegal/, "no skipping the server's proof");
  machine.transition("auth");
  assert.equal(machine.accepts("admin.ready"), true);
  assert.equal(machine.accepts("admin.frame"), false);
  machine.transition("ready");
  assert.deepEqual(
    ALL_TYPES.filter((t) => machine.accepts(t)),
    ["admin.frame"],
  );
});
