/**
 * What every route handler gets from the router: the Worker's bindings, the settings parsed once
 * for the request, and, on `/rooms/:room/*`, the room name already checked.
 */
import type { Context } from "hono";
import type { RoomName } from "../protocol/rules";
import type { Settings } from "../settings";
import type { Env } from "./env";

export interface RelayEnv {
  Bindings: Env;
  Variables: { settings: Settings; room: RoomName };
}

export type RelayContext = Context<RelayEnv>;
