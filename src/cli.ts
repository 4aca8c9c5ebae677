import { ListenError, OptionsError } from './protocol/errors';
import { OPTION_SPECS, loadOptions } from './options';
import { Server } from './server';
import { APPS_USAGE, appsCommand } from './apps/cli';

const USAGE = `Usage: pws-server <command> [options]

Commands:
  start            Start the server (default port 6001, one default app).
  apps             Manage apps in a database (APP_MANAGER_DRIVER postgres or mysql): pws-server apps --help.

Options:
  --config <file>  JSON file with options (same names as the environment variables) and an "apps" array.
  --port <n>       Same as PORT.
  -h, --help       Show help (also: pws-server start --help).
  -v, --version    Show the version.

Run "pws-server start --help" for every environment variable.`;

function startHelp(): string {
  const width = Math.max(...OPTION_SPECS.map((s) => s.env.length));
  const lines = OPTION_SPECS.map((s) => `  ${s.env.padEnd(width)}  ${s.help} (default: ${s.default === '' ? 'unset' : s.default})`);
  return `Usage: pws-server start [--config file.json] [--port n]

Starts the server. Configuration comes from environment variables, or from a JSON config file
(keys are the same names, plus an "apps" array); environment variables win over the file.
Booleans accept true/false/1/0.

Environment variables:
${lines.join('\n')}`;
}

/** Parses argv, starts the server, and wires SIGTERM/SIGINT to a graceful stop. Returns the exit code for immediate exits. */
export async function main(argv: string[]): Promise<number | null> {
  const args = [...argv];
  const command = args[0] !== undefined && !args[0].startsWith('-') ? args.shift() : undefined;
  let configPath: string | undefined;
  const env = { ...process.env };
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '-h' || arg === '--help') {
      console.log(command === 'start' ? startHelp() : command === 'apps' ? APPS_USAGE : USAGE);
      return 0;
    } else if (arg === '-v' || arg === '--version') {
      console.log(require('../../package.json').version);
      return 0;
    } else if (arg === '--config' || arg === '--port') {
      const value = args[++i];
      if (value === undefined) return fail(`${arg} needs a value`);
      if (arg === '--config') configPath = value;
      else env.PORT = value;
    } else if (arg.startsWith('--config=')) {
      configPath = arg.slice('--config='.length);
    } else if (arg.startsWith('--port=')) {
      env.PORT = arg.slice('--port='.length);
    } else if (command === 'apps' && !arg.startsWith('-')) {
      positional.push(arg);
    } else {
      return fail(`unknown option ${arg} (see pws-server --help)`);
    }
  }
  if (command === 'apps') return apps(positional, env, configPath);
  if (command !== 'start') return fail(command === undefined ? 'missing command: use "pws-server start"' : `unknown command "${command}" (see pws-server --help)`);

  let server: Server;
  try {
    server = new Server(loadOptions(env, configPath));
  } catch (err) {
    if (err instanceof OptionsError) return fail(err.message);
    throw err;
  }
  // Signals are taken from the start: start-up may wait seconds for Redis while the node already
  // answers HTTP, and a SIGTERM then must stop it cleanly once started, not kill it half-joined.
  const started = server.start();
  const stop = (signal: string) => {
    started.then(
      () => {
        server.log.info(`${signal} received: closing connections (grace period ${server.options.shutdownGracePeriodMs} ms)`);
        server.stop().then(
          () => process.exit(0),
          (err) => {
            server.log.error(`shutdown failed: ${err}`);
            process.exit(1);
          },
        );
      },
      () => undefined,
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  try {
    await started;
  } catch (err) {
    if (err instanceof ListenError) return fail(err.message);
    throw err;
  }
  return null;
}

async function apps(args: string[], env: NodeJS.ProcessEnv, configPath: string | undefined): Promise<number> {
  try {
    return await appsCommand(args, loadOptions(env, configPath), (line) => console.log(line));
  } catch (err) {
    if (err instanceof OptionsError) return fail(err.message);
    return fail(`apps: ${(err as Error)?.message ?? err}`);
  }
}

function fail(message: string): number {
  console.error(`pws-server: ${message}`);
  return 1;
}
