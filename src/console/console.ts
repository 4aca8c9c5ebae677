import type { ChannelState } from '../adapter/adapter';
import type { Apps } from '../apps/apps';
import type { ApiTrigger } from '../http/api';
import type { Log } from '../log';
import type { PwsMetrics } from '../metrics/pws-metrics';
import type { TemplatedApp } from '../uws';
import type { ConsoleRelay } from './relay';
import { registerConsoleRoutes } from './routes';
import { SampleRings } from './samples';
import { Sessions } from './sessions';
import { loadAssets } from './static-files';
import { ConsoleStreams } from './streams';
import type { ConsoleTap } from './tap';

/** What the console needs from the rest of the server. */
export interface ConsoleContext {
  apps: Apps;
  state: ChannelState;
  metrics: PwsMetrics | null;
  trigger: ApiTrigger;
  password: string;
  /** The console's port serves TLS (PORT with SSL_CERT; the metrics port never does): its cookie gets Secure. */
  secure: boolean;
  log: Log;
  /** ADAPTER_DRIVER=redis: other nodes' rows and totals, and this node's for them; null on one node. */
  relay: ConsoleRelay | null;
}

/**
 * The live console (CONSOLE_ENABLED): built only when enabled, so with it off there is no route,
 * no timer and no listener. Its tap is handed to the hot paths before the console exists (the
 * REST API's trigger, which the console's sender uses, is made with the tap).
 */
export class Console {
  private readonly streams: ConsoleStreams;
  private readonly samples: SampleRings;

  constructor(
    private readonly tap: ConsoleTap,
    private readonly ctx: ConsoleContext,
  ) {
    const { relay } = ctx;
    this.streams = new ConsoleStreams(ctx.apps, ctx.state, ctx.metrics, tap, ctx.log, () => this.refresh(), relay === null ? undefined : (id) => relay.totals(id));
    this.samples = new SampleRings(ctx.apps, ctx.metrics, tap, (id, sample) => this.streams.sampled(id, sample));
    const streams = this.streams;
    tap.drainTo(relay === null ? (row) => streams.push(row) : (row) => relay.local(row));
    relay?.deliverTo(
      (row) => streams.push(row),
      (rows) => streams.skipped(rows),
    );
  }

  /** Adds the console's routes (before the port's catch-all). */
  register(uws: TemplatedApp): void {
    registerConsoleRoutes(uws, {
      apps: this.ctx.apps,
      state: this.ctx.state,
      sessions: new Sessions(this.ctx.password),
      streams: this.streams,
      samples: this.samples,
      assets: loadAssets(),
      trigger: this.ctx.trigger,
      secure: this.ctx.secure,
    });
  }

  start(): void {
    this.samples.start();
    this.ctx.relay?.start(() => this.refresh());
  }

  async stop(): Promise<void> {
    this.samples.stop();
    this.streams.closeAll();
    await this.ctx.relay?.stop();
  }

  // The tap logs while a console is open here or, with Redis, on any node.
  private refresh(): void {
    const here = this.streams.open > 0;
    this.ctx.relay?.openHere(here);
    this.tap.active = here || (this.ctx.relay?.openElsewhere ?? false);
  }
}
