/**
 * The activator's decisions, per scaled function: which replicas answer, waking one when none
 * does (holding the requests that arrive meanwhile), putting idle replicas to sleep, and adding
 * or removing replicas with the requests in flight.
 *
 * A replica goes to sleep in two steps: its control server closes its port once nothing is in
 * flight (and refuses when a request came within `idleSeconds`), and only then is the container
 * frozen or stopped. A request arriving in between finds the port closed; nginx hands it here at
 * once, and it waits for the sleep to finish and the wake that follows.
 */
import type { FunctionState } from '../serve/control.ts';
import type { Logger } from '../core/log.ts';
import type { ActivatorMetrics, WakePhase } from './metrics.ts';
import type { Replica, Scope } from './scope.ts';

/** A scaled function, as the activator is told about it (the compose file's environment). */
export interface ScaledSpec {
  name: string;
  prefix: string;
  min: number;
  max: number;
  idleSeconds: number;
  wake: 'start' | 'unpause';
  /** Requests in flight per replica above which one is added. */
  concurrency: number;
  timeoutMs: number;
  bodySize: number;
}

export interface ActivatorOptions {
  scope: Scope;
  functions: readonly ScaledSpec[];
  metrics: ActivatorMetrics;
  logger: Logger;
  /** Port of the functions' own server and of their control server. */
  functionPort: number;
  controlPort: number;
  /** How long a wake may take before the waiting requests get a 503. */
  wakeTimeoutMs: number;
  /** After a failed wake, requests get a 503 at once for this long (their Retry-After). */
  failureCooldownMs: number;
  /** How long a replica to be stopped stays, port closed, before its container stops (longer than the gateway keeps DNS answers). */
  stopDelayMs: number;
  /** Ticks of the idle and load check. */
  tickMs: number;
  /** Ticks the load must stay above (below) target before a replica is added (removed). */
  scaleUpTicks: number;
  scaleDownTicks: number;
  /** Where a replica answers; its address on the project network by default. */
  endpointOf?: (replica: Replica, port: number) => string | undefined;
  /**
   * Bytes of requests it may hold or pass on at once, all functions together; each function may
   * use half of it (at least one body of its limit). A request counts its declared body size, at
   * least HELD_REQUEST_BYTES. Beyond it, requests get a 503 with Retry-After at once.
   */
  budgetBytes: number;
}

/**
 * What one request counts against the byte budget at least, however small its body: what a held
 * connection costs (the kernel's receive buffer and Node's request objects), so the budget also
 * bounds how many requests are held.
 */
export const HELD_REQUEST_BYTES = 256 * 1024;

/**
 * A function that cannot answer now: the 503 the held requests get. Its message is public (the
 * client reads it); `detail` (a container's last log line, the engine's error) goes to the log only.
 */
export class UnavailableError extends Error {
  override name = 'UnavailableError';
  constructor(message: string, readonly retryAfterSeconds: number, readonly detail?: string) {
    super(message);
  }
}

interface Live {
  replica: Replica;
  url: string;
  control: string;
}

class FunctionSlot {
  live: Live[] = [];
  next = 0;
  held = 0;
  waking?: Promise<Live[]>;
  sleeping?: Promise<void>;
  scaling?: Promise<void>;
  failure?: { message: string; detail?: string; until: number };
  /** Bytes of the requests it holds or passes on now (see ActivatorOptions.budgetBytes). */
  bytes = 0;
  /** The idle and load check under way: one per function, so one function's drain holds up no other. */
  checking?: Promise<void>;
  /** Start of the last wake, until its first answer is out. */
  wokeAt?: number;
  /** The replica last put to sleep here, and how (its state now, unless someone else acted). */
  asleep?: Replica;
  high = 0;
  low = 0;
  constructor(readonly spec: ScaledSpec) {}
}

const controlCall = async (live: Pick<Live, 'control'>, method: 'GET' | 'POST', path: string, timeoutMs: number): Promise<{ status: number; body: FunctionState & { error?: string } }> => {
  const res = await fetch(`${live.control}${path}`, { method, signal: AbortSignal.timeout(timeoutMs) });
  return { status: res.status, body: (await res.json()) as FunctionState & { error?: string } };
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Activator {
  private readonly slots = new Map<string, FunctionSlot>();
  private timer?: NodeJS.Timeout;
  /** Bytes of every request held or passed on now. */
  private bytes = 0;

  constructor(private readonly options: ActivatorOptions) {
    for (const spec of options.functions) this.slots.set(spec.name, new FunctionSlot(spec));
  }

  spec(name: string): ScaledSpec | undefined {
    return this.slots.get(name)?.spec;
  }

  private endpoint(replica: Replica, port: number): string | undefined {
    if (this.options.endpointOf) return this.options.endpointOf(replica, port);
    return replica.ip ? `http://${replica.ip}:${port}` : undefined;
  }

  private liveOf(replica: Replica): Live | undefined {
    const url = this.endpoint(replica, this.options.functionPort);
    const control = this.endpoint(replica, this.options.controlPort);
    return url && control ? { replica, url, control } : undefined;
  }

  private slot(name: string): FunctionSlot {
    const slot = this.slots.get(name);
    if (!slot) throw new UnavailableError(`'${name}' is not a function that scales`, 0);
    return slot;
  }

  /** Whether the activator knows a replica of the function that answers. */
  awake(name: string): boolean {
    return (this.slots.get(name)?.live.length ?? 0) > 0;
  }

  /** Whether a wake of the function is under way. */
  waking(name: string): boolean {
    return this.slots.get(name)?.waking !== undefined;
  }

  /** Requests waiting for a wake, per function. */
  held(name: string): number {
    return this.slots.get(name)?.held ?? 0;
  }

  /** Bytes counted against the budget now: one function's, or all of them. */
  heldBytes(name?: string): number {
    return name === undefined ? this.bytes : this.slots.get(name)?.bytes ?? 0;
  }

  /**
   * Counts a request of `bodyBytes` against the function's and the total byte budget until the
   * returned release is called. Throws UnavailableError (Retry-After 1) beyond either.
   */
  admit(name: string, bodyBytes: number): () => void {
    const slot = this.slot(name);
    const cost = Math.max(bodyBytes, HELD_REQUEST_BYTES);
    const { budgetBytes } = this.options;
    const share = Math.max(slot.spec.bodySize, Math.floor(budgetBytes / 2));
    if (slot.bytes + cost > share || this.bytes + cost > budgetBytes) {
      this.options.metrics.refused.inc({ function: name });
      throw new UnavailableError(`function '${name}' has as many requests waiting as it may; retry later`, 1,
        `over the byte budget: ${slot.bytes} of ${share} for the function, ${this.bytes} of ${budgetBytes} in all, ${cost} asked`);
    }
    slot.bytes += cost;
    this.bytes += cost;
    this.options.metrics.heldBytes.set({ function: name }, slot.bytes);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      slot.bytes -= cost;
      this.bytes -= cost;
      this.options.metrics.heldBytes.set({ function: name }, slot.bytes);
    };
  }

  /**
   * A replica's base URL to send a request to, waking the function first when none answers.
   * Throws UnavailableError when it cannot wake (within the wake timeout).
   */
  async target(name: string): Promise<string> {
    const slot = this.slot(name);
    const { metrics } = this.options;
    slot.held++;
    metrics.held.set({ function: name }, slot.held);
    try {
      for (;;) {
        if (slot.failure && Date.now() < slot.failure.until) {
          throw new UnavailableError(slot.failure.message, Math.ceil((slot.failure.until - Date.now()) / 1000), slot.failure.detail);
        }
        if (slot.live.length) return slot.live[slot.next++ % slot.live.length].url;
        if (slot.sleeping) {
          await slot.sleeping;
          continue;
        }
        await (slot.waking ??= this.wake(slot).catch((err) => {
          if (err instanceof UnavailableError) throw err;
          // The engine failed us (not the function): try again soon.
          throw new UnavailableError(`function '${name}' could not be woken; retry later`, 1, (err as Error).message);
        }).finally(() => (slot.waking = undefined)));
      }
    } finally {
      slot.held--;
      metrics.held.set({ function: name }, slot.held);
    }
  }

  /** A request to `url` failed to connect: that replica is no longer answering. */
  unreachable(name: string, url: string): void {
    const slot = this.slots.get(name);
    if (slot) slot.live = slot.live.filter((l) => l.url !== url);
  }

  /** A request was answered: the first one after a wake closes the wake's measurement. */
  answered(name: string): void {
    const slot = this.slots.get(name);
    if (slot?.wokeAt === undefined) return;
    this.options.metrics.wakeSeconds.observe({ function: name, mode: slot.spec.wake, phase: 'first_answer' }, (performance.now() - slot.wokeAt) / 1000);
    slot.wokeAt = undefined;
  }

  private observe(slot: FunctionSlot, phase: WakePhase, seconds: number): void {
    this.options.metrics.wakeSeconds.observe({ function: slot.spec.name, mode: slot.spec.wake, phase }, seconds);
  }

  /** The running replicas whose control server answers, with what it says. */
  private async probe(replicas: Replica[]): Promise<{ live: Live; state: FunctionState }[]> {
    const found = await Promise.all(replicas.filter((r) => r.state === 'running').map(async (replica) => {
      const live = this.liveOf(replica);
      if (!live) return undefined;
      const state = await controlCall(live, 'GET', '/state', 1000).then((r) => r.body, () => undefined);
      return state ? { live, state } : undefined;
    }));
    return found.filter((f): f is { live: Live; state: FunctionState } => f !== undefined);
  }

  /** The replicas answering now, by their control servers. */
  private async answering(replicas: Replica[]): Promise<{ live: Live; state: FunctionState }[]> {
    return (await this.probe(replicas)).filter((p) => p.state.listening && p.state.ready);
  }

  /** Wakes one replica (the lowest-numbered sleeping one) and waits until it answers. */
  private async wake(slot: FunctionSlot): Promise<Live[]> {
    const { scope, logger, metrics } = this.options;
    const { spec } = slot;
    const started = performance.now();
    // The replica this activator put to sleep last is woken without listing the service first
    // (a frozen function wakes in milliseconds; the list call alone costs several).
    const known = slot.asleep;
    slot.asleep = undefined;
    let candidate = known;
    if (!candidate) {
      const replicas = await scope.replicas(spec.name);
      const already = await this.answering(replicas);
      if (already.length) {
        // Awake already (the gateway's DNS answer was older than the replica): nothing to wake.
        slot.live = already.map((a) => a.live);
        return slot.live;
      }
      candidate = replicas.find((r) => r.state === 'running') ?? replicas.find((r) => r.state === 'paused')
        ?? replicas.find((r) => r.state !== 'removing' && r.state !== 'dead');
    }
    if (!candidate) return this.failWake(slot, undefined, 'no container to wake');
    const how = candidate.state === 'paused' ? 'unpause' : candidate.state === 'running' ? 'listen' : 'start';
    // The replica to watch: on Swarm, starting one makes a new task, whose container comes later.
    let replica = candidate;
    try {
      if (how === 'unpause') await scope.unpause(candidate);
      else if (how === 'start') replica = await scope.start(candidate);
    } catch (err) {
      // Someone else changed it since: look again.
      if (known) return this.wake(slot);
      return this.failWake(slot, candidate, `could not ${how}: ${(err as Error).message}`);
    }
    const deadline = started + this.options.wakeTimeoutMs;
    // A thawed replica keeps its address: no need to ask the engine before reopening its port.
    let lastCheck = how === 'unpause' && replica.ip ? performance.now() : 0;
    let woke: { live: Live; state: FunctionState } | undefined;
    // The engine answers a start once the container's process runs, an unpause once it thaws.
    const containerStarted = performance.now();
    while (!woke && performance.now() < deadline) {
      // The engine is asked every 200 ms; before the replica has an address, every loop (a
      // started container) or every 50 ms (a task Swarm is still placing).
      if (performance.now() - lastCheck > (replica.ip ? 200 : replica.pending ? 50 : 0)) {
        lastCheck = performance.now();
        const state = await scope.state(replica).catch(() => undefined);
        // A pending replica (Swarm) that now has a container becomes that container.
        if (state && state.id !== replica.id) replica = { ...replica, id: state.id, pending: false };
        if (state && (state.status === 'exited' || state.status === 'dead' || state.status === 'restarting')) {
          const logs = await scope.logs(replica, 5).catch(() => '');
          const reason = logs.trim().split('\n').filter(Boolean).pop() ?? (state.error || `exit code ${state.exitCode}`);
          return this.failWake(slot, replica, `failed to start: ${reason.slice(0, 300)}`, 'failed to start');
        }
        if (state?.ip && state.ip !== replica.ip) replica = { ...replica, ip: state.ip, state: state.status };
      }
      const live = this.liveOf(replica);
      if (live) {
        // Reopening the port answers the state too.
        const state = how === 'start'
          ? await controlCall(live, 'GET', '/state', 1000).then((r) => r.body, () => undefined)
          : await controlCall(live, 'POST', '/wake', 2000).then((r) => r.body, () => undefined);
        if (state?.listening && state.ready) woke = { live, state };
      }
      if (!woke) await sleep(how === 'start' ? 10 : 2);
    }
    if (!woke) return this.failWake(slot, replica, `did not answer within ${this.options.wakeTimeoutMs} ms of its wake`, `did not answer within ${this.options.wakeTimeoutMs} ms of its wake`);
    const ready = performance.now();
    this.observe(slot, 'container_start', (containerStarted - started) / 1000);
    if (how === 'start') {
      this.observe(slot, 'process_start', woke.state.startup.process_ms / 1000);
      this.observe(slot, 'model_load', woke.state.startup.model_load_ms / 1000);
      this.observe(slot, 'warm_up', woke.state.startup.warm_up_ms / 1000);
    }
    this.observe(slot, 'ready', (ready - started) / 1000);
    metrics.wakes.inc({ function: spec.name, mode: how === 'start' ? 'start' : 'unpause', result: 'ok' });
    slot.wokeAt = started;
    slot.failure = undefined;
    slot.live = [...slot.live.filter((l) => l.replica.id !== woke.live.replica.id), woke.live];
    logger.log('info', 'woke', { fn: spec.name, replica: replica.name, how, ms: Math.round((ready - started) * 10) / 10 });
    return slot.live;
  }

  /**
   * A wake that failed: `detail` (a log line, the engine's words) is logged; the client reads only
   * that the function could not wake, and `publicReason` when it says nothing internal.
   */
  private async failWake(slot: FunctionSlot, replica: Replica | undefined, detail: string, publicReason = 'could not be woken'): Promise<never> {
    const { scope, logger, metrics, failureCooldownMs } = this.options;
    metrics.wakes.inc({ function: slot.spec.name, mode: slot.spec.wake, result: 'failed' });
    const message = `function '${slot.spec.name}' ${publicReason}; retry later`;
    slot.failure = { message, detail, until: Date.now() + failureCooldownMs };
    logger.log('error', 'wake failed', { fn: slot.spec.name, replica: replica?.name, error: detail });
    // A replica that cannot start is stopped rather than left restarting: the next wake tries again.
    if (replica) await scope.stop(replica, 0).catch(() => {});
    throw new UnavailableError(message, Math.ceil(failureCooldownMs / 1000), detail);
  }

  /** Puts one replica to sleep, unless a request came within idleSeconds (then it stays awake). */
  private async putToSleep(slot: FunctionSlot, live: Live, idleMs: number): Promise<boolean> {
    const { scope, logger, metrics } = this.options;
    const { spec } = slot;
    slot.live = slot.live.filter((l) => l.replica.id !== live.replica.id);
    let slept = false;
    const work = (async () => {
      const answer = await controlCall(live, 'POST', `/sleep?idle_ms=${idleMs}`, spec.timeoutMs + 5000).catch(() => undefined);
      if (answer?.status !== 200) {
        // Busy (a request came in): it stays in the rotation.
        if (answer?.status === 409) slot.live = [...slot.live, live];
        return;
      }
      if (live.replica.added || spec.wake === 'start') {
        // A stopped container's address vanishes, and a connection to it times out instead of
        // being refused: keep it, port closed, until the gateway's DNS answers have expired.
        // A request that needs it meanwhile reopens the port instead.
        const until = performance.now() + this.options.stopDelayMs;
        while (performance.now() < until) {
          if (slot.held > 0 && !slot.live.length) {
            const reopened = await controlCall(live, 'POST', '/wake', 2000).then((r) => r.status === 200, () => false);
            if (reopened) {
              slot.live = [...slot.live, live];
              logger.log('info', 'stayed awake', { fn: spec.name, replica: live.replica.name });
              return;
            }
          }
          await sleep(20);
        }
      }
      if (live.replica.added) {
        await scope.stop(live.replica, 5);
        await scope.remove(live.replica);
      } else if (spec.wake === 'unpause') {
        await scope.pause(live.replica);
        if (!slot.live.length) slot.asleep = { ...live.replica, state: 'paused' };
      } else {
        await scope.stop(live.replica, 5);
        // A stopped container loses its address: the one it had may be another's by the wake.
        if (!slot.live.length) slot.asleep = { ...live.replica, state: 'exited', ip: undefined };
      }
      slept = true;
      metrics.sleeps.inc({ function: spec.name, mode: live.replica.added ? 'removed' : spec.wake });
      logger.log('info', 'asleep', { fn: spec.name, replica: live.replica.name, mode: live.replica.added ? 'removed' : spec.wake });
    })();
    slot.sleeping = work.catch((err) => logger.log('error', 'sleep failed', { fn: spec.name, error: (err as Error).message }));
    await slot.sleeping;
    slot.sleeping = undefined;
    return slept;
  }

  /** Adds a replica: a sleeping one woken, else a new one made like the others. */
  private async scaleOut(slot: FunctionSlot, replicas: Replica[]): Promise<void> {
    const { scope, logger, metrics } = this.options;
    const awake = new Set(slot.live.map((l) => l.replica.id));
    let replica = replicas.find((r) => !awake.has(r.id) && r.state === 'paused') ?? replicas.find((r) => !awake.has(r.id) && (r.state === 'exited' || r.state === 'created'));
    if (!replica) {
      const source = slot.live[0]?.replica;
      if (!source) return;
      replica = await scope.clone(source, Math.max(0, ...replicas.map((r) => r.number)) + 1);
    }
    if (replica.state === 'paused') await scope.unpause(replica);
    else replica = await scope.start(replica);
    const deadline = performance.now() + this.options.wakeTimeoutMs;
    while (performance.now() < deadline) {
      const state = await scope.state(replica).catch(() => undefined);
      const live = state?.ip ? this.liveOf({ ...replica, id: state.id, pending: false, ip: state.ip }) : undefined;
      if (live) {
        if (replica.state === 'paused') await controlCall(live, 'POST', '/wake', 2000).catch(() => undefined);
        const answer = await controlCall(live, 'GET', '/state', 1000).then((r) => r.body, () => undefined);
        if (answer?.listening && answer.ready) {
          slot.live = [...slot.live, live];
          metrics.scaling.inc({ function: slot.spec.name, direction: 'out' });
          logger.log('info', 'scaled out', { fn: slot.spec.name, replica: replica.name, replicas: slot.live.length });
          return;
        }
      }
      await sleep(50);
    }
    logger.log('warn', 'scale out: the new replica did not answer in time', { fn: slot.spec.name, replica: replica.name });
  }

  /**
   * One look at every function: who answers, who has been idle long enough, how loaded they are.
   * Each function is looked at on its own: a function whose last check is still under way (a
   * replica draining before it sleeps, for as long as its timeout) is skipped, the others not.
   * Resolves once the checks it started are done.
   */
  async tick(): Promise<void> {
    await Promise.all([...this.slots.values()].map((slot) => {
      if (slot.checking) return undefined;
      slot.checking = this.check(slot).catch((err) => {
        this.options.logger.log('warn', 'check failed', { fn: slot.spec.name, error: (err as Error).message });
      }).finally(() => (slot.checking = undefined));
      return slot.checking;
    }));
  }

  private async check(slot: FunctionSlot): Promise<void> {
    if (slot.waking || slot.sleeping || slot.scaling) return;
    const { spec } = slot;
    const { metrics, scaleUpTicks, scaleDownTicks } = this.options;
    const replicas = await this.options.scope.replicas(spec.name);
    const probed = await this.probe(replicas);
    if (slot.waking || slot.sleeping || slot.scaling) return;
    // A ready replica with its port closed and no sleep under way: the orchestrator stopped
    // another one in its place (Swarm picks which task goes), or an earlier activator stopped
    // midway. It is opened again.
    for (const closed of probed.filter((p) => p.state.ready && !p.state.listening)) {
      const reopened = await controlCall(closed.live, 'POST', '/wake', 2000).then((r) => r.status === 200, () => false);
      if (reopened) closed.state = { ...closed.state, listening: true };
    }
    const answering = probed.filter((p) => p.state.listening && p.state.ready);
    slot.live = answering.map((a) => a.live);
    // Awake again (a deploy, someone else): the replica last put to sleep is no longer the one to wake.
    if (answering.length) slot.asleep = undefined;
    metrics.replicas.set({ function: spec.name, state: 'awake' }, answering.length);
    metrics.replicas.set({ function: spec.name, state: 'asleep' }, replicas.filter((r) => !r.pending).length - answering.length);
    if (!answering.length) return;

    const inFlight = answering.reduce((n, a) => n + a.state.in_flight, 0) + slot.held;
    slot.high = inFlight > spec.concurrency * answering.length ? slot.high + 1 : 0;
    // Low: the load would fit in one replica fewer with room to spare.
    slot.low = answering.length > 1 && inFlight <= spec.concurrency * (answering.length - 1) / 2 ? slot.low + 1 : 0;
    if (slot.high >= scaleUpTicks && answering.length < spec.max) {
      slot.high = 0;
      slot.scaling = this.scaleOut(slot, replicas).finally(() => (slot.scaling = undefined));
      return;
    }
    const floor = Math.max(spec.min, 0);
    if (slot.low >= scaleDownTicks && answering.length > Math.max(floor, 1)) {
      // Scaling in: the highest-numbered replica, once it has nothing in flight.
      slot.low = 0;
      const last = answering.filter((a) => !a.live.replica.settling).sort((a, b) => b.live.replica.number - a.live.replica.number)[0];
      if (last && last.state.in_flight === 0) await this.putToSleep(slot, last.live, 0);
      return;
    }
    if (slot.held === 0 && answering.length > floor) {
      const idle = answering
        .filter((a) => !a.live.replica.settling && a.state.in_flight === 0 && a.state.idle_ms >= spec.idleSeconds * 1000)
        .sort((a, b) => b.live.replica.number - a.live.replica.number);
      if (idle.length) await this.putToSleep(slot, idle[0].live, spec.idleSeconds * 1000);
    }
  }

  /** Checks every function every tickMs until stop(). */
  start(): void {
    this.timer = setInterval(() => void this.tick(), this.options.tickMs);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
