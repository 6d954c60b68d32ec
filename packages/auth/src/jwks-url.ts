import { isIPv4 } from 'node:net';

/**
 * Whether `hostname` (as `URL#hostname` gives it: lower case, IPv4 normalised, IPv6 in
 * brackets) is this machine: `localhost`, `127.0.0.0/8` or `::1`.
 */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.toLowerCase();
  if (host === 'localhost' || host === '[::1]' || host === '::1') return true;
  return isIPv4(host) && host.startsWith('127.');
}

/**
 * Why a JWKS URL cannot be used, or `undefined` when it can: it must be an `https://` URL;
 * plain `http://` only on a loopback host, since anyone on the path could swap the keys and
 * sign tokens of their own. The value itself is never part of the answer.
 */
export function jwksUrlProblem(value: string): string | undefined {
  const url = URL.canParse(value) ? new URL(value) : undefined;
  if (url?.protocol === 'https:') return undefined;
  if (url?.protocol === 'http:') {
    if (isLoopbackHost(url.hostname)) return undefined;
    return 'must be an https:// URL (plain http:// only on a loopback host: localhost, 127.0.0.0/8, ::1)';
  }
  return 'must be an http(s) URL';
}
