/**
 * The snapshot store behind subscribe()/getSnapshot(): one immutable object, replaced only when a
 * field changes, so useSyncExternalStore (React), Svelte stores and Vue refs can compare it by
 * identity and never render for nothing.
 */
import type { ClientSnapshot } from "../types.js";

export interface Store {
  get(): ClientSnapshot;
  subscribe(listener: () => void): () => void;
  /** Applies `patch`; true (and listeners told) when something changed. */
  set(patch: Partial<ClientSnapshot>): boolean;
}

export function store(initial: ClientSnapshot, report: (e: unknown) => void): Store {
  let snapshot = Object.freeze(initial);
  const listeners = new Set<() => void>();
  return {
    get: () => snapshot,
    subscribe(listener) {
      // A wrapper per subscription: the same function subscribed twice is two subscriptions.
      const entry = () => listener();
      listeners.add(entry);
      return () => void listeners.delete(entry);
    },
    set(patch) {
      let changed = false;
      for (const k in patch) {
        const key = k as keyof ClientSnapshot;
        if (patch[key] !== snapshot[key]) changed = true;
      }
      if (!changed) return false;
      snapshot = Object.freeze({ ...snapshot, ...patch });
      for (const l of [...listeners]) {
        try {
          l();
        } catch (e) {
          report(e);
        }
      }
      return true;
    },
  };
}
