/**
 * One driver per transport and mode, all behind one interface (driver.ts), so that the behaviour
 * scenarios (scenarios.case.ts) run unchanged against each: subscribe to a room, publish through the
 * transport's own publish path, send it malformed input, and read how a subscription ended in
 * the relay's terms. Adding a transport means adding one driver file and one line here.
 */
import { ConnectDriver } from "./connect-driver";
import type { Driver, Target } from "./driver";
import { SseDriver } from "./sse-driver";
import { WsDriver } from "./ws-driver";

export {
  type Capabilities,
  type Driver,
  describeEnd,
  type End,
  type EndCode,
  endFromClose,
  endFromConnect,
  endFromDisconnect,
  endFromErrorFrame,
  endFromHttp,
  type PublishResult,
  type Refusal,
  Refused,
  type SubscribeOptions,
  type Subscription,
  type Target,
  type Wire,
} from "./driver";

/** Every driver, in the order the suite runs them. */
export function allDrivers(target: Target): Driver[] {
  return [
    new WsDriver("ws-plain", "plain", target),
    new WsDriver("ws-json", "json", target),
    new WsDriver("ws-proto", "proto", target),
    new SseDriver(target),
    new ConnectDriver("connect-json", target),
    new ConnectDriver("connect-proto", target),
    new ConnectDriver("grpc-web", target),
  ];
}
