/** JSON for error messages: bigints as strings, indented by one space. Internal to the clients. */
export const jsonish = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? String(x) : x), 1);
