/**
 * The Worker's environment: its bindings (the Room namespace) beside the `[vars]` settings, which
 * settings.ts parses. Only the Worker side sees bindings; the room reads its settings alone.
 */
import type { Room } from "../room/room";
import type { Vars } from "../settings";

export interface Env extends Vars {
  ROOM: DurableObjectNamespace<Room>;
}
