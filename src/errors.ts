/**
 * The one table of error codes the coordinator answers with, and the typed error that carries them.
 * Code inside the service throws `ArpError`; only the HTTP boundary turns it into an ErrorEnvelope.
 */
export const ERROR_STATUS = {
  invalid_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  run_not_found: 404,
  node_run_not_found: 404,
  parent_node_run_not_found: 404,
  method_not_allowed: 405,
  not_acceptable: 406,
  request_timeout: 408,
  run_already_exists: 409,
  run_already_terminal: 409,
  parent_node_run_mismatch: 409,
  parent_node_run_terminal: 409,
  parent_node_run_invalid: 409,
  idempotency_conflict: 409,
  constraint_violation: 409,
  node_run_already_terminal: 409,
  payload_too_large: 413,
  uri_too_long: 414,
  unsupported_media_type: 415,
  internal_error: 500,
  service_unavailable: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

/**
 * Codes recorded in a NodeRun's or Run's `rc.completion_error` when the coordinator itself ends it.
 * They never appear as HTTP errors.
 */
export const TERMINATION_CODES = {
  run_canceled: 'The Run was canceled.',
  parent_completed: 'The parent NodeRun was completed before this NodeRun finished.',
  budget_exceeded: 'A budget of the Run was exhausted.',
  run_finished: 'The Run finished before this NodeRun did.',
} as const;

export type TerminationCode = keyof typeof TERMINATION_CODES;

/**
 * Codes recorded on a NodeRun (its `error`, and `rc.completion_error` of the NodeRun and its Run)
 * when its work could not be done: dispatch, policy and executor failures. They never appear as
 * HTTP errors. Calls to other services add `<service>_<kind>` codes (see `ServiceFailureCode`).
 */
export const FAILURE_CODES = {
  policy_denied: 'Denied by policy.',
  unknown_node_kind: 'Unable to resolve node kind',
  atomic_executor_unconfigured: 'Atomic Executor is not configured',
  composite_executor_unconfigured: 'Composite Executor is not configured',
  coordinator_url_unconfigured: 'RC_PUBLIC_URL is required to dispatch composites',
  composite_rejected: 'Composite assignment rejected',
  node_run_timeout: 'The executor did not complete this NodeRun in time',
  invalid_executor_result: 'The Atomic Executor answered with an unusable result',
  execution_owner_lost:
    'The coordinator instance waiting for this execution stopped before it answered; the execution is not repeated',
  token_request_failed: 'No access token could be obtained for the call',
  dispatch_error: 'The coordinator failed while dispatching this NodeRun',
} as const;

export type FailureCode = keyof typeof FAILURE_CODES;

/** The services the coordinator calls, and how a call can fail (`atomic_executor_timeout`...). */
export type ServiceFailureCode = `${
  | 'atomic_executor'
  | 'composite_executor'
  | 'node_registry'
  | 'pdp'
  | 'selection'}_${'unavailable' | 'timeout' | 'error' | 'invalid_response' | 'invalid_request'}`;

/** A NodeRun's failure: the code's own message unless a more precise one is given. */
export function failure(
  code: FailureCode,
  message: string = FAILURE_CODES[code],
  details?: Record<string, unknown>,
): { code: FailureCode; message: string; details?: Record<string, unknown> } {
  return details ? { code, message, details } : { code, message };
}

export class ArpError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: Record<string, unknown> | undefined;
  readonly retryable: boolean | undefined;
  readonly headers: Record<string, string> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options: {
      details?: Record<string, unknown>;
      retryable?: boolean;
      headers?: Record<string, string>;
    } = {},
  ) {
    super(message);
    this.name = 'ArpError';
    this.code = code;
    this.status = ERROR_STATUS[code];
    this.details = options.details;
    this.retryable = options.retryable;
    this.headers = options.headers;
  }
}

/** 400 for a query parameter, named in the message and in `details.errors`. */
export const invalidQuery = (name: string, message: string) =>
  new ArpError('invalid_request', `Query parameter ${name} ${message}`, {
    details: { errors: [{ path: `querystring/${name}`, message }] },
  });

export const runNotFound = (runId: string) => new ArpError('run_not_found', `Run '${runId}' not found`);
export const nodeRunNotFound = (nodeRunId: string) =>
  new ArpError('node_run_not_found', `NodeRun '${nodeRunId}' not found`);
