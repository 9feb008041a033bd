/**
 * A forward HTTP proxy between one browser context and the relay, which a test can cut: cut()
 * resets every connection through it (streams, WebSockets, keep-alive sockets) and refuses new ones
 * until restore(). With the context's setOffline(true) beside it, that is what losing the network
 * does to a page, which Chromium's offline emulation alone does not do: it fails new requests but
 * leaves open WebSockets, SSE responses and fetch streams connected (a WebSocket's frames are held
 * until the network is back; a stream keeps flowing).
 *
 * Chromium sends plain http:// requests to a proxy in absolute form and tunnels ws:// with CONNECT;
 * both are handled. Only ever 127.0.0.1.
 */
import { createServer, request, type Server } from "node:http";
import { connect, type Socket } from "node:net";

export interface CutProxy {
  /** http://127.0.0.1:<port>, for a context's `proxy.server`. */
  url: string;
  /** Connections through the proxy so far (to check a context really uses it). */
  connections(): number;
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function startCutProxy(): Promise<CutProxy> {
  const sockets = new Set<Socket>();
  let down = false;
  let count = 0;
  const seen = new WeakSet<Socket>();
  const track = (s: Socket) => {
    // An upstream keep-alive socket serves many requests: listen to it once.
    if (seen.has(s)) return;
    seen.add(s);
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
    s.on("error", () => {});
  };

  const server: Server = createServer((req, res) => {
    const target = new URL(req.url ?? "/");
    const upstream = request(
      {
        host: target.hostname,
        port: target.port,
        path: `${target.pathname}${target.search}`,
        method: req.method,
        headers: req.headers,
      },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on("socket", track);
    upstream.on("error", () => res.destroy());
    req.pipe(upstream);
  });
  server.on("connection", (s: Socket) => {
    if (down) {
      s.destroy();
      return;
    }
    count++;
    track(s);
  });
  server.on("connect", (req, client: Socket, head: Buffer) => {
    const [host, port] = (req.url ?? "").split(":");
    const upstream = connect(Number(port), host, () => {
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    track(upstream);
    upstream.on("close", () => client.destroy());
    client.on("close", () => upstream.destroy());
  });

  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    connections: () => count,
    cut() {
      down = true;
      // A reset, not a polite close: the page sees its connections fail, as when a network goes away.
      for (const s of sockets) s.resetAndDestroy();
    },
    restore() {
      down = false;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
