import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** A logged-in browser: its cookie token and the token its state-changing requests must carry. */
export interface Session {
  csrf: string;
  expiresAt: number;
  /** Set at logout: the session's open streams end at their next flush. */
  closed?: boolean;
}

/** The session cookie's name; its path is /console, so no other route ever receives it. */
const COOKIE = 'pws_console';
const SESSION_MS = 12 * 60 * 60 * 1000;

/**
 * The console's password check and its sessions, in this process's memory: a restart logs
 * everyone out, and each node of a cluster has its own (a console is served by one node).
 */
export class Sessions {
  private readonly passwordHash: Buffer;
  private readonly sessions = new Map<string, Session>();

  constructor(password: string) {
    this.passwordHash = sha256(password);
  }

  /**
   * Compares hashes, so the comparison takes the same time whatever the length or the first
   * wrong character of the guess.
   */
  passwordMatches(given: string): boolean {
    return timingSafeEqual(sha256(given), this.passwordHash);
  }

  /** Opens a session; returns its cookie token. */
  open(now: number): string {
    this.prune(now);
    const token = randomBytes(32).toString('base64url');
    this.sessions.set(token, { csrf: randomBytes(32).toString('base64url'), expiresAt: now + SESSION_MS });
    return token;
  }

  /** The session of a request's Cookie header, if it holds a live one. */
  find(cookieHeader: string, now: number): Session | null {
    const token = cookieValue(cookieHeader, COOKIE);
    if (token === null) return null;
    const session = this.sessions.get(token);
    if (session === undefined || session.expiresAt <= now) return null;
    return session;
  }

  close(cookieHeader: string): void {
    const token = cookieValue(cookieHeader, COOKIE);
    if (token === null) return;
    const session = this.sessions.get(token);
    if (session !== undefined) session.closed = true;
    this.sessions.delete(token);
  }

  /** The Set-Cookie value for a new session (`secure` when served over TLS). */
  static cookie(token: string, secure: boolean): string {
    return `${COOKIE}=${token}; Path=/console; HttpOnly; SameSite=Strict; Max-Age=${SESSION_MS / 1000}${secure ? '; Secure' : ''}`;
  }

  static clearedCookie(): string {
    return `${COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0`;
  }

  /** True when the token a request carries is its session's, compared in constant time. */
  static csrfMatches(session: Session, given: string): boolean {
    return timingSafeEqual(sha256(given), sha256(session.csrf));
  }

  private prune(now: number): void {
    for (const [token, session] of this.sessions) if (session.expiresAt <= now) this.sessions.delete(token);
  }
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

function cookieValue(header: string, name: string): string | null {
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}
