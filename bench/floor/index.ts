/**
 * The benchmark's floors: the least a Durable Object can do for the same workload, run by the
 * same bench under the same runtime as the relay.
 * - `Floor`: every WebSocket frame is broadcast as it is to the room's hibernatable WebSockets.
 * - `FloorSql`: the same, after inserting the frame into SQLite (the cost of a durable log).
 * `GET /<floor|floor-sql>/:room/ws` upgrades into that room's object; `POST /publish` is the HTTP
 * floor (a Worker's answer, no object).
 */
import { DurableObject } from "cloudflare:workers";

interface Env {
  FLOOR: DurableObjectNamespace<Floor>;
  FLOOR_SQL: DurableObjectNamespace<FloorSql>;
}

export class Floor extends DurableObject<Env> {
  override async fetch(): Promise<Response> {
    const { 0: client, 1: server } = new WebSocketPair();
    this.ctx.acceptWebSocket(server);
    return new Response(null, { status: 101, webSocket: client });
  }

  protected broadcast(message: string | ArrayBuffer): void {
    for (const ws of this.ctx.getWebSockets()) {
      try {
        ws.send(message);
      } catch {
        // Closing.
      }
    }
  }

  override webSocketMessage(_ws: WebSocket, message: string | ArrayBuffer): void {
    this.broadcast(message);
  }

  override webSocketClose(ws: WebSocket, code: number, reason: string): void {
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code, reason);
    } catch {
      // Already closed.
    }
  }
}

export class FloorSql extends Floor {
  #seq: number;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS log (seq INTEGER PRIMARY KEY, text TEXT NOT NULL)");
    this.#seq = ctx.storage.sql.exec<{ n: number }>("SELECT coalesce(max(seq), 0) AS n FROM log").one().n;
  }

  override webSocketMessage(_ws: WebSocket, message: string | ArrayBuffer): void {
    this.#seq++;
    this.ctx.storage.sql.exec("INSERT INTO log (seq, text) VALUES (?, ?)", this.#seq, String(message));
    this.broadcast(message);
  }
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const [, kind, room] = new URL(request.url).pathname.split("/");
    if (kind === "healthz") return Response.json({ ok: true });
    // The HTTP floor: a Worker that answers a POST without touching any Durable Object.
    if (kind === "publish" && request.method === "POST") return new Response(await request.text(), { status: 201 });
    if (request.headers.get("Upgrade") !== "websocket" || !room) return new Response("not found", { status: 404 });
    const ns = kind === "floor-sql" ? env.FLOOR_SQL : env.FLOOR;
    return ns.getByName(room).fetch(request);
  },
} satisfies ExportedHandler<Env>;
