// Starting a worker thread from a module next to the caller, under tsx or from the compiled dist/.
import { Worker } from 'node:worker_threads';

/**
 * A Worker running `<name>.js` beside `callerUrl` (the caller's import.meta.url) in dist/; under tsx,
 * `<name>.ts` behind a tiny bootstrap, because on Node 20 tsx registers its loader only on the main
 * thread (`--import tsx` in execArgv does not reach workers).
 */
export function spawnSiblingWorker(callerUrl: string, name: string, workerData: unknown): Worker {
  if (!callerUrl.endsWith('.ts')) return new Worker(new URL(`./${name}.js`, callerUrl), { workerData });
  const script = new URL(`./${name}.ts`, callerUrl).href;
  const api = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(script)}); })`;
  return new Worker(boot, { eval: true, workerData });
}
