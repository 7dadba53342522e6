/**
 * `caxton serve` through V8's code cache (ADR 0073). Node 20 has no compile cache for ES modules,
 * so the build also writes the serve path as one CommonJS bundle, dist/cli/serve.cjs; the entry
 * compiles it with `vm.Script` and the `cachedData` an earlier start saved just after its first
 * answer, when the functions compiled lazily up to it are compiled. Without the cache the bundle
 * costs about what the ES module bundle does.
 *
 * This module runs in the entry before anything of Caxton is loaded, so it imports Node's
 * built-ins only: a module imported here and again inside the bundle would exist twice.
 *
 * The cache file, `<data_dir>/code-cache/serve.bin`, is trusted only when the directory is a real
 * directory (not a link) owned by this user with no group or other permission bits, and the file
 * is a regular file (opened without following links) owned by this user, mode 0600. It starts with
 * a magic, the key (SHA-256 of the bundle, `process.version`, the architecture and the Node and V8
 * flags) and the SHA-256 of the data after them; V8 gets the data only when all three match. A
 * new file is written to a temporary name (exclusive create, 0600) and renamed over the old one.
 * Beside it, `serve.id` records the bundle's SHA-256 and the identity of both files as last
 * checked (code-cache-check.ts): a start that finds them unchanged takes the bundle's SHA-256 from
 * it and does not hash the cache's data again.
 *
 * Anything that prevents a safe cache (no bundle, no POSIX user ids, a data directory this module
 * cannot find from the arguments without loading the configuration, a directory not private, the
 * bundle failing to compile or to load) sends the start to the ES module bundle, as every other
 * command goes. A cache that is missing, corrupt or rejected by V8 only costs the compile: the
 * bundle runs without it and the cache is written again after the first answer.
 *
 * A project without a usable cache of its own starts from the one the build ships beside the
 * bundle (dist/cli/serve.bin, scripts/build-code-cache.mjs), so a first start costs what a restart
 * does; it still writes its own after its first answer. The shipped file is trusted as the bundle
 * is: owned by this user or root, writable by nobody else.
 * `CAXTON_CODE_CACHE=off` turns it all off, `CAXTON_CODE_CACHE=project` uses the project's cache
 * only; `CAXTON_CODE_CACHE_LOG=1` reports each decision on stderr.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  existsSync,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';
import { fdIdentity, readCheckRecord, writeCheckRecord, type CheckRecord } from './code-cache-check.js';

/** What the serve command gets when it runs from the bundle. */
export interface CodeCacheHook {
  /** The data directory the cache was looked for in (the serve command checks it is the configured one). */
  readonly dataDir: string;
  /** Writes the cache now, once, if this start did not run from a valid one; never throws. */
  save(): void;
}

/** The ES module entry's `import()`: the bundle's dynamic imports are routed to it. */
export type Importer = (specifier: string) => Promise<unknown>;

type RunCli = (argv: readonly string[], codeCache?: CodeCacheHook) => Promise<void>;

const MAGIC = Buffer.from('CAXTONCC1\n');
const HEADER = MAGIC.length + 64;
/** Far above the ~3 MiB a cache takes; a larger file is not read. */
const MAX_BYTES = 64 * 1024 * 1024;
/**
 * The first line of the bundle: the build writes it wrapped in the function it runs in, CommonJS's
 * parameters and its own `_cxImp`, which its `import()`s call (scripts/build-bundle.mjs). So the
 * file's text is the script's source as it is: V8 compiles the external string `latin1` makes,
 * where a wrapper added here would make V8 copy all 4 MiB into its heap.
 */
const WRAP_HEAD = '(function (exports, require, module, __filename, __dirname, _cxImp) {\n';

function log(message: string, env: NodeJS.ProcessEnv): void {
  if (env.CAXTON_CODE_CACHE_LOG === '1') process.stderr.write(`caxton code cache: ${message}\n`);
}

/** The options of `caxton serve` that take a value (addServerConfigOptions in commands/serve-command.ts). */
const SERVE_VALUE_OPTIONS = new Set([
  '--config',
  '--host',
  '-p',
  '--port',
  '--metrics-port',
  '--data-dir',
  '--agents-dir',
  '--log-level',
]);
const GLOBAL_VALUE_OPTIONS = new Set(['--server', '--profile']);

/**
 * The options of a `caxton serve` command line (`argv` after the node binary and script), or
 * undefined for anything else, for help, or for an argument this reader does not know (the ES
 * module path then runs, and commander reports it).
 */
export function serveOptions(argv: readonly string[]): Map<string, string> | undefined {
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--json') continue;
    if (GLOBAL_VALUE_OPTIONS.has(a)) {
      i++;
      continue;
    }
    if (GLOBAL_VALUE_OPTIONS.has(a.split('=')[0]!)) continue;
    break;
  }
  if (argv[i] !== 'serve') return undefined;
  const opts = new Map<string, string>();
  for (i++; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.indexOf('=');
    const name = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a;
    if (!SERVE_VALUE_OPTIONS.has(name)) return undefined;
    let value: string | undefined;
    if (name !== a) value = a.slice(eq + 1);
    else value = argv[++i];
    if (value === undefined) return undefined;
    opts.set(name, value);
  }
  return opts;
}

/**
 * The value of a top-level `data_dir = "..."` (or `'...'`) in a caxton.toml: undefined when there
 * is none, null when there is one this reader cannot read for certain (escapes, other forms).
 */
export function topLevelDataDir(toml: string): string | undefined | null {
  for (const raw of toml.split(/\r?\n/)) {
    const line = raw.trim();
    if (line.startsWith('[')) return undefined;
    if (!/^["']?data_dir\b/.test(line)) continue;
    const m = /^data_dir\s*=\s*(?:"([^"\\]*)"|'([^']*)')\s*(?:#.*)?$/.exec(line);
    return m ? (m[1] ?? m[2]!) : null;
  }
  return undefined;
}

/**
 * The data directory `caxton serve` will use, found as the configuration loader finds it
 * (src/config/load.ts: flag, then CAXTON_DATA_DIR, then the file's `data_dir`, else `data` beside
 * the file or in the working directory), reading only the one key of the file. Undefined when it
 * cannot be known without the loader. The serve command compares it with the loaded configuration
 * before it saves the cache.
 */
export function serveDataDir(opts: Map<string, string>, env: NodeJS.ProcessEnv, cwd: string): string | undefined {
  const flag = opts.get('--data-dir');
  if (flag !== undefined) return resolve(cwd, flag);
  if (env.CAXTON_DATA_DIR) return resolve(cwd, env.CAXTON_DATA_DIR);
  const fileArg =
    opts.get('--config') ?? (env.CAXTON_CONFIG || (existsSync(join(cwd, 'caxton.toml')) ? 'caxton.toml' : undefined));
  if (fileArg === undefined) return resolve(cwd, 'data');
  const file = resolve(cwd, fileArg);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const v = topLevelDataDir(text);
  if (v === null) return undefined;
  return v === undefined ? resolve(dirname(file), 'data') : isAbsolute(v) ? v : resolve(dirname(file), v);
}

/** True when `dir` is a real directory owned by this user with no group or other permissions. */
function privateDir(dir: string): boolean {
  try {
    const s = lstatSync(dir);
    return s.isDirectory() && !s.isSymbolicLink() && s.uid === process.getuid!() && (s.mode & 0o077) === 0;
  } catch {
    return false;
  }
}

function sha256(...parts: (string | Buffer)[]): Buffer {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
}

/**
 * Who may have written a cache file V8 is given: a project's is this user's alone (0600); the one
 * the build ships beside the bundle is trusted as the bundle is, whoever installed it (this user or
 * root), as long as nobody else can write it: whoever can replace it can replace the bundle too.
 */
export type Trust = 'private' | 'shipped';

function trusted(s: { uid: number; mode: number }, trust: Trust): boolean {
  if (trust === 'private') return s.uid === process.getuid!() && (s.mode & 0o777) === 0o600;
  return (s.uid === process.getuid!() || s.uid === 0) && (s.mode & 0o022) === 0;
}

/** The cache's data, or a reason it is not used. */
export function readCache(file: string, key: Buffer, trust: Trust = 'private'): Buffer | string {
  const r = readCacheFile(file, key, trust);
  return typeof r === 'string' ? r : r.data;
}

/** A cache file read and checked, with its identity (code-cache-check.ts) as it was read. */
interface ReadCache {
  data: Buffer;
  identity: string;
}

/**
 * Reads and checks a cache file; `checked` is the identity of the file as a start last found it
 * whole (its record): a file that still has it is not hashed again.
 */
function readCacheFile(file: string, key: Buffer, trust: Trust, checked?: string): ReadCache | string {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'none yet' : 'not readable';
  }
  try {
    const s = fstatSync(fd);
    if (!s.isFile() || !trusted(s, trust)) return trust === 'private' ? 'not a private file' : 'writable by others';
    if (s.size < HEADER || s.size > MAX_BYTES) return 'corrupt (size)';
    const identity = fdIdentity(fd);
    const buf = readFileSync(fd);
    if (!buf.subarray(0, MAGIC.length).equals(MAGIC)) return 'corrupt (magic)';
    if (!buf.subarray(MAGIC.length, MAGIC.length + 32).equals(key)) return 'for another bundle, Node or flags';
    const data = buf.subarray(HEADER);
    if (identity !== checked && !buf.subarray(MAGIC.length + 32, HEADER).equals(sha256(data))) return 'corrupt (hash)';
    return { data, identity };
  } finally {
    closeSync(fd);
  }
}

const PRELOAD = /^(--import|--require|-r)$/;

/**
 * The flags a cache depends on: all but the preloads (`--import`, `--require`), which load other
 * modules before the bundle and change nothing of how V8 compiles it (V8 checks its own flags in
 * the data as well), so a start with an APM agent or a measuring hook preloaded still fits.
 */
function keyFlags(args: readonly string[]): string[] {
  const kept: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (PRELOAD.test(a)) i++;
    else if (!PRELOAD.test(a.split('=')[0]!)) kept.push(a);
  }
  return kept;
}

/** The key a cache is kept under: the bundle, the Node version and architecture, the flags. */
export function cacheKey(
  bundle: Buffer,
  env: NodeJS.ProcessEnv,
  execArgv: readonly string[] = process.execArgv,
): Buffer {
  return keyOf(sha256(bundle), env, execArgv);
}

/** `cacheKey` of the bundle whose SHA-256 is `bundleSha256`. */
function keyOf(bundleSha256: Buffer, env: NodeJS.ProcessEnv, execArgv: readonly string[] = process.execArgv): Buffer {
  const options = (env.NODE_OPTIONS ?? '').split(/\s+/).filter(Boolean);
  const flags = [...keyFlags(execArgv), keyFlags(options).join(' ')].join('\0');
  return sha256(bundleSha256, '\0', process.version, '\0', process.arch, '\0', flags);
}

/** A cache file's bytes: the magic, the key, the data's SHA-256, the data. */
export function cacheFileBytes(key: Buffer, data: Buffer): Buffer {
  return Buffer.concat([MAGIC, key, sha256(data), data]);
}

/**
 * Writes `data` under `key` to `file` atomically, in a private directory; the identity of the file
 * written (as renamed into place), or undefined if the directory is not private.
 */
function writeCache(dir: string, file: string, key: Buffer, data: Buffer): string | undefined {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (!privateDir(dir)) return undefined;
  const tmp = join(dir, `.serve.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    try {
      const b = cacheFileBytes(key, data);
      let off = 0;
      while (off < b.length) off += writeSync(fd, b, off);
      renameSync(tmp, file);
      // After the rename, which changes the file's status-change time.
      return fdIdentity(fd);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      // already gone
    }
    throw e;
  }
}

/**
 * The bundle's SHA-256: the one a record holds if the record is of this bundle file as it is now
 * (code-cache-check.ts), else computed.
 */
function bundleSha256(bundle: string, identity: string, bytes: Buffer, records: (CheckRecord | undefined)[]): Buffer {
  const r = records.find((c) => c?.bundle === bundle && c.bundleIdentity === identity);
  return r ? Buffer.from(r.bundleSha256, 'hex') : sha256(bytes);
}

/**
 * Checks the cache the build ships (`cacheFile`, made with no flags) against the bundle beside it
 * and writes their record there (0644), so that starts of this build do not hash them again
 * (scripts/build-code-cache.mjs). Throws when the cache does not check.
 */
export function recordShippedCache(cacheFile: string): void {
  const bundle = join(dirname(cacheFile), 'serve.cjs');
  const fd = openSync(bundle, constants.O_RDONLY);
  let bundleIdentity: string;
  let bytes: Buffer;
  try {
    bundleIdentity = fdIdentity(fd);
    bytes = readFileSync(fd);
  } finally {
    closeSync(fd);
  }
  const hash = sha256(bytes);
  const read = readCacheFile(cacheFile, keyOf(hash, {}, []), 'shipped');
  if (typeof read === 'string') throw new Error(`${cacheFile}: ${read}`);
  writeCheckRecord(
    dirname(cacheFile),
    { bundle, bundleIdentity, bundleSha256: hash.toString('hex'), cacheIdentity: read.identity },
    0o644,
  );
}

function isRecordOf(a: CheckRecord, b: CheckRecord): boolean {
  return (
    a.bundle === b.bundle &&
    a.bundleIdentity === b.bundleIdentity &&
    a.bundleSha256 === b.bundleSha256 &&
    a.cacheIdentity === b.cacheIdentity
  );
}

/**
 * Runs `caxton serve` from the CommonJS bundle with the code cache, if `argv` is a serve command
 * line and everything the cache needs is there; otherwise returns false before anything of the
 * bundle has run, and the caller runs the ES module CLI.
 */
export function serveFromCodeCache(
  argv: readonly string[],
  importer: Importer,
  env: NodeJS.ProcessEnv = process.env,
): boolean {
  const opts = serveOptions(argv.slice(2));
  if (!opts) return false;
  const off = (why: string) => {
    log(`not used: ${why}`, env);
    return false;
  };
  if (/^(off|0|false|no)$/i.test(env.CAXTON_CODE_CACHE ?? '')) return off('CAXTON_CODE_CACHE');
  if (typeof process.getuid !== 'function') return off('no POSIX user ids');
  if (Number(process.versions.node.split('.')[0]) < 20) return off(`Node ${process.version}`);
  const bundle = fileURLToPath(new URL('./serve.cjs', import.meta.url));
  let bytes: Buffer;
  let bundleIdentity: string;
  try {
    const fd = openSync(bundle, constants.O_RDONLY);
    try {
      bundleIdentity = fdIdentity(fd);
      bytes = readFileSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    return off(`no ${bundle}`);
  }
  const dataDir = serveDataDir(opts, env, process.cwd());
  if (!dataDir) return off('the data directory is not known before the configuration is loaded');
  const dir = join(dataDir, 'code-cache');
  const file = join(dir, 'serve.bin');
  if (existsSync(dir) && !privateDir(dir)) return off(`${dir} is not a private directory of this user`);
  const dirExists = existsSync(dir);
  const ownRecord = dirExists ? readCheckRecord(join(dir, 'serve.id'), (s) => trusted(s, 'private')) : undefined;
  const useShipped = !/^project$/i.test(env.CAXTON_CODE_CACHE ?? '');
  const shippedRecord =
    useShipped && !ownRecord
      ? readCheckRecord(join(dirname(bundle), 'serve.id'), (s) => trusted(s, 'shipped'))
      : undefined;
  const bundleHash = bundleSha256(bundle, bundleIdentity, bytes, [ownRecord, shippedRecord]);
  const key = keyOf(bundleHash, env);
  const own = dirExists ? readCacheFile(file, key, 'private', ownRecord?.cacheIdentity) : 'none yet';
  // A project without a cache of its own starts from the one the build made, if it fits this Node.
  const shipped = join(dirname(bundle), 'serve.bin');
  const fallback =
    typeof own === 'string' && useShipped
      ? readCacheFile(shipped, key, 'shipped', shippedRecord?.cacheIdentity)
      : undefined;
  const read = fallback !== undefined && typeof fallback !== 'string' ? fallback : own;
  const cached = typeof read === 'string' ? read : read.data;
  const from = read === fallback ? shipped : file;

  let script: Script;
  let runCli: RunCli;
  try {
    if (!bytes.subarray(0, WRAP_HEAD.length).equals(Buffer.from(WRAP_HEAD))) return off('the bundle is not wrapped');
    // The build writes it in ASCII (scripts/build-bundle.mjs): latin1 reads it as it is, fast.
    script = new Script(bytes.toString('latin1'), {
      filename: bundle,
      ...(typeof cached !== 'string' && { cachedData: cached }),
    });
    const module = { exports: {} as { runCli?: RunCli } };
    const wrapper = script.runInThisContext() as (...a: unknown[]) => void;
    wrapper.call(module.exports, module.exports, createRequire(bundle), module, bundle, dirname(bundle), importer);
    if (typeof module.exports.runCli !== 'function') return off('the bundle exports no runCli');
    runCli = module.exports.runCli;
  } catch (e) {
    return off(`the bundle failed to load: ${e instanceof Error ? e.message : String(e)}`);
  }
  const valid = typeof cached !== 'string' && !script.cachedDataRejected;
  // As src/server/startup-marks.ts writes it (that module is inside the bundle, this is not).
  if (env.CAXTON_STARTUP_TRACE === '1') {
    const u = process.cpuUsage();
    process.stderr.write(
      `caxton startup: bundle loaded ${performance.now().toFixed(1)} ${((u.user + u.system) / 1000).toFixed(1)}\n`,
    );
  }
  const used = from === file || typeof own !== 'string' ? `used ${from}` : `used ${from} (${file}: ${own})`;
  log(valid ? used : `compiled without: ${typeof cached === 'string' ? cached : 'rejected by V8'}`, env);
  // Started from the shipped cache, the project still gets its own after the first answer: it
  // holds what this project's configuration compiled, which the build's sample start did not run.
  let saved = valid && from === file;
  const record = (cacheIdentity: string): CheckRecord => ({
    bundle,
    bundleIdentity,
    bundleSha256: bundleHash.toString('hex'),
    cacheIdentity,
  });
  // The project's own cache, read whole, with no record of it as it is now: one is written.
  const unrecorded =
    saved && typeof own !== 'string' && !(ownRecord && isRecordOf(ownRecord, record(own.identity)))
      ? own.identity
      : undefined;
  const hook: CodeCacheHook = {
    dataDir,
    save() {
      try {
        if (saved) {
          if (unrecorded !== undefined) writeCheckRecord(dir, record(unrecorded));
          return;
        }
        saved = true;
        const data = script.createCachedData();
        const identity = writeCache(dir, file, key, data);
        if (identity !== undefined) writeCheckRecord(dir, record(identity));
        log(identity !== undefined ? `wrote ${file} (${data.length} bytes)` : `${dir} is not private`, env);
      } catch (e) {
        log(`not written: ${e instanceof Error ? e.message : String(e)}`, env);
      }
    },
  };
  runCli(argv, hook).catch(crashed);
  return true;
}

/**
 * What the entry does with an error `runCli` did not handle (its own failures it reports and exits
 * with): a bug, so the stack goes to stderr for the report, and the exit code is 1.
 */
export function crashed(e: unknown): void {
  process.stderr.write(`error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
}
