/**
 * A WebSocket caller for the target contract: plays a script on an open socket (miniflare's, or Node's own in a
 * child process: socket-client.ts) and reports the frames that came back, as the stream wire says them (a text
 * frame is one JSON message, a binary frame a control object).
 */

/** What the caller does once the socket is open. */
export interface SocketScript {
  /** Text frames to send, as they are (so that one that is no JSON can be sent too). */
  send: string[];
  /** Sends the control `{"end":true}` after them. */
  end?: boolean;
  /** Closes the socket (a caller who goes) once this many text frames came back. */
  closeAfter?: number;
}

/** A frame that came back: a text frame's JSON value, or a binary frame's control object. */
export type Frame = { text: unknown } | { control: Record<string, unknown> };

export interface SocketResult {
  /** Set when the host refused the upgrade: its HTTP status and body (error JSON). */
  refused?: { status: number; body: string };
  frames: Frame[];
  /** The close code the server sent; 0 when the caller closed first. */
  code: number;
}

/** The Web WebSocket, as miniflare's and Node's are. */
export interface SocketLike {
  binaryType?: string;
  send(data: string | Uint8Array): void;
  close(code?: number): void;
  // Platform seam: miniflare and Node type their events apart; only data and code are read.
  addEventListener(type: string, listener: (event: any) => void): void;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Plays `script` on `ws` (open already) and resolves once the socket closed. */
export function playScript(ws: SocketLike, script: SocketScript): Promise<SocketResult> {
  ws.binaryType = 'arraybuffer';
  const frames: Frame[] = [];
  let texts = 0;
  let closedByUs = false;
  const closed = new Promise<SocketResult>((resolve) =>
    ws.addEventListener('close', (event: { code: number }) => resolve({ frames, code: closedByUs ? 0 : event.code })),
  );
  ws.addEventListener('message', (event: { data: unknown }) => {
    if (typeof event.data === 'string') {
      frames.push({ text: JSON.parse(event.data) });
      if (++texts === script.closeAfter) {
        closedByUs = true;
        ws.close(1000);
      }
    } else frames.push({ control: JSON.parse(decoder.decode(event.data as ArrayBuffer)) });
  });
  for (const text of script.send) ws.send(text);
  if (script.end) ws.send(encoder.encode('{"end":true}'));
  return closed;
}
