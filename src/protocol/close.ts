/** Closing WebSockets: the codes that may go on the wire, and a close that never throws. */

/**
 * Whether a close code may be sent in a close frame (RFC 6455, 7.4): 1000-1003, 1007-1014 and
 * 3000-4999. 1005, 1006 and 1015 only report what happened locally; the rest are reserved.
 */
export function isSendableCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

/**
 * The code to answer a peer's close frame with: its own code when it may be sent, 1000 when the
 * peer sent none (1005), and 1002 (protocol error) for a code no endpoint may send (1006 too: a
 * peer that sent it broke the protocol, and one whose connection broke hears no answer anyway).
 */
export function closeReplyCode(received: number): number {
  if (received === 1005) return 1000;
  return isSendableCloseCode(received) ? received : 1002;
}

/**
 * Answers a WebSocket upgrade by accepting it and closing it at once with `code`: how a refusal
 * reaches a browser, which cannot read the status of a refused upgrade. `protocol`, the
 * subprotocol the client offered, is confirmed; without it a browser drops the connection before
 * it reads the close.
 */
export function closedUpgrade(code: number, reason: string, protocol?: string): Response {
  const { 0: client, 1: server } = new WebSocketPair();
  server.accept();
  closeSocket(server, code, reason);
  const headers: HeadersInit = protocol ? { "Sec-WebSocket-Protocol": protocol } : {};
  return new Response(null, { status: 101, webSocket: client, headers });
}

/** Closes `ws` with `code` and `reason` (cut to the 123 bytes a close frame allows), tolerating a socket already closed. */
export function closeSocket(ws: WebSocket, code: number, reason: string): void {
  try {
    ws.close(isSendableCloseCode(code) ? code : 1000, reason.slice(0, 120));
  } catch {
    // Already closed.
  }
}
