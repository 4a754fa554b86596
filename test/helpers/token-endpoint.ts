/**
 * A fake OAuth2 token endpoint (RFC 6749 client-credentials grant) on loopback for outbound-auth
 * tests: a `node:http` server on 127.0.0.1, port 0. It records every request (including the way the
 * client authenticated: HTTP Basic or `client_id`/`client_secret` form fields), answers with
 * `{ access_token: 'tok-<audience>-<n>', token_type: 'Bearer', expires_in: 300 }` by default, and lets
 * a test change the answer, fail, or hold answers until it releases them. No clocks: a short-lived
 * token is one with a small `expires_in`, and a test waits for requests with `waitForRequests`.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface TokenRequest {
  /** Arrival order, from 1. */
  readonly index: number;
  readonly method: string;
  /** Path without the query string. */
  readonly path: string;
  readonly contentType: string | undefined;
  readonly grant_type: string | undefined;
  /** From the Basic credentials when sent that way, else from the form. */
  readonly client_id: string | undefined;
  readonly client_secret: string | undefined;
  readonly audience: string | undefined;
  readonly scope: string | undefined;
  /** The raw `Authorization` header, when one was sent. */
  readonly authorization?: string;
  /** How the client authenticated (`both` is a protocol error, answered 400). */
  readonly credentials: 'basic' | 'body' | 'both' | 'none';
  /** The whole form body. */
  readonly form: URLSearchParams;
  readonly text: string;
}

export interface DefaultToken {
  readonly access_token: string;
  readonly token_type: 'Bearer';
  readonly expires_in: number;
}

export type TokenReply =
  | {
      readonly status?: number;
      /** Sent as JSON. */
      readonly json?: unknown;
      /** Sent verbatim as text/plain unless `headers` says otherwise. */
      readonly text?: string;
      readonly headers?: Record<string, string>;
    }
  /** Closes the connection without answering. */
  | { readonly destroy: true };

/**
 * Answers a valid request; `token` is the default answer, with its `n` already counted, so
 * `(req, token) => ({ json: { ...token, expires_in: 1 } })` changes only the lifetime.
 */
export type TokenResponder = (request: TokenRequest, token: DefaultToken) => TokenReply | Promise<TokenReply>;

export interface TokenEndpointOptions {
  /** Path served; default `/realms/test/protocol/openid-connect/token`. Other paths answer 404. */
  readonly path?: string;
  /** `expires_in` of default answers; default 300. */
  readonly expiresIn?: number;
  /** When set, only these `client_id` → `client_secret` pairs are accepted (else 401 `invalid_client`). */
  readonly clients?: Readonly<Record<string, string>>;
  /** Initial responder (see `respondWith`). */
  readonly respondWith?: TokenResponder;
}

export interface TokenEndpoint {
  /** Full URL of the token endpoint (origin + path): the value for `ARP_AUTH_TOKEN_ENDPOINT`. */
  readonly url: string;
  /** `http://127.0.0.1:<port>`. */
  readonly origin: string;
  /** Every request received, in arrival order. */
  requests(): TokenRequest[];
  /** Resolves once at least `count` requests have arrived (at arrival, before any hold or answer). */
  waitForRequests(count: number): Promise<TokenRequest[]>;
  /** Tokens issued so far (the `n` of the last default token). */
  issued(): number;
  /** Answers valid requests with `fn` from now on; `null` restores the default answer. */
  respondWith(fn: TokenResponder | null): void;
  /**
   * Makes every request fail from now on: a status answers `{ error: 'server_error' }` (or
   * `invalid_client` for 401) with that status, `'close'` drops the connection, `false` stops failing.
   */
  fail(mode: number | 'close' | false): void;
  /** Requests arriving from now until `release()` is called are recorded but not answered until then. */
  hold(): () => void;
  close(): Promise<void>;
}

interface Gate {
  readonly promise: Promise<void>;
  readonly release: () => void;
}

function gate(): Gate {
  let release!: () => void;
  const promise = new Promise<void>((resolve) => {
    release = resolve;
  });
  return { promise, release };
}

function formDecode(value: string): string {
  try {
    return decodeURIComponent(value.replace(/\+/g, ' '));
  } catch {
    return value;
  }
}

/** `Basic base64(urlencode(id):urlencode(secret))` (RFC 6749 §2.3.1), or undefined. */
function parseBasic(header: string | undefined): { id: string; secret: string } | undefined {
  const match = /^basic\s+(\S+)\s*$/i.exec(header ?? '');
  if (!match?.[1]) return undefined;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return { id: formDecode(decoded), secret: '' };
  return { id: formDecode(decoded.slice(0, colon)), secret: formDecode(decoded.slice(colon + 1)) };
}

const oauthError = (status: number, error: string, description: string): TokenReply => ({
  status,
  json: { error, error_description: description },
  ...(status === 401 ? { headers: { 'www-authenticate': 'Basic realm="token"' } } : {}),
});

/** Starts a token endpoint on 127.0.0.1:0. Close it with `close()`. */
export async function startTokenEndpoint(options: TokenEndpointOptions = {}): Promise<TokenEndpoint> {
  const servedPath = options.path ?? '/realms/test/protocol/openid-connect/token';
  const expiresIn = options.expiresIn ?? 300;
  const recorded: TokenRequest[] = [];
  const waiters: { count: number; resolve: () => void; reject: (error: Error) => void }[] = [];
  const gates = new Set<Gate>();
  let current: Gate | undefined;
  let responder: TokenResponder | null = options.respondWith ?? null;
  let failMode: number | 'close' | false = false;
  let issued = 0;

  const answer = async (request: TokenRequest): Promise<TokenReply> => {
    if (failMode === 'close') return { destroy: true };
    if (failMode !== false)
      return oauthError(failMode, failMode === 401 ? 'invalid_client' : 'server_error', 'failing on purpose');
    if (request.path !== servedPath) return oauthError(404, 'not_found', `no route ${request.path}`);
    if (request.method !== 'POST') return oauthError(405, 'invalid_request', 'POST required');
    if (!/^application\/x-www-form-urlencoded\s*(;|$)/i.test(request.contentType ?? ''))
      return oauthError(400, 'invalid_request', 'form-encoded body required');
    if (request.credentials === 'both')
      return oauthError(400, 'invalid_request', 'more than one client authentication method');
    if (request.client_id === undefined || request.client_id === '' || request.client_secret === undefined)
      return oauthError(401, 'invalid_client', 'client authentication required');
    if (options.clients && options.clients[request.client_id] !== request.client_secret)
      return oauthError(401, 'invalid_client', 'bad client credentials');
    if (request.grant_type !== 'client_credentials')
      return oauthError(400, 'unsupported_grant_type', `grant_type ${request.grant_type ?? '(none)'}`);
    issued++;
    const token: DefaultToken = {
      access_token: `tok-${request.audience ?? ''}-${issued}`,
      token_type: 'Bearer',
      expires_in: expiresIn,
    };
    return responder ? responder(request, token) : { json: token };
  };

  const send = (req: http.IncomingMessage, res: http.ServerResponse, reply: TokenReply): void => {
    if (res.destroyed || res.writableEnded) return;
    if ('destroy' in reply) {
      req.socket.destroy();
      return;
    }
    const payload = reply.json !== undefined ? JSON.stringify(reply.json) : (reply.text ?? '');
    const type = reply.json !== undefined ? 'application/json' : 'text/plain';
    res.writeHead(reply.status ?? 200, {
      'content-type': type,
      'content-length': String(Buffer.byteLength(payload)),
      'cache-control': 'no-store',
      ...reply.headers,
    });
    res.end(payload);
  };

  const server = http.createServer((req, res) => {
    res.on('error', () => {});
    req.on('error', () => {});
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const form = new URLSearchParams(text);
      const authorization = req.headers.authorization;
      const basic = parseBasic(authorization);
      const bodySecret = form.get('client_secret') ?? undefined;
      const credentials: TokenRequest['credentials'] = basic
        ? bodySecret !== undefined
          ? 'both'
          : 'basic'
        : bodySecret !== undefined || form.has('client_id')
          ? 'body'
          : 'none';
      const request: TokenRequest = {
        index: recorded.length + 1,
        method: req.method ?? 'GET',
        path: new URL(req.url ?? '/', 'http://token.invalid').pathname,
        contentType: req.headers['content-type'],
        grant_type: form.get('grant_type') ?? undefined,
        client_id: basic ? basic.id : (form.get('client_id') ?? undefined),
        client_secret: basic ? basic.secret : bodySecret,
        audience: form.get('audience') ?? undefined,
        scope: form.get('scope') ?? undefined,
        ...(authorization !== undefined ? { authorization } : {}),
        credentials,
        form,
        text,
      };
      recorded.push(request);
      for (const waiter of [...waiters]) {
        if (recorded.length >= waiter.count) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve();
        }
      }
      const held = current;
      Promise.resolve(held?.promise)
        .then(() => answer(request))
        .then(
          (reply) => send(req, res, reply),
          () => send(req, res, oauthError(500, 'server_error', 'responder threw')),
        );
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;

  return {
    url: `${origin}${servedPath}`,
    origin,
    requests: () => [...recorded],
    async waitForRequests(count) {
      if (recorded.length < count)
        await new Promise<void>((resolve, reject) => waiters.push({ count, resolve, reject }));
      return [...recorded];
    },
    issued: () => issued,
    respondWith(fn) {
      responder = fn;
    },
    fail(mode) {
      failMode = mode;
    },
    hold() {
      const g = gate();
      gates.add(g);
      current = g;
      return () => {
        gates.delete(g);
        if (current === g) current = undefined;
        g.release();
      };
    },
    async close() {
      for (const waiter of waiters.splice(0))
        waiter.reject(new Error(`token endpoint closed while waiting for ${waiter.count} requests`));
      current = undefined;
      for (const g of gates) g.release();
      gates.clear();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
