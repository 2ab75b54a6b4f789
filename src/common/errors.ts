/** An error caused by an argument, option, file or size the caller passed. Its message names the op. */
export class PansegError extends Error {
  override name = 'PansegError';
}

/** Throws `op: message` as a PansegError. */
export function fail(op: string, message: string): never {
  throw new PansegError(`${op}: ${message}`);
}

/** Describes a received value for messages: `1.5 of type number`. */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (Array.isArray(v)) return `[${v.map((x) => (typeof x === 'number' ? String(x) : describe(x))).join(', ')}]`;
  if (typeof v === 'string') return `'${v}' of type string`;
  if (typeof v === 'object') return `an object of type ${(v as object).constructor?.name ?? 'Object'}`;
  return `${String(v)} of type ${typeof v}`;
}
