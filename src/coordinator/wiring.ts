/**
 * Builds the coordinator from options: in pure state-authority mode when no executor is
 * configured, otherwise with the client wrappers, the dispatcher and the policy checkpoints.
 */
import type { Dispatcher as HttpDispatcher } from 'undici';
import { ClientCredentialsTokens, type TokenCallRecord } from '../auth/outbound.js';
import type { OutboundAuth } from '../auth/settings.js';
import { AtomicExecutorClient } from '../clients/atomic-executor.js';
import { CompositeExecutorClient } from '../clients/composite-executor.js';
import { type CallRecord, type RetryPolicy, ServiceClient, type ServiceName } from '../clients/http.js';
import { NodeRegistryClient } from '../clients/node-registry.js';
import { PdpClient } from '../clients/pdp.js';
import { SelectionClient } from '../clients/selection.js';
import type { Contract } from '../contract/contract.js';
import { ContractValidators } from '../contract/validators.js';
import { kindFromPrefix } from '../core/ids.js';
import type { Store } from '../store/store.js';
import type { Tracing } from '../tracing/tracing.js';
import { Coordinator, type CoordinatorDeps } from './coordinator.js';
import { Dispatcher } from './dispatcher.js';
import { localPolicy, type PolicyPort, pdpPolicy } from './policy.js';
import { type KindResolver, prefixKinds, systemTimers } from './ports.js';

/** Base URLs of the ARP services the coordinator calls; each is optional. */
export interface ServiceUrls {
  readonly atomicExecutor?: string;
  readonly compositeExecutor?: string;
  readonly nodeRegistry?: string;
  readonly pdp?: string;
  readonly selection?: string;
}

export interface OrchestrationOptions {
  readonly services: ServiceUrls;
  /** The coordinator's own base URL, given to composite executors. */
  readonly publicUrl?: string;
  /** Decision at policy checkpoints when no PDP is configured. */
  readonly policyDefault: 'allow' | 'deny';
  /** Deadline of an atomic execution (the execute call's timeout). */
  readonly executeTimeoutMs: number;
  /** Timeout of every other outgoing call (begin, cancel, registry, PDP, selection). */
  readonly callTimeoutMs: number;
  /** Deadline of an accepted composite NodeRun. */
  readonly compositeTimeoutMs: number;
  readonly dispatchConcurrency: number;
  readonly registryCacheTtlMs: number;
  /** Audience of the client-credentials token requested for each service. */
  readonly audiences: Readonly<Record<keyof ServiceUrls, string>>;
}

export const defaultOrchestration: OrchestrationOptions = {
  services: {},
  policyDefault: 'allow',
  executeTimeoutMs: 300_000,
  callTimeoutMs: 10_000,
  compositeTimeoutMs: 3_600_000,
  dispatchConcurrency: 32,
  registryCacheTtlMs: 300_000,
  audiences: {
    atomicExecutor: 'arp-atomic-executor',
    compositeExecutor: 'arp-composite-executor',
    nodeRegistry: 'arp-node-registry',
    pdp: 'arp-pdp',
    selection: 'arp-selection',
  },
};

export interface Clients {
  readonly atomic?: AtomicExecutorClient;
  readonly composite?: CompositeExecutorClient;
  readonly registry?: NodeRegistryClient;
  readonly pdp?: PdpClient;
  readonly selection?: SelectionClient;
}

export interface WiringDeps extends Omit<CoordinatorDeps, 'store' | 'onBackgroundError'> {
  /** undici dispatcher for every outgoing call (tests inject one; default: undici's global agent). */
  readonly httpDispatcher?: HttpDispatcher;
  readonly retry?: RetryPolicy;
  /** Client credentials for outgoing calls; without them calls carry no token. */
  readonly outboundAuth?: OutboundAuth;
  /** Told of every attempt of every outgoing call (see `CallRecord`). */
  readonly onServiceCall?: (record: CallRecord) => void;
  /** Told of every request to the token endpoint (see `TokenCallRecord`). */
  readonly onTokenCall?: (record: TokenCallRecord) => void;
  /** `user-agent` of outgoing calls. */
  readonly userAgent?: string;
  /** Spans for dispatches and outgoing calls (tracing on). */
  readonly tracing?: Tracing;
}

export function buildClients(
  options: OrchestrationOptions,
  contract: Contract,
  deps: Pick<
    WiringDeps,
    'httpDispatcher' | 'retry' | 'outboundAuth' | 'onServiceCall' | 'onTokenCall' | 'userAgent' | 'tracing'
  >,
): Clients {
  const { services } = options;
  if (!Object.values(services).some(Boolean)) return {};
  const validators = new ContractValidators(contract);
  const tokens = deps.outboundAuth
    ? new ClientCredentialsTokens(deps.outboundAuth, {
        timeoutMs: options.callTimeoutMs,
        ...(deps.httpDispatcher ? { dispatcher: deps.httpDispatcher } : {}),
        ...(deps.onTokenCall ? { onTokenCall: deps.onTokenCall } : {}),
      })
    : undefined;
  const audienceOf: Record<ServiceName, string> = {
    atomic_executor: options.audiences.atomicExecutor,
    composite_executor: options.audiences.compositeExecutor,
    node_registry: options.audiences.nodeRegistry,
    pdp: options.audiences.pdp,
    selection: options.audiences.selection,
  };
  const client = (service: ServiceName, baseUrl: string) =>
    new ServiceClient({
      service,
      baseUrl,
      timeoutMs: options.callTimeoutMs,
      validators,
      ...(deps.httpDispatcher ? { dispatcher: deps.httpDispatcher } : {}),
      ...(deps.retry ? { retry: deps.retry } : {}),
      ...(deps.onServiceCall ? { onCall: deps.onServiceCall } : {}),
      ...(deps.userAgent ? { userAgent: deps.userAgent } : {}),
      ...(deps.tracing ? { tracing: deps.tracing } : {}),
      ...(tokens
        ? { headers: async () => ({ authorization: `Bearer ${await tokens.token(audienceOf[service])}` }) }
        : {}),
    });
  return {
    ...(services.atomicExecutor
      ? { atomic: new AtomicExecutorClient(client('atomic_executor', services.atomicExecutor)) }
      : {}),
    ...(services.compositeExecutor
      ? { composite: new CompositeExecutorClient(client('composite_executor', services.compositeExecutor)) }
      : {}),
    ...(services.nodeRegistry
      ? {
          registry: new NodeRegistryClient(client('node_registry', services.nodeRegistry), {
            cacheTtlMs: options.registryCacheTtlMs,
          }),
        }
      : {}),
    ...(services.pdp ? { pdp: new PdpClient(client('pdp', services.pdp)) } : {}),
    ...(services.selection
      ? { selection: new SelectionClient(client('selection', services.selection)) }
      : {}),
  };
}

/**
 * Kind known without waiting, for NodeRuns being created: what the registry already answered, or
 * the id prefix once the registry said it does not know the type. While the registry has not
 * answered the kind stays unset, so that dispatch asks it (the registry wins over the prefix).
 * An API call never waits on the registry.
 */
export function cachedRegistryKinds(registry: NodeRegistryClient): KindResolver {
  return {
    kindOf(ref) {
      const known = registry.peek(ref);
      if (known.state === 'found') return known.nodeType.kind;
      return known.state === 'unknown' ? kindFromPrefix(ref.node_type_id) : undefined;
    },
  };
}

/** Kind from the Node Registry when it knows the type, else from the id prefix. */
export function registryKinds(
  registry: NodeRegistryClient,
  onError: (error: unknown, context: string) => void,
): KindResolver {
  return {
    async kindOf(ref) {
      try {
        const nodeType = await registry.getNodeType(ref);
        if (nodeType) return nodeType.kind;
      } catch (error) {
        onError(error, `registry lookup of ${ref.node_type_id}@${ref.version}`);
      }
      return kindFromPrefix(ref.node_type_id);
    },
  };
}

export interface Wired {
  readonly coordinator: Coordinator;
  readonly clients: Clients;
  /** True when NodeRuns are dispatched to executors. */
  readonly dispatching: boolean;
  readonly policy: 'pdp' | 'local' | 'none';
}

export function buildCoordinator(
  store: Store,
  contract: Contract,
  options: OrchestrationOptions,
  deps: WiringDeps,
  onError: (error: unknown, context: string) => void,
): Wired {
  const clients = buildClients(options, contract, deps);
  const dispatching = Boolean(clients.atomic || clients.composite);
  const kinds = deps.kinds ?? (clients.registry ? registryKinds(clients.registry, onError) : prefixKinds);
  const creationKinds =
    deps.kinds ?? (clients.registry ? cachedRegistryKinds(clients.registry) : prefixKinds);
  let policy: PolicyPort | undefined = deps.policy;
  if (!policy && clients.pdp) policy = pdpPolicy(clients.pdp, (error) => onError(error, 'PDP decision'));
  else if (!policy && dispatching) policy = localPolicy(options.policyDefault);
  const timers = deps.timers ?? systemTimers;
  const execution =
    deps.execution ??
    (dispatching
      ? (coordinator: Coordinator) =>
          new Dispatcher(coordinator, {
            ...(clients.atomic ? { atomic: clients.atomic } : {}),
            ...(clients.composite ? { composite: clients.composite } : {}),
            ...(policy ? { policy } : {}),
            ...(deps.tracing ? { tracing: deps.tracing } : {}),
            ...(options.publicUrl ? { publicUrl: options.publicUrl } : {}),
            kinds,
            executeTimeoutMs: options.executeTimeoutMs,
            compositeTimeoutMs: options.compositeTimeoutMs,
            concurrency: options.dispatchConcurrency,
            timers,
            onError,
          })
      : undefined);
  const coordinator = new Coordinator({
    ...deps,
    store,
    kinds: creationKinds,
    timers,
    onBackgroundError: onError,
    ...(policy ? { policy } : {}),
    ...(execution ? { execution } : {}),
  });
  return {
    coordinator,
    clients,
    dispatching,
    policy: clients.pdp ? 'pdp' : policy ? 'local' : 'none',
  };
}
