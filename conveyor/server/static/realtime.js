// Conveyor's browser client: follow runs live, read a run's streams and trigger a task from a web
// page, with no build step and no dependency.
//
//   import { subscribeToRun } from "https://conveyor.example.com/sdk/realtime.js";
//   const stop = subscribeToRun(runId, { accessToken, onUpdate: (run) => show(run) });
//
// Every Conveyor server serves this file at /sdk/realtime.js (an ES module, which also defines
// window.Conveyor) and at /sdk/realtime.global.js (the same code as a plain script). A page holds
// a public access token or a one-use trigger token that its backend made, never a secret key.
//
// Events come through fetch() rather than EventSource, which cannot send the token in a header
// (a token in a URL ends up in logs). A connection that drops is opened again with Last-Event-ID,
// so the page misses nothing and sees nothing twice. See docs/realtime.md, "In the browser".

const SCRIPT_URL = import.meta.url;
const RETRY_FIRST = 500; // ms before the first reconnection; doubled up to RETRY_LAST
const RETRY_LAST = 15000;
// answers worth asking again: the server is busy, restarting, or behind a proxy that timed out
const RETRYABLE = new Set([408, 429, 500, 502, 503, 504]);

/** Why a call failed: `status` (0 without an answer) and `code` from the server's error. */
class ConveyorError extends Error {
  constructor(message, { status = 0, code = "" } = {}) {
    super(message);
    this.name = "ConveyorError";
    this.status = status;
    this.code = code;
  }
}

function apiBase(baseUrl) {
  // by default the server this file came from: ".../sdk/realtime.js" -> ".../"
  const base = baseUrl == null ? new URL("..", SCRIPT_URL).href : String(baseUrl);
  return base.replace(/\/+$/, "");
}

function segment(value, what) {
  if (typeof value !== "string" || value === "") {
    throw new ConveyorError(`${what} must be a non-empty string, got ${JSON.stringify(value)}`);
  }
  return encodeURIComponent(value);
}

function headersFor(accessToken, extra) {
  const headers = { Accept: "application/json", ...extra };
  if (accessToken) headers.Authorization = `Bearer ${accessToken}`;
  return headers;
}

async function errorOf(response) {
  let code = "";
  let message = `${response.status} ${response.statusText}`.trim();
  try {
    const body = await response.json();
    if (body && body.error) {
      code = body.error.code || "";
      message = body.error.message || message;
    }
  } catch {
    // not Conveyor's JSON error (a proxy's page, say): the status says enough
  }
  return new ConveyorError(message, { status: response.status, code });
}

function retryAfter(response) {
  const seconds = Number(response.headers.get("Retry-After"));
  return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : null;
}

function pause(ms, signal) {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done);
  });
}

// A page's callback that throws is reported like any uncaught error, and the subscription goes on.
function call(callback, value) {
  if (!callback) return;
  try {
    callback(value);
  } catch (error) {
    (globalThis.reportError || console.error)(error);
  }
}

function backoff(failures) {
  const ms = Math.min(RETRY_LAST, RETRY_FIRST * 2 ** failures);
  return ms / 2 + Math.random() * (ms / 2); // spread out the pages reconnecting after a restart
}

/** The server-sent events of a response body: {event, data, id} as each one is complete. */
async function* parseEvents(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let data = [];
  let event = "";
  let id;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      for (;;) {
        const end = buffer.search(/\r\n|\r|\n/);
        // a "\r" that ends the buffer may be the first half of a "\r\n" still on its way
        if (end < 0 || (end === buffer.length - 1 && buffer[end] === "\r")) break;
        const line = buffer.slice(0, end);
        buffer = buffer.slice(buffer.startsWith("\r\n", end) ? end + 2 : end + 1);
        if (line === "") {
          if (data.length || id !== undefined) {
            yield { event: event || "message", data: data.length ? data.join("\n") : null, id };
          }
          data = [];
          event = "";
          id = undefined;
          continue;
        }
        if (line.startsWith(":")) continue; // a comment: the server's keep-alive
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let text = colon < 0 ? "" : line.slice(colon + 1);
        if (text.startsWith(" ")) text = text.slice(1);
        if (field === "data") data.push(text);
        else if (field === "event") event = text;
        else if (field === "id" && !text.includes("\0")) id = text;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

/**
 * Follow the events of `url` until its `end` event, `signal` aborts, or the server refuses
 * (a ConveyorError: a bad or expired token, a run that is not there). Each event goes to
 * `onEvent(name, data)`. A dropped connection, or an answer worth asking again, is opened again
 * with the id of the last event received.
 */
async function follow(url, accessToken, signal, onEvent) {
  let lastEventId = null;
  let failures = 0;
  while (!signal.aborted) {
    let wait = null;
    try {
      const extra = { Accept: "text/event-stream" };
      if (lastEventId !== null) extra["Last-Event-ID"] = lastEventId;
      const response = await fetch(url, {
        headers: headersFor(accessToken, extra),
        signal,
        credentials: "omit",
      });
      if (!response.ok) {
        const error = await errorOf(response);
        if (!RETRYABLE.has(response.status)) throw error;
        wait = retryAfter(response);
      } else {
        for await (const item of parseEvents(response.body)) {
          failures = 0;
          if (item.id !== undefined) lastEventId = item.id;
          if (item.data === null) continue;
          const data = JSON.parse(item.data);
          onEvent(item.event, data);
          if (item.event === "end") return;
        }
      }
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof ConveyorError || error instanceof SyntaxError) throw error;
      // a network error, or the connection dropped: resume below
    }
    if (signal.aborted) return;
    await pause(wait ?? backoff(failures++), signal);
  }
}

/**
 * A subscription: a function that stops it, also an async iterator of its items.
 *
 * `handle(name, data, emit, finish)` reads each event; `emit(item)` passes one item on
 * (`onItem` and the iterator), `finish(value)` ends with `onEnd(value)`.
 */
function subscription(path, options, onItem, handle) {
  const { baseUrl, accessToken, onEnd, onError } = options;
  const url = apiBase(baseUrl) + path;
  const controller = new AbortController();
  let iterator = null; // {queue, wake, failure}, once someone iterates
  let ended = false;

  function wake() {
    if (iterator && iterator.wake) {
      const resolve = iterator.wake;
      iterator.wake = null;
      resolve();
    }
  }
  function emit(item) {
    if (ended) return;
    call(onItem, item);
    if (iterator) {
      iterator.queue.push(item);
      wake();
    }
  }
  function finish(value) {
    if (ended) return;
    ended = true;
    controller.abort();
    call(onEnd, value);
    wake();
  }
  function fail(error) {
    if (ended) return;
    ended = true;
    controller.abort();
    if (iterator) iterator.failure = error;
    if (onError) call(onError, error);
    else if (!iterator) console.error("Conveyor subscription failed:", error);
    wake();
  }

  follow(url, accessToken, controller.signal, (name, data) => handle(name, data, emit, finish))
    .then(() => finish(undefined))
    .catch((error) => fail(error));

  function unsubscribe() {
    if (ended) return;
    ended = true;
    controller.abort();
    wake();
  }
  unsubscribe[Symbol.asyncIterator] = () => {
    iterator = iterator || { queue: [], wake: null, failure: null };
    const state = iterator;
    return {
      async next() {
        for (;;) {
          if (state.queue.length) return { value: state.queue.shift(), done: false };
          if (state.failure) throw state.failure;
          if (ended) return { value: undefined, done: true };
          await new Promise((resolve) => (state.wake = resolve));
        }
      },
      async return() {
        unsubscribe();
        return { value: undefined, done: true };
      },
    };
  };
  return unsubscribe;
}

/**
 * Follow one run: `onUpdate(run)` with a snapshot of the run (the JSON of
 * GET /api/v1/runs/{id}: status, metadata, output, error...) now and at each change, then
 * `onEnd(run)` with its last snapshot once it has ended. Returns a function that stops
 * following, which is also an async iterator of the snapshots.
 */
function subscribeToRun(runId, options = {}) {
  let last;
  const path = `/api/v1/runs/${segment(runId, "runId")}/subscribe`;
  return subscription(path, options, options.onUpdate, (name, data, emit, finish) => {
    if (name === "run") {
      last = data;
      emit(data);
    } else if (name === "end") {
      finish(last);
    }
  });
}

function runsOf(query, options) {
  const latest = new Map();
  const path = `/api/v1/runs/subscribe?${query}`;
  return subscription(path, options, options.onUpdate, (name, data, emit, finish) => {
    if (name === "run") {
      latest.set(data.id, data);
      emit(data);
    } else if (name === "end") {
      finish([...latest.values()]);
    }
  });
}

/**
 * Follow every run carrying `tag`: `onUpdate(run)` for each of them now, then at each change of
 * one of them (runs tagged later too). It goes on until stopped.
 */
function subscribeToRunsWithTag(tag, options = {}) {
  return runsOf(`tag=${segment(tag, "tag")}`, options);
}

/**
 * Follow the runs of a batch: `onUpdate(run)` for each now and at each change, then
 * `onEnd(runs)` with the last snapshot of each once they have all ended.
 */
function subscribeToBatch(batchId, options = {}) {
  return runsOf(`batch_id=${segment(batchId, "batchId")}`, options);
}

/**
 * Read a run's stream (what the task gave `streams.pipe(name, ...)`): `onChunk(chunk)` for each
 * chunk from the first, then live, then `onEnd({run_id, stream, chunks})` when the stream ends.
 * Returns a function that stops reading, which is also an async iterator of the chunks.
 */
function readStream(runId, name, options = {}) {
  const path = `/api/v1/runs/${segment(runId, "runId")}/streams/${segment(name, "name")}`;
  return subscription(path, options, options.onChunk, (event, data, emit, finish) => {
    if (event === "chunk") emit(data);
    else if (event === "end") finish(data);
  });
}

/** The run now (GET /api/v1/runs/{id}), read with a public access token. */
async function retrieveRun(runId, { baseUrl, accessToken } = {}) {
  const url = `${apiBase(baseUrl)}/api/v1/runs/${segment(runId, "runId")}`;
  const response = await fetch(url, { headers: headersFor(accessToken), credentials: "omit" });
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

/**
 * Trigger `taskId` with `payload`, with a trigger token of that task (used up by this call):
 * resolves to {id, task_id, is_cached, public_access_token}, the last a public token reading
 * the new run, to follow it with subscribeToRun. `options` are the trigger options
 * ({tags, idempotency_key, delay, ...}).
 */
async function trigger(taskId, payload, { baseUrl, accessToken, options } = {}) {
  const url = `${apiBase(baseUrl)}/api/v1/tasks/${segment(taskId, "taskId")}/trigger`;
  const response = await fetch(url, {
    method: "POST",
    headers: headersFor(accessToken, { "Content-Type": "application/json" }),
    body: JSON.stringify({
      payload: payload === undefined ? null : payload,
      options: options || {},
    }),
    credentials: "omit",
  });
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

globalThis.Conveyor = {
  ConveyorError,
  readStream,
  retrieveRun,
  subscribeToBatch,
  subscribeToRun,
  subscribeToRunsWithTag,
  trigger,
};


// The module's exports: /sdk/realtime.global.js is the code above this line, in a function.
export {
  ConveyorError,
  readStream,
  retrieveRun,
  subscribeToBatch,
  subscribeToRun,
  subscribeToRunsWithTag,
  trigger,
};
export default globalThis.Conveyor;
