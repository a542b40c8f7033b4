import { request as httpRequest, type IncomingMessage } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { type JsonRoute, type JsonServer, type JsonServerOptions, listenJson } from './http-plumbing.js';

let server: JsonServer | undefined;
const handled: unknown[] = [];

afterEach(async () => {
  await server?.close();
  server = undefined;
  handled.length = 0;
});

async function listen(overrides: Partial<JsonServerOptions> = {}): Promise<JsonServer> {
  const routes = new Map<string, JsonRoute>([
    [
      '/echo',
      {
        method: 'POST',
        handle: (body) => {
          handled.push(body);
          return { body };
        },
      },
    ],
  ]);
  server = await listenJson({
    host: '127.0.0.1',
    port: 0,
    maxBodyBytes: 1024,
    routes,
    onErrorResponse: () => {},
    ...overrides,
  });
  return server;
}

interface Answer {
  readonly status: number;
  readonly headers: IncomingMessage['headers'];
  readonly text: string;
}

/** Reads one answer with node:http, so headers and body can be sent (or withheld) at will. */
function answerOf(request: ReturnType<typeof httpRequest>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    request.on('error', reject);
    request.on('response', (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        text += chunk;
      });
      response.on('end', () =>
        resolve({ status: response.statusCode ?? 0, headers: response.headers, text }),
      );
    });
  });
}

describe('listenJson body limits', () => {
  it('answers 413 with connection: close from content-length alone, before any body byte is sent', async () => {
    const { port } = await listen();
    const request = httpRequest({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: '/echo',
      headers: { 'content-length': '5000000' },
    });
    request.on('error', () => {});
    // Headers only: a server that waited for the declared body would never answer.
    request.flushHeaders();
    const answer = await answerOf(request);
    expect(answer.status).toBe(413);
    expect(answer.headers.connection).toBe('close');
    expect(answer.text).toMatch(/content-length 5000000 exceeds the body limit of 1024 bytes/);
    request.destroy();
    expect(handled).toEqual([]);
  });

  it('answers 413 to a chunked body as it passes the limit, and stops reading: an endless body ends', async () => {
    const { port } = await listen();
    const request = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/echo' });
    request.on('error', () => {});
    let sent = 0;
    let closed = false;
    request.on('close', () => {
      closed = true;
    });
    // Writes until the connection closes; a server that drained the body to its end would never close it.
    const pump = () => {
      if (closed || request.destroyed) return;
      sent += 256;
      request.write(Buffer.alloc(256, 32), () => setImmediate(pump));
    };
    pump();
    const answer = await answerOf(request);
    expect(answer.status).toBe(413);
    expect(answer.headers.connection).toBe('close');
    expect(answer.text).toMatch(/passed the limit of 1024 bytes/);
    await new Promise<void>((resolve) => {
      if (closed) resolve();
      else request.on('close', () => resolve());
    });
    expect(sent).toBeGreaterThan(1024);
    expect(handled).toEqual([]);
  });

  it('lets a fetch client read the 413 (not a reset) while it is still sending a large body', async () => {
    const { url } = await listen();
    const body = 'x'.repeat(2_000_000);
    const declared = await fetch(`${url}/echo`, { method: 'POST', body });
    expect(declared.status).toBe(413);
    const chunked = await fetch(`${url}/echo`, {
      method: 'POST',
      body: new Blob([body]).stream(),
      duplex: 'half',
    } as RequestInit);
    expect(chunked.status).toBe(413);
    expect(((await chunked.json()) as { error: { code: number } }).error.code).toBe(413);
  });

  it('still reads a body within the limit, chunked or not', async () => {
    const { url } = await listen();
    const small = await fetch(`${url}/echo`, { method: 'POST', body: JSON.stringify({ a: 1 }) });
    expect(await small.json()).toEqual({ body: { a: 1 } });
    const chunked = await fetch(`${url}/echo`, {
      method: 'POST',
      body: new Blob(['{"b":', '2}']).stream(),
      duplex: 'half',
    } as RequestInit);
    expect(await chunked.json()).toEqual({ body: { b: 2 } });
  });
});

describe('listenJson timeouts', () => {
  it('times only the receiving of a request: a slow answer is not cut, a stalled body is', async () => {
    const slowRoutes = new Map<string, JsonRoute>([
      [
        '/slow',
        {
          method: 'POST',
          handle: async () => {
            // Several times the request timeout, as a long generation would be.
            await new Promise((resolve) => setTimeout(resolve, 600));
            return { done: true };
          },
        },
      ],
    ]);
    const { url, port } = await listen({
      routes: slowRoutes,
      requestTimeoutMs: 150,
      headersTimeoutMs: 150,
      timeoutCheckIntervalMs: 25,
    });
    const slow = await fetch(`${url}/slow`, { method: 'POST', body: '{}' });
    expect(slow.status).toBe(200);
    expect(await slow.json()).toEqual({ done: true });

    // Declares 10 bytes, sends 2, then stalls: the server gives up on it (408, or a closed connection).
    const stalled = httpRequest({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: '/slow',
      headers: { 'content-length': '10' },
    });
    stalled.write('{"');
    const outcome = await answerOf(stalled).then(
      (answer) => answer.status,
      () => 'closed',
    );
    expect([408, 'closed']).toContain(outcome);
  });
});
