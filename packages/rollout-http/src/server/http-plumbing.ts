import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MoerlError } from '@moerl/core';

/** An error answered with its own status and message (400, 404, 405, 413, 503). */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** Answer with `connection: close` and stop reading the request (a body too large to read). */
    readonly closeConnection = false,
  ) {
    super(message);
  }
}

const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;
const DEFAULT_HEADERS_TIMEOUT_MS = 20_000;

/** One route: GET routes get no body, POST routes the parsed JSON body; the result is the 200 JSON answer. */
export interface JsonRoute {
  readonly method: 'GET' | 'POST';
  readonly handle: (body: unknown) => unknown;
}

export interface JsonServerOptions {
  readonly host: string;
  readonly port: number;
  /** Larger bodies → 413. */
  readonly maxBodyBytes: number;
  /** By path (the query string is ignored). Other paths → 404; another method → 405. */
  readonly routes: ReadonlyMap<string, JsonRoute>;
  /** Called for every error answer, with its status, before it is sent. */
  readonly onErrorResponse: (status: number, error: unknown) => void;
  /**
   * Time to receive a whole request (headers and body), not to answer it: Node stops timing a request once
   * its body is complete, so a long generation is never cut. Default 60 s; 0 turns it off.
   */
  readonly requestTimeoutMs?: number;
  /** Time to receive the headers. Default 20 s (at most `requestTimeoutMs`). */
  readonly headersTimeoutMs?: number;
  /** How often Node checks those two timeouts. Default Node's (30 s). */
  readonly timeoutCheckIntervalMs?: number;
}

export interface JsonServer {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** Stops listening and closes open connections. */
  close(): Promise<void>;
}

// Engine and checkpoint errors caused by what the client sent (bad ids, a path that does not load).
const CLIENT_ERROR_CODES = [
  'INVALID_ARGUMENT',
  'CHECKPOINT_INVALID',
  'CONFIG_INVALID',
  'IO_ERROR',
  'NON_FINITE',
] as const;

/** The status an error is answered with: its own for HttpError, 400 for client-caused MoerlErrors, else 500. */
export function statusOf(error: unknown): number {
  if (error instanceof HttpError) return error.status;
  return CLIENT_ERROR_CODES.some((code) => MoerlError.isInstance(error, code)) ? 400 : 500;
}

/**
 * Listens with a JSON-over-HTTP router: reads bodies up to a limit, answers every error as
 * `{error: {message, code}}` (503 with `Retry-After`), and keeps serving whatever one request did.
 */
export async function listenJson(options: JsonServerOptions): Promise<JsonServer> {
  const { routes, maxBodyBytes } = options;
  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const path = (request.url ?? '/').split('?')[0] ?? '/';
    const route = routes.get(path);
    if (route === undefined) throw new HttpError(404, `no route ${path}`);
    if (request.method !== route.method) {
      throw new HttpError(405, `${path} takes ${route.method}, found ${request.method}`);
    }
    const body = route.method === 'POST' ? await readJson(request, maxBodyBytes) : undefined;
    sendJson(response, 200, await route.handle(body));
  };

  const requestTimeout = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const headersTimeout = options.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS;
  const server: Server = createServer(
    {
      requestTimeout,
      // Node refuses a headers timeout above a (non-zero) request timeout.
      headersTimeout: requestTimeout > 0 ? Math.min(headersTimeout, requestTimeout) : headersTimeout,
      ...(options.timeoutCheckIntervalMs === undefined
        ? {}
        : { connectionsCheckingInterval: options.timeoutCheckIntervalMs }),
    },
    (request, response) => {
      handle(request, response).catch((error: unknown) => {
        const status = statusOf(error);
        options.onErrorResponse(status, error);
        const message = error instanceof Error ? error.message : String(error);
        const close = error instanceof HttpError && error.closeConnection;
        // Stop reading what is left of the body once the answer is out: Node would otherwise read (and
        // drop) it to the end.
        if (close) response.once('finish', () => request.destroy());
        sendJson(response, status, { error: { message, code: status } }, close);
      });
    },
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `http://${urlHost}:${port}`,
    host: options.host,
    port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error === undefined ? resolve() : reject(error)));
        server.closeAllConnections();
      }),
  };
}

function sendJson(response: ServerResponse, status: number, body: unknown, closeConnection = false): void {
  if (response.headersSent) return;
  const text = JSON.stringify(body);
  response.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...(status === 503 ? { 'retry-after': '1' } : {}),
    ...(closeConnection ? { connection: 'close' } : {}),
  });
  response.end(text);
}

async function readJson(request: IncomingMessage, maxBytes: number): Promise<unknown> {
  const declared = Number(request.headers['content-length']);
  if (declared > maxBytes) {
    throw new HttpError(413, `content-length ${declared} exceeds the body limit of ${maxBytes} bytes`, true);
  }
  const body = await readBody(request, maxBytes);
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw new HttpError(400, `body is not valid JSON: ${(error as Error).message}`);
  }
}

/**
 * The whole body, or a 413 as soon as it passes `maxBytes` (a chunked body declares no length). Reading
 * then stops without destroying the request, so the 413 can still be written on its socket.
 */
function readBody(request: IncomingMessage, maxBytes: number): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = () => {
      request.off('data', onData);
      request.off('end', onEnd);
      request.off('error', onError);
      request.off('close', onClose);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= maxBytes) {
        chunks.push(chunk);
        return;
      }
      stop();
      request.pause();
      reject(new HttpError(413, `request body passed the limit of ${maxBytes} bytes after ${size}`, true));
    };
    const onEnd = () => {
      stop();
      resolve(Buffer.concat(chunks));
    };
    const onError = (error: Error) => {
      stop();
      reject(error);
    };
    const onClose = () => {
      stop();
      reject(new HttpError(400, 'the connection closed before the request body was complete'));
    };
    request.on('data', onData);
    request.on('end', onEnd);
    request.on('error', onError);
    request.on('close', onClose);
  });
}
