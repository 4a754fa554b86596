/**
 * The CLI's exit codes and the three failures it expects. Scripts branch on the codes, so they are
 * part of the interface: each is listed in `arp-rc --help` and docs/cli.md, and never reused.
 */
export const EXIT = {
  ok: 0,
  /** The service answered with an error (an ErrorEnvelope, or any non-2xx answer). */
  serviceError: 1,
  /** Bad flags, bad JSON, an unknown command: nothing was sent. */
  usage: 2,
  /** No answer: connection refused, DNS failure, reset, timeout. */
  unreachable: 3,
  /** `runs start --wait`: the Run ended `failed`. */
  runFailed: 4,
  /** `runs start --wait`: the Run ended `canceled`. */
  runCanceled: 5,
  /** An unexpected error: a bug in the CLI. */
  bug: 70,
  /** Interrupted by Ctrl-C (SIGINT), as shells report a process ended by SIGINT. */
  interrupted: 130,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** A non-2xx answer, with the ErrorEnvelope's fields when the body was one. */
export class ServiceError extends Error {
  override readonly name = 'ServiceError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly requestId: string | undefined,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

/** The request got no answer at all. `reason` is the transport's code (ECONNREFUSED, ...). */
export class UnreachableError extends Error {
  override readonly name = 'UnreachableError';
  constructor(
    readonly url: string,
    readonly reason: string,
  ) {
    super(`cannot reach ${url}: ${reason}`);
  }
}
