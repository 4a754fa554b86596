/**
 * What `/v1/health` reports: the store (its own cheap `health()`), and each configured service's
 * last-known reachability, learnt from the real calls the coordinator makes (never from probes).
 * A dependency that is down makes the service `degraded`, still answered with 200 so that existing
 * clients keep working.
 */
import type { CallRecord, ServiceName } from '../clients/http.js';
import type { ServiceUrls } from '../coordinator/wiring.js';
import type { Health } from '../gen/contract.js';
import type { Store } from '../store/store.js';

type Check = NonNullable<Health['checks']>[number];

/** Configuration key of each service → the name its calls and its check carry. */
const SERVICE_NAMES: Record<keyof ServiceUrls, ServiceName> = {
  atomicExecutor: 'atomic_executor',
  compositeExecutor: 'composite_executor',
  nodeRegistry: 'node_registry',
  pdp: 'pdp',
  selection: 'selection',
};

interface LastCall {
  readonly reachable: boolean;
  readonly record: CallRecord;
  readonly at: Date;
}

/**
 * Whether an attempt tells anything about reachability: `unavailable` and `timeout` say the service
 * did not answer; an answer, even an error status or an invalid body, says it is there. A request
 * refused before it was sent, or one the coordinator aborted itself, says nothing.
 */
function reachability(record: CallRecord): boolean | undefined {
  switch (record.outcome) {
    case 'unavailable':
    case 'timeout':
      return false;
    case 'ok':
    case 'invalid_response':
      return true;
    case 'error':
      return record.status !== undefined ? true : undefined;
    default:
      return undefined;
  }
}

export class HealthMonitor {
  readonly #store: Store;
  readonly #services: readonly ServiceName[];
  readonly #last = new Map<ServiceName, LastCall>();
  readonly #clock: () => Date;

  constructor(store: Store, services: ServiceUrls, clock: () => Date) {
    this.#store = store;
    this.#clock = clock;
    this.#services = (Object.keys(SERVICE_NAMES) as (keyof ServiceUrls)[])
      .filter((key) => services[key])
      .map((key) => SERVICE_NAMES[key]);
  }

  /** Registered with `app.serviceCalls.observe`: remembers the last telling attempt per service. */
  readonly observe = (record: CallRecord): void => {
    const reachable = reachability(record);
    if (reachable === undefined) return;
    this.#last.set(record.service, { reachable, record, at: this.#clock() });
  };

  async report(): Promise<Health> {
    const checks: Check[] = [
      await this.#storeCheck(),
      ...this.#services.map((name) => this.#serviceCheck(name)),
    ];
    const down = checks.some((check) => check.status !== 'ok');
    return { status: down ? 'degraded' : 'ok', time: this.#clock().toISOString(), checks };
  }

  async #storeCheck(): Promise<Check> {
    let health: Awaited<ReturnType<Store['health']>>;
    try {
      health = await this.#store.health();
    } catch {
      health = { ok: false, message: 'The store could not tell its health' };
    }
    return {
      name: 'store',
      status: health.ok ? 'ok' : 'down',
      ...(health.message ? { message: health.message } : {}),
      ...(health.details ? { details: health.details } : {}),
    };
  }

  #serviceCheck(name: ServiceName): Check {
    const last = this.#last.get(name);
    if (!last) return { name, status: 'ok', message: 'not called yet', details: { last_call: null } };
    const { record } = last;
    return {
      name,
      status: last.reachable ? 'ok' : 'down',
      ...(last.reachable ? {} : { message: `${record.code ?? record.outcome} on the last call` }),
      details: {
        last_call: {
          operation: record.operation,
          outcome: record.outcome,
          ...(record.status !== undefined ? { status: record.status } : {}),
          at: last.at.toISOString(),
        },
      },
    };
  }
}
