// Optional dependencies (onnxruntime-node, onnxruntime-web) are imported lazily where they are used,
// so panseg installs and runs without them; a missing one is answered with one line saying how to add it.
import { fail } from './errors.js';

/**
 * Imports the optional package `name` for `op`, or throws `op: <name> is not installed ...` with the
 * install command. Other load failures (a broken native binary) keep their first line.
 * @example const ort = await importOptional<typeof import('onnxruntime-node')>('onnxruntime-node', 'OnnxSegmenter');
 */
export async function importOptional<T>(name: string, op: string, why = 'to run ONNX models'): Promise<T> {
  try {
    return (await import(name)) as T;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const missing = err?.code === 'ERR_MODULE_NOT_FOUND' || err?.code === 'MODULE_NOT_FOUND';
    if (missing && String(err.message).includes(name)) {
      return fail(op, `${name} is not installed; panseg needs it ${why}: install it with 'npm install ${name}' (an optional dependency of panseg)`);
    }
    return fail(op, `cannot load ${name} (${String(err?.message ?? e).split('\n')[0]}); reinstall it with 'npm install ${name}'`);
  }
}
