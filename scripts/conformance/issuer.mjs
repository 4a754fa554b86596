// A tiny standalone token issuer for the auth conformance run and the get-auth benchmark: an RS256
// key made at start, its JWKS served on loopback, and one token minted for the issuer and audience
// given on the command line. Test tooling only: the key lives in memory and dies with the process.
//
//   node scripts/conformance/issuer.mjs serve [--host 127.0.0.1] [--port 0] [--issuer URL]
//        [--audience arp-run-coordinator] [--subject conformance] [--ttl 3600] [--kid issuer-1]
//
// Once listening it writes ONE JSON line to stdout and keeps serving until SIGTERM/SIGINT/SIGHUP (or
// until the process that started it is gone):
//   {"jwks_uri", "issuer", "audience", "subject", "kid", "token", "expires_at", "discovery_url"?}
// Routes: GET /jwks (the JWKS); GET /.well-known/openid-configuration (only when the issuer is this
// server's own origin, the default, so ARP_AUTH_ISSUER alone also finds the keys). A coordinator
// started with ARP_AUTH_MODE=required ARP_AUTH_JWKS_URI=<jwks_uri> ARP_AUTH_ISSUER=<issuer>
// ARP_AUTH_AUDIENCE=<audience> accepts `Authorization: Bearer <token>` until `expires_at`.
import http from 'node:http';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';

const USAGE = `usage: node scripts/conformance/issuer.mjs serve [options]
  --host H        address to listen on (default 127.0.0.1)
  --port P        port (default 0: a free one)
  --issuer URL    iss of the token (default: this server's origin, http://H:P)
  --audience A    aud of the token; a comma-separated list gives several (default arp-run-coordinator)
  --subject S     sub of the token (default conformance)
  --ttl S         token lifetime in seconds (default 3600)
  --kid K         key id in the JWKS and the token header (default issuer-1)`;

function parseArgs(argv) {
  if (argv[0] === '--help' || argv[0] === '-h') {
    console.log(USAGE);
    process.exit(0);
  }
  if (argv[0] !== 'serve') throw new Error(`expected the 'serve' command\n${USAGE}`);
  const options = {
    host: '127.0.0.1',
    port: 0,
    issuer: undefined,
    audience: 'arp-run-coordinator',
    subject: 'conformance',
    ttl: 3600,
    kid: 'issuer-1',
  };
  for (let i = 1; i < argv.length; i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s, 2);
    const value = () => {
      const text = inline ?? argv[++i];
      if (text === undefined || text === '') throw new Error(`${flag} needs a value`);
      return text;
    };
    const whole = (name, text, min, max) => {
      const n = Number(text);
      if (!Number.isInteger(n) || n < min || n > max)
        throw new Error(`${name} must be a whole number ${min}..${max}`);
      return n;
    };
    switch (flag) {
      case '--host':
        options.host = value();
        break;
      case '--port':
        options.port = whole('--port', value(), 0, 65535);
        break;
      case '--issuer':
        options.issuer = value();
        break;
      case '--audience':
        options.audience = value();
        break;
      case '--subject':
        options.subject = value();
        break;
      case '--ttl':
        options.ttl = whole('--ttl', value(), 1, 366 * 24 * 3600);
        break;
      case '--kid':
        options.kid = value();
        break;
      case '--help':
      case '-h':
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown option ${argv[i]}\n${USAGE}`);
    }
  }
  return options;
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const { privateKey, publicKey } = await generateKeyPair('RS256');
  const jwks = JSON.stringify({
    keys: [{ ...(await exportJWK(publicKey)), kid: options.kid, alg: 'RS256', use: 'sig' }],
  });

  let discovery;
  const server = http.createServer((request, response) => {
    const path = (request.url ?? '/').split('?', 1)[0];
    const send = (status, body) => {
      response.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      response.end(body);
    };
    if (request.method !== 'GET' && request.method !== 'HEAD')
      return send(405, '{"error":"method not allowed"}');
    if (path === '/jwks') return send(200, jwks);
    if (path === '/.well-known/openid-configuration' && discovery) return send(200, discovery);
    send(404, '{"error":"not found"}');
  });
  server.keepAliveTimeout = 1000;
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, resolve);
  });
  const { port } = server.address();
  const origin = `http://${options.host.includes(':') ? `[${options.host}]` : options.host}:${port}`;
  const issuer = options.issuer ?? origin;
  const jwksUri = `${origin}/jwks`;
  if (issuer === origin) discovery = JSON.stringify({ issuer, jwks_uri: jwksUri });

  const audience = options.audience.includes(',')
    ? options.audience
        .split(',')
        .map((a) => a.trim())
        .filter(Boolean)
    : options.audience;
  const now = Math.floor(Date.now() / 1000);
  const expiresAt = now + options.ttl;
  const token = await new SignJWT({})
    .setProtectedHeader({ alg: 'RS256', kid: options.kid, typ: 'JWT' })
    .setIssuer(issuer)
    .setAudience(audience)
    .setSubject(options.subject)
    .setIssuedAt(now)
    .setExpirationTime(expiresAt)
    .sign(privateKey);

  const stop = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 1000).unref();
  };
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.once(signal, stop);
  // Never outlive the script that started us (e.g. when it was SIGKILLed before its cleanup ran).
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) stop();
  }, 1000).unref();

  process.stdout.write(
    `${JSON.stringify({
      jwks_uri: jwksUri,
      issuer,
      audience,
      subject: options.subject,
      kid: options.kid,
      token,
      expires_at: new Date(expiresAt * 1000).toISOString(),
      ...(discovery ? { discovery_url: `${origin}/.well-known/openid-configuration` } : {}),
    })}\n`,
  );
}

main().catch((error) => {
  process.stderr.write(`issuer: ${error?.message ?? error}\n`);
  process.exit(1);
});
