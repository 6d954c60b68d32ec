import type { JwtConfig } from './services.js';

/** A configuration that starts but deserves an operator's look; logged at start. */
export interface ConfigWarning {
  /** The variables the warning is about (set, or missing). */
  variables: string[];
  message: string;
}

/**
 * Warnings about the JWT settings: a public key or a JWKS without `JWT_ISSUER` or
 * `JWT_AUDIENCE` accepts every token its keys signed, also those an identity provider issued
 * for another application. (A shared secret belongs to this deployment alone.)
 */
export function jwtWarnings(jwt: JwtConfig | undefined): ConfigWarning[] {
  if (!jwt || (jwt.publicKey === undefined && jwt.jwksUrl === undefined)) return [];
  const source = jwt.jwksUrl !== undefined ? 'JWT_JWKS_URL' : 'JWT_PUBLIC_KEY';
  const missing = [jwt.issuer === undefined && 'JWT_ISSUER', jwt.audience === undefined && 'JWT_AUDIENCE'].filter(
    (v): v is string => v !== false,
  );
  if (missing.length === 0) return [];
  return [
    {
      variables: [source, ...missing],
      message:
        `${source} is set without ${missing.join(' and ')}: ` +
        `tokens are accepted whatever their ${missing.map((v) => (v === 'JWT_ISSUER' ? 'iss' : 'aud')).join(' and ')}, ` +
        'also tokens the same keys signed for another application; set them to the values your identity provider puts in its tokens',
    },
  ];
}

/**
 * Warnings about the webhook endpoints: plain `http://` to another host sends every event (user ids,
 * room names) in clear text; the signature keeps it from being forged, not from being read.
 */
export function webhookWarnings(endpoints: readonly { url: string; label: string }[] | undefined): ConfigWarning[] {
  const plain = (endpoints ?? []).filter((e) => {
    const u = new URL(e.url);
    return u.protocol === 'http:' && !isLoopbackHost(u.hostname);
  });
  if (!plain.length) return [];
  return [
    {
      variables: ['WEBHOOK_URLS'],
      message: `WEBHOOK_URLS has plain http:// endpoints (${plain.map((e) => e.label).join(', ')}): the events travel unencrypted; use https:// outside a private network`,
    },
  ];
}

function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
