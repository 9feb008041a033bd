/**
 * The relay's Worker: the Hono router (src/worker) and the Room Durable Object (src/room).
 * Transports live in src/transports, one folder each; the one schema in proto/relay/v1.
 */
// First: how protobuf-es decodes strings, before anything decodes one.
import "./protocol/text-encoding";
import { app } from "./worker/app";

export { Room } from "./room/room";

export default app;
