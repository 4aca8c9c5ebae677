/**
 * Runs `next` on a value that is there now (one node) or later (Redis), so the single-node
 * path stays synchronous: no promise, no microtask, nothing the socket can close during.
 */
export function settle<T>(value: T | Promise<T>, next: (value: T) => void): void | Promise<void> {
  return value instanceof Promise ? value.then(next) : next(value);
}
