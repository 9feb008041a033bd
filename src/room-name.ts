/** Room names: 1-64 characters of URL-safe, unreserved characters (../shared/DESIGN.md). */
export const ROOM_NAME = /^[A-Za-z0-9._~-]{1,64}$/;

/** True for a valid room name. Anything else is a 400 and never reaches a Durable Object. */
export function isRoomName(name: string): boolean {
  return ROOM_NAME.test(name);
}
