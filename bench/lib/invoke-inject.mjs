/**
 * The child of bench/invoke-instructions.ts: a Caxton server of the build in DIR/dist ([audit]
 * and [events] on, the audit-events suite's agent and scripted stand-in, not listening) driven
 * through `app.inject`, 10 invokes in flight: WARM invokes, then "WARM" on stderr and a wait for
 * the file SYNC.go, N invokes, "DONE" and a wait for SYNC.stop. The driver zeroes and dumps the
 * counters of the valgrind tool this runs under at those two points.
 *
 *   node bench/lib/invoke-inject.mjs DIR N SYNC     (WARM, default 2000)
 */
import { existsSync } from 'node:fs';
import { startInjectServer } from './inject-server.mjs';

const [dir, count, sync] = process.argv.slice(2);
const { run, close } = await startInjectServer(dir);
const handshake = async (tag, f) => {
  process.stderr.write(`${tag}\n`);
  while (!existsSync(f)) await new Promise((r) => setTimeout(r, 50));
};
await run(Number(process.env.WARM ?? 2000));
await handshake('WARM', `${sync}.go`);
await run(Number(count));
await handshake('DONE', `${sync}.stop`);
await close();
process.exit(0);
