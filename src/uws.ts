/**
 * Loads uWebSockets.js and refuses its pure-JS fallback: the package quietly swaps in a slow
 * Node implementation when the native binary does not load, which would void every performance
 * promise of this server.
 */
import { dirname, join } from 'node:path';

type Uws = Omit<typeof import('uWebSockets.js'), 'App' | 'SSLApp'> & {
  App(): TemplatedApp;
  SSLApp(options: import('uWebSockets.js').AppOptions): TemplatedApp;
  /** Listen option: bind without SO_REUSEPORT (the typings declare it only inside an enum that the binary lacks). */
  LIBUS_LISTEN_EXCLUSIVE_PORT: number;
};

/** Loads the native binary of the uWebSockets.js package in `pkgDir`, or throws saying why there is none. */
export function loadNative(pkgDir = dirname(require.resolve('uWebSockets.js/package.json'))): Uws {
  const binary = join(pkgDir, 'binaries', `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`);
  try {
    return require(binary);
  } catch (err) {
    throw new Error(
      `uWebSockets.js has no native build for this platform (${process.platform}-${process.arch}, Node ABI ${process.versions.modules}): ` +
        `${(err as Error).message.split('\n')[0]}. Refusing its slow pure-JS fallback; use Node.js 20 on linux/darwin x64 or arm64.`,
    );
  }
}

/** The native uWebSockets.js module. */
export const uws = loadNative();

/**
 * uWS's app, with what this build has and its typings lack: close(), which ends every socket and
 * listener, and listen() with both a host and listen options.
 */
export type TemplatedApp = import('uWebSockets.js').TemplatedApp & {
  close(): void;
  listen(host: string, port: number, options: number, cb: (listenSocket: import('uWebSockets.js').us_listen_socket | false) => void): TemplatedApp;
};
export type { WebSocket, HttpRequest, HttpResponse, us_listen_socket, us_socket_context_t } from 'uWebSockets.js';
