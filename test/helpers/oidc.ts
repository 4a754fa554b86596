/**
 * A real OIDC issuer on loopback for auth tests: a `node:http` server on 127.0.0.1, port 0, that
 * serves a discovery document and a JWKS, and mints tokens with jose. Keys are real (RS256, ES256,
 * …) and can be rotated; the attack tokens (foreign key, unknown `kid`, `alg: none`, HS256 keyed with
 * the RSA public key, tampered payload) are built here so that every auth test uses the same ones.
 * Nothing waits on a clock: an expired token is one whose `exp` is in the past.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  base64url,
  type CryptoKey,
  decodeJwt,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  type JWK,
  type JWTHeaderParameters,
  type JWTPayload,
  SignJWT,
} from 'jose';

/** The audience the coordinator expects in the JARVIS deployment (`ARP_AUTH_SERVICE_ID`). */
export const DEFAULT_AUDIENCE = 'arp-run-coordinator';
export const DEFAULT_SUBJECT = 'user-1';
/** Default token lifetime, in seconds. */
export const DEFAULT_TTL_SECONDS = 300;

export interface IssuerOptions {
  /** Path of the issuer under the server's origin; default `/realms/test` (Keycloak style). */
  readonly realmPath?: string;
  /** Default `aud` of minted tokens; default `arp-run-coordinator`. */
  readonly audience?: string | string[];
  /** Default `sub` of minted tokens; default `user-1`. */
  readonly subject?: string;
  /** Keys published at start; default `[{ alg: 'RS256', kid: 'rs-1' }, { alg: 'ES256', kid: 'es-1' }]`. */
  readonly keys?: readonly { readonly alg: string; readonly kid: string }[];
  /** `token_endpoint` advertised by discovery; default `<issuer>/protocol/openid-connect/token`. */
  readonly tokenEndpoint?: string;
}

export interface MintOptions {
  /** Key to sign with (any key this issuer ever had, including removed ones). */
  readonly kid?: string;
  /** Without `kid`: the first published key with this `alg`. */
  readonly alg?: string;
  /** `exp` = now + this many seconds (negative for an expired token); default 300. */
  readonly expiresIn?: number;
  /** Adds `nbf` = now + this many seconds (positive for a not-yet-valid token). */
  readonly notBefore?: number;
  /** `iss` override (default: this issuer). */
  readonly issuer?: string;
  /** `aud` override (default: the issuer's audience). */
  readonly audience?: string | string[];
  /** Claims left out of the payload (e.g. `['exp']`, `['aud']`), applied after `claims`. */
  readonly omit?: readonly string[];
  /** Protected-header overrides, merged over `{ alg, kid, typ: 'JWT' }`; a `kid: undefined` drops it. */
  readonly header?: Partial<JWTHeaderParameters> & Record<string, unknown>;
}

export interface SigningKey {
  readonly kid: string;
  readonly alg: string;
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
  /** The public JWK as published: `kty`…, `kid`, `alg`, `use: 'sig'`. */
  readonly publicJwk: JWK;
}

export interface Issuer {
  /** Base URL, `http://127.0.0.1:<port>/realms/test`. */
  readonly url: string;
  /** Same as `url`: the expected `iss`. */
  readonly issuer: string;
  /** `<issuer>/.well-known/openid-configuration`. */
  readonly discoveryUrl: string;
  /** `<issuer>/protocol/openid-connect/certs`. */
  readonly jwksUri: string;
  /** `token_endpoint` as advertised by discovery; this server does not serve it (see token-endpoint.ts). */
  readonly tokenEndpoint: string;
  /** Default `aud` of minted tokens. */
  readonly audience: string | string[];

  /** Generates a key (`extractable: true`) and publishes it in the JWKS. */
  addKey(alg: string, kid: string): Promise<SigningKey>;
  /** Unpublishes a key; it can still sign (`mint(…, { kid })`) to model a token from before rotation. */
  removeKey(kid: string): void;
  /** A key this issuer ever had (published or removed). */
  key(kid: string): SigningKey;
  /** `kid`s currently published, in JWKS order. */
  kids(): string[];
  /** The JWKS document as currently served. */
  jwks(): { keys: JWK[] };

  /** A valid token (by default: RS256 with the first published RS256 key; `iss`, `aud`, `sub`, `iat`, `exp`). */
  mint(claims?: JWTPayload, options?: MintOptions): Promise<string>;
  /** Signed by a fresh key that is not published, with the header claiming a published `kid` (default key's). */
  mintWithForeignKey(claims?: JWTPayload, options?: MintOptions): Promise<string>;
  /** Signed by a published key's private key, but the header names a `kid` that is not in the JWKS. */
  mintUnknownKid(claims?: JWTPayload, options?: MintOptions & { unknownKid?: string }): Promise<string>;
  /** Unsecured JWT: `{"alg":"none","typ":"JWT"}` header, the payload, an empty signature. */
  mintNone(claims?: JWTPayload, options?: MintOptions): string;
  /**
   * HS256 token whose HMAC secret is the RS256 public key: the PEM text (default) or the SPKI DER
   * bytes; the header names that RSA key's `kid`.
   */
  mintHs256WithPublicKey(
    claims?: JWTPayload,
    options?: MintOptions & { encoding?: 'pem' | 'der'; rsaKid?: string },
  ): Promise<string>;
  /** Rewrites the payload without re-signing: merges `changes` (default: `sub` → `<sub>-tampered`). */
  tamper(token: string, changes?: JWTPayload): string;

  /** Requests served at the JWKS URI so far (including failed ones). */
  jwksRequests(): number;
  /** Requests served at the discovery URL so far (including failed ones). */
  discoveryRequests(): number;
  /** While on, the JWKS endpoint answers 500. */
  failJwks(on: boolean): void;
  /** While on, the discovery endpoint answers 500. */
  failDiscovery(on: boolean): void;
  close(): Promise<void>;
}

const DEFAULT_KEYS = [
  { alg: 'RS256', kid: 'rs-1' },
  { alg: 'ES256', kid: 'es-1' },
] as const;

const nowSeconds = (): number => Math.floor(Date.now() / 1000);

async function makeKey(alg: string, kid: string): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(publicKey);
  return { kid, alg, privateKey, publicKey, publicJwk: { ...jwk, kid, alg, use: 'sig' } };
}

function encodeSegment(value: unknown): string {
  return base64url.encode(JSON.stringify(value));
}

/** Starts an issuer on 127.0.0.1:0 with its default keys generated. Close it with `close()`. */
export async function startIssuer(options: IssuerOptions = {}): Promise<Issuer> {
  const realmPath = `/${(options.realmPath ?? '/realms/test').replace(/^\/+|\/+$/g, '')}`;
  const audience = options.audience ?? DEFAULT_AUDIENCE;
  const subject = options.subject ?? DEFAULT_SUBJECT;

  const allKeys = new Map<string, SigningKey>();
  const published: string[] = [];
  const foreignKeys = new Map<string, Promise<SigningKey>>();
  let jwksCount = 0;
  let discoveryCount = 0;
  let jwksFailing = false;
  let discoveryFailing = false;

  const jwks = (): { keys: JWK[] } => ({
    keys: published.map((kid) => ({ ...allKeys.get(kid)!.publicJwk })),
  });

  let urls = { issuer: '', discovery: '', jwks: '', token: '' };
  const discoveryPath = `${realmPath}/.well-known/openid-configuration`;
  const jwksPath = `${realmPath}/protocol/openid-connect/certs`;

  const server = http.createServer((req, res) => {
    res.on('error', () => {});
    req.on('error', () => {});
    req.resume();
    const path = new URL(req.url ?? '/', 'http://issuer.invalid').pathname;
    const send = (status: number, body: unknown) => {
      const payload = JSON.stringify(body);
      res.writeHead(status, {
        'content-type': 'application/json',
        'content-length': String(Buffer.byteLength(payload)),
        'cache-control': 'no-store',
      });
      res.end(payload);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, { error: 'method_not_allowed' });
    if (path === discoveryPath) {
      discoveryCount++;
      if (discoveryFailing) return send(500, { error: 'server_error' });
      return send(200, {
        issuer: urls.issuer,
        jwks_uri: urls.jwks,
        token_endpoint: urls.token,
        id_token_signing_alg_values_supported: [...new Set(published.map((k) => allKeys.get(k)!.alg))],
        grant_types_supported: ['client_credentials'],
      });
    }
    if (path === jwksPath) {
      jwksCount++;
      if (jwksFailing) return send(500, { error: 'server_error' });
      return send(200, jwks());
    }
    return send(404, { error: 'not_found' });
  });

  const addKey = async (alg: string, kid: string): Promise<SigningKey> => {
    if (published.includes(kid)) throw new Error(`issuer: kid ${kid} is already published`);
    const key = await makeKey(alg, kid);
    allKeys.set(kid, key);
    published.push(kid);
    return key;
  };

  for (const { alg, kid } of options.keys ?? DEFAULT_KEYS) await addKey(alg, kid);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;
  const issuer = `${origin}${realmPath}`;
  urls = {
    issuer,
    discovery: `${origin}${discoveryPath}`,
    jwks: `${origin}${jwksPath}`,
    token: options.tokenEndpoint ?? `${issuer}/protocol/openid-connect/token`,
  };

  const key = (kid: string): SigningKey => {
    const found = allKeys.get(kid);
    if (!found) throw new Error(`issuer: no key with kid ${kid}`);
    return found;
  };

  const pickKey = (opts: MintOptions, fallbackAlg = 'RS256'): SigningKey => {
    if (opts.kid !== undefined) return key(opts.kid);
    const wanted = opts.alg ?? fallbackAlg;
    const kid = published.find((k) => allKeys.get(k)!.alg === wanted);
    if (kid !== undefined) return allKeys.get(kid)!;
    if (opts.alg === undefined && published[0] !== undefined) return allKeys.get(published[0])!;
    throw new Error(`issuer: no published key with alg ${wanted}`);
  };

  const payloadFor = (claims: JWTPayload, opts: MintOptions): JWTPayload => {
    const now = nowSeconds();
    const payload: Record<string, unknown> = {
      iss: opts.issuer ?? issuer,
      aud: opts.audience ?? audience,
      sub: subject,
      iat: now,
      exp: now + (opts.expiresIn ?? DEFAULT_TTL_SECONDS),
      ...(opts.notBefore !== undefined ? { nbf: now + opts.notBefore } : {}),
      ...claims,
    };
    for (const name of opts.omit ?? []) delete payload[name];
    for (const [name, value] of Object.entries(payload)) if (value === undefined) delete payload[name];
    return payload as JWTPayload;
  };

  const headerFor = (alg: string, kid: string | undefined, opts: MintOptions): JWTHeaderParameters => {
    const header: Record<string, unknown> = { alg, ...(kid !== undefined ? { kid } : {}), typ: 'JWT' };
    for (const [name, value] of Object.entries(opts.header ?? {})) {
      if (value === undefined) delete header[name];
      else header[name] = value;
    }
    return header as JWTHeaderParameters;
  };

  const sign = (
    payload: JWTPayload,
    header: JWTHeaderParameters,
    secret: CryptoKey | Uint8Array,
  ): Promise<string> => new SignJWT(payload).setProtectedHeader(header).sign(secret);

  const mint = async (claims: JWTPayload = {}, opts: MintOptions = {}): Promise<string> => {
    const signer = pickKey(opts);
    return sign(payloadFor(claims, opts), headerFor(signer.alg, signer.kid, opts), signer.privateKey);
  };

  const mintWithForeignKey = async (claims: JWTPayload = {}, opts: MintOptions = {}): Promise<string> => {
    const claimed = pickKey(opts);
    let foreign = foreignKeys.get(claimed.alg);
    if (!foreign) {
      foreign = makeKey(claimed.alg, `foreign-${claimed.alg}`);
      foreignKeys.set(claimed.alg, foreign);
    }
    const { privateKey } = await foreign;
    return sign(payloadFor(claims, opts), headerFor(claimed.alg, claimed.kid, opts), privateKey);
  };

  const mintUnknownKid = async (
    claims: JWTPayload = {},
    opts: MintOptions & { unknownKid?: string } = {},
  ): Promise<string> => {
    const signer = pickKey(opts);
    const unknownKid = opts.unknownKid ?? 'unknown-kid';
    if (published.includes(unknownKid)) throw new Error(`issuer: kid ${unknownKid} is published`);
    return sign(payloadFor(claims, opts), headerFor(signer.alg, unknownKid, opts), signer.privateKey);
  };

  const mintNone = (claims: JWTPayload = {}, opts: MintOptions = {}): string => {
    const header = { alg: 'none', typ: 'JWT', ...opts.header };
    return `${encodeSegment(header)}.${encodeSegment(payloadFor(claims, opts))}.`;
  };

  const mintHs256WithPublicKey = async (
    claims: JWTPayload = {},
    opts: MintOptions & { encoding?: 'pem' | 'der'; rsaKid?: string } = {},
  ): Promise<string> => {
    const rsa = opts.rsaKid !== undefined ? key(opts.rsaKid) : pickKey({ alg: 'RS256' });
    const pem = await exportSPKI(rsa.publicKey);
    const secret = (opts.encoding ?? 'pem') === 'pem' ? new TextEncoder().encode(pem) : spkiDerFromPem(pem);
    return sign(payloadFor(claims, opts), headerFor('HS256', rsa.kid, opts), secret);
  };

  const tamper = (token: string, changes?: JWTPayload): string => {
    const [header, , signature] = token.split('.');
    if (header === undefined || signature === undefined) throw new Error('issuer: not a compact JWT');
    const payload = decodeJwt(token);
    const changed = changes ?? { sub: `${payload.sub ?? 'nobody'}-tampered` };
    return `${header}.${encodeSegment({ ...payload, ...changed })}.${signature}`;
  };

  return {
    url: issuer,
    issuer,
    discoveryUrl: urls.discovery,
    jwksUri: urls.jwks,
    tokenEndpoint: urls.token,
    audience,
    addKey,
    removeKey(kid) {
      const at = published.indexOf(kid);
      if (at < 0) throw new Error(`issuer: kid ${kid} is not published`);
      published.splice(at, 1);
    },
    key,
    kids: () => [...published],
    jwks,
    mint,
    mintWithForeignKey,
    mintUnknownKid,
    mintNone,
    mintHs256WithPublicKey,
    tamper,
    jwksRequests: () => jwksCount,
    discoveryRequests: () => discoveryCount,
    failJwks(on) {
      jwksFailing = on;
    },
    failDiscovery(on) {
      discoveryFailing = on;
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}

/** The DER bytes inside a PEM block. */
export function spkiDerFromPem(pem: string): Uint8Array {
  const body = pem.replace(/-----(BEGIN|END) [A-Z ]+-----/g, '').replace(/\s+/g, '');
  return new Uint8Array(Buffer.from(body, 'base64'));
}

/** `Authorization` header value for a token. */
export function bearer(token: string): { authorization: string } {
  return { authorization: `Bearer ${token}` };
}
