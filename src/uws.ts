/**
 * Loads the first native uWebSockets.js build that loads on this Node.js and libc, and refuses the
 * pure-JS fallback: one of the republishes quietly swaps in a slow Node implementation when its
 * binary does not load, which would void every performance promise of this server.
 *
 * uWebSockets.js is not on the npm registry under its own name; two republishes cover today's Node:
 * 20.57.0 has binaries for Node 20, 22, 24 and 25 but needs glibc 2.38, 20.30.0 runs on any glibc but
 * only on Node 16 to 20. The newest is tried first. The code compiles against the 20.57.0 typings.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

type UwsModule = typeof import('uws-20.57.0');

export type Uws = Omit<UwsModule, 'App' | 'SSLApp'> & {
  App(): TemplatedApp;
  SSLApp(options: import('uws-20.57.0').AppOptions): TemplatedApp;
  /** Listen option: bind without SO_REUSEPORT (the typings declare it only inside an enum that the binary lacks). */
  LIBUS_LISTEN_EXCLUSIVE_PORT: number;
};

/** One republish of uWebSockets.js: the dependency name it is installed under and where its binaries are. */
export interface UwsBuild {
  /** The name in package.json's dependencies. */
  readonly dependency: string;
  /** The uWebSockets.js version it carries. */
  readonly version: string;
  /** The folder of `uws_<platform>_<arch>_<abi>.node` inside the package. */
  readonly binaries: string;
}

/** Builds in the order they are tried: the newest first. */
export const BUILDS: readonly UwsBuild[] = [
  { dependency: 'uws-20.57.0', version: '20.57.0', binaries: '.' },
  { dependency: 'uws-20.30.0', version: '20.30.0', binaries: 'binaries' },
];

/** What works where, printed when no build loads (README "Requirements" has the same table). */
export const WHAT_WORKS =
  'Node.js 20, 22 or 24 with glibc 2.38 or newer (Debian 13, Ubuntu 24.04, RHEL 10, Fedora 39+), or Node.js 20 with any glibc (Debian 12, Ubuntu 22.04, RHEL 9), on linux x64/arm64, macOS or Windows x64; not musl (Alpine)';

/** The build that loaded, as start-up logs it and pws_build_info labels it. */
export interface LoadedUws {
  readonly module: Uws;
  readonly build: UwsBuild;
  /** e.g. `uWebSockets.js 20.57.0 (native, linux-x64, ABI 137)` */
  readonly description: string;
}

/** The installed folder of a dependency, found without require.resolve (20.57.0's `exports` hides package.json). */
function packageDir(name: string): string | undefined {
  for (const dir of require.resolve.paths(name) ?? []) {
    if (existsSync(join(dir, name, 'package.json'))) return join(dir, name);
  }
  return undefined;
}

function binaryName(): string {
  return `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
}

/** The glibc this process runs on, or `no glibc` (musl, macOS, Windows). */
export function glibcVersion(): string {
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  return header?.glibcVersionRuntime ? `glibc ${header.glibcVersionRuntime}` : 'no glibc';
}

/**
 * Loads the first build of `builds` whose native binary loads here, or throws one line naming this
 * Node, its ABI, the platform and libc, why each build failed, and what works instead.
 * `dirOf` finds a build's installed folder (tests point it at copies).
 */
export function loadNative(builds: readonly UwsBuild[] = BUILDS, dirOf: (build: UwsBuild) => string | undefined = (b) => packageDir(b.dependency)): LoadedUws {
  const failures: string[] = [];
  for (const build of builds) {
    const dir = dirOf(build);
    if (dir === undefined) {
      failures.push(`${build.version}: not installed`);
      continue;
    }
    try {
      const module = require(join(dir, build.binaries, binaryName())) as Uws;
      const description = `uWebSockets.js ${build.version} (native, ${process.platform}-${process.arch}, ABI ${process.versions.modules})`;
      return { module, build, description };
    } catch (err) {
      failures.push(`${build.version}: ${firstLine(err)}`);
    }
  }
  throw new Error(
    `no native uWebSockets.js build loads on Node.js ${process.version} (ABI ${process.versions.modules}), ${process.platform}-${process.arch}, ${glibcVersion()} ` +
      `(${failures.join('; ')}). Refusing the slow pure-JS fallback. Works: ${WHAT_WORKS}.`,
  );
}

function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  if (/Cannot find module/.test(message)) return `no binary for ABI ${process.versions.modules}`;
  const glibc = /version `(GLIBC_[\d.]+)' not found/.exec(message);
  if (glibc) return `needs ${glibc[1]}`;
  return message.split('\n')[0];
}

// uWS reads this once, when its binary loads. 20.57.0 answers a request head over 4 KB with an HTML
// 431; a browser sends every cookie of the site with the WebSocket upgrade, so 4 KB turns real
// clients away (20.30.0 took heads of 20 KB). An operator's own setting wins.
process.env.UWS_HTTP_MAX_HEADERS_SIZE ??= '16384';

/** The native uWebSockets.js build this process runs on. */
export const loaded = loadNative();
export const uws = loaded.module;

/** uWS's app, with listen() taking both a host and listen options, which the typings lack. */
export type TemplatedApp = import('uws-20.57.0').TemplatedApp & {
  listen(host: string, port: number, options: number, cb: (listenSocket: import('uws-20.57.0').us_listen_socket | false) => void): TemplatedApp;
};
export type { WebSocket, WebSocketBehavior, HttpRequest, HttpResponse, us_listen_socket, us_socket_context_t } from 'uws-20.57.0';
