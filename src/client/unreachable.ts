/**
 * What to check when a dkeygen server cannot be reached or answers on the wrong port: the URL that
 * was tried, whether `dkeygen server` runs there, and which of its two ports the command wants
 * (the WebSocket port, --listen, default 7420, for contributors and admins; the distribution
 * server, --http-listen, default 7421, for requesting clients). `dkeygen server` prints both at
 * its start ("listening" and "distribution").
 */

export type ServerPort = "websocket" | "distribution";

const PORTS: Record<ServerPort, string> = {
  websocket: "its WebSocket port (--listen, default 7420; `dkeygen server` prints it as listening)",
  distribution:
    "its distribution server (--http-listen, default 7421; `dkeygen server` prints it as distribution)",
};

/** A hint for a connection that failed before any answer (refused, unknown host, ...). */
export function unreachableHint(cause: unknown, url: string, port: ServerPort): string | undefined {
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  // An HTTP answer to a WebSocket upgrade: an HTTP server, not the WebSocket port.
  const status = (cause as { statusCode?: unknown } | undefined)?.statusCode;
  if (port === "websocket" && typeof status === "number") {
    return `it answered HTTP ${status}. ${wrongPortHint(url, "websocket")}`;
  }
  if (code === "ECONNREFUSED") {
    return `nothing listens at ${url} (ECONNREFUSED): is \`dkeygen server\` running, and is this ${PORTS[port]}?`;
  }
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") {
    return `the host of ${url} is not known: check the URL.`;
  }
  return undefined;
}

/** A hint for an answer from the other port of a dkeygen server. */
export function wrongPortHint(url: string, wanted: ServerPort): string {
  return wanted === "distribution"
    ? `${url} answered like a WebSocket endpoint: this looks like the server's WebSocket port, for contributors and admins; requesting clients use ${PORTS.distribution}.`
    : `${url} did not accept a WebSocket connection: if it is the server's distribution server (HTTP), contributors and admins use ${PORTS.websocket}.`;
}
